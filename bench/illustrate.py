"""``python -m bench.illustrate``: the command; its code is :mod:`bench.cli.illustrate`."""

from bench.cli.illustrate import main

if __name__ == "__main__":
    raise SystemExit(main())
