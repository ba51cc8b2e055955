"""The peer comparison: one workload on Countersign (Kafka, embedded log) and LangGraph.

`python -m bench.peers --help`; what each side runs and why: docs/peers.md.
"""
