"""``python -m bench.illustrate``: the command; its code is :mod:`bench.evaluation.illustrate`."""

from bench.evaluation.illustrate import main

if __name__ == "__main__":
    raise SystemExit(main())
