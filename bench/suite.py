"""``python -m bench.suite``: the command; its code is :mod:`bench.cli.suite`."""

from bench.cli.suite import main

if __name__ == "__main__":
    raise SystemExit(main())
