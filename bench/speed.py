"""``python -m bench.speed``: the command; its code is :mod:`bench.cli.speed`."""

from bench.cli.speed import main

if __name__ == "__main__":
    raise SystemExit(main())
