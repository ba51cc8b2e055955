"""Personal data erasure by crypto-shredding: per-subject keys, sealed values (docs/erasure.md)."""
