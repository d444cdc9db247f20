"""``python -m bench.report``: the command; its code is :mod:`bench.cli.report`."""

from bench.cli.report import main

if __name__ == "__main__":
    raise SystemExit(main())
