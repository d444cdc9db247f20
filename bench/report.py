"""``python -m bench.report``: the command; its code is :mod:`bench.reporting.report`."""

from bench.reporting.report import main

if __name__ == "__main__":
    raise SystemExit(main())
