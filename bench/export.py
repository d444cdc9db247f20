"""``python -m bench.export``: the command; its code is :mod:`bench.cli.export`."""

from bench.cli.export import main

if __name__ == "__main__":
    raise SystemExit(main())
