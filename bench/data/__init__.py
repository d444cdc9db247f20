"""One data pipeline: dataset readers -> split manifest -> image cache -> batches (docs/protocol.md, Held-out test and cross-validation; Data sets)."""
