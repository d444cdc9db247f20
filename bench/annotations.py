"""``python -m bench.annotations``: the command; its code is :mod:`bench.data.annotate`."""

from bench.data.annotate import main

if __name__ == "__main__":
    raise SystemExit(main())
