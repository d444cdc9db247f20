"""``python -m bench.score``: the command; its code is :mod:`bench.evaluation.score`."""

from bench.evaluation.score import main

if __name__ == "__main__":
    raise SystemExit(main())
