"""``python -m bench.score``: the command; its code is :mod:`bench.cli.score`."""

from bench.cli.score import main

if __name__ == "__main__":
    raise SystemExit(main())
