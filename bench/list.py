"""``python -m bench.list``: the command; its code is :mod:`bench.cli.list`."""

from bench.cli.list import main

if __name__ == "__main__":
    raise SystemExit(main())
