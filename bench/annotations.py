"""``python -m bench.annotations``: the command; its code is :mod:`bench.cli.annotations`."""

from bench.cli.annotations import main

if __name__ == "__main__":
    raise SystemExit(main())
