"""``python -m bench.pairs``: the command; its code is :mod:`bench.cli.pairs`."""

from bench.cli.pairs import main

if __name__ == "__main__":
    raise SystemExit(main())
