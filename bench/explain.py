"""``python -m bench.explain``: the command; its code is :mod:`bench.evaluation.explain`."""

from bench.evaluation.explain import main

if __name__ == "__main__":
    raise SystemExit(main())
