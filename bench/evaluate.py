"""``python -m bench.evaluate``: the command; its code is :mod:`bench.cli.evaluate`."""

from bench.cli.evaluate import main

if __name__ == "__main__":
    raise SystemExit(main())
