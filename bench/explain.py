"""``python -m bench.explain``: the command; its code is :mod:`bench.cli.explain`."""

from bench.cli.explain import main

if __name__ == "__main__":
    raise SystemExit(main())
