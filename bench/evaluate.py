"""``python -m bench.evaluate``: the command; its code is :mod:`bench.reporting.evaluate`."""

from bench.reporting.evaluate import main

if __name__ == "__main__":
    raise SystemExit(main())
