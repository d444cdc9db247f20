"""``python -m bench.pairs``: the command; its code is :mod:`bench.data.pairs`."""

from bench.data.pairs import main

if __name__ == "__main__":
    raise SystemExit(main())
