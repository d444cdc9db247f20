"""``python -m bench.sweep``: the command; its code is :mod:`bench.cli.sweep`."""

from bench.cli.sweep import main

if __name__ == "__main__":
    raise SystemExit(main())
