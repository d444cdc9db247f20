"""``python -m bench.split``: the command; its code is :mod:`bench.cli.split`."""

from bench.cli.split import main

if __name__ == "__main__":
    raise SystemExit(main())
