"""``python -m bench.reliance``: the command; its code is :mod:`bench.cli.reliance`."""

from bench.cli.reliance import main

if __name__ == "__main__":
    raise SystemExit(main())
