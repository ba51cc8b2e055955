"""Personal data erasure by crypto-shredding (docs/erasure.md): which values are personal and
sealing them (`sealing`, `events`; pure), the per-subject key store, its in-memory twin and
a worker's cache of it (`keys`). The PostgreSQL store is `engine.log.postgres_subject_keys`;
the worker's side is `engine.runtime.sealing`. Import the modules themselves; this face
loads nothing."""
