"""One data pipeline: dataset readers -> split manifest -> image cache -> batches (SPEC §3, §5)."""
