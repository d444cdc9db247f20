"""``python -m bench.reliance``: the command; its code is :mod:`bench.evaluation.reliance`."""

from bench.evaluation.reliance import main

if __name__ == "__main__":
    raise SystemExit(main())
