"""The pure core: replay executor, history index, run-state fold, decision judging, gate plans,
deadlines, restore checkpoints and the outbox of notices. No I/O, clock or randomness."""
