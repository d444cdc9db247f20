"""``python -m bench.speed``: the command; its code is :mod:`bench.engine.speed`."""

from bench.engine.speed import main

if __name__ == "__main__":
    raise SystemExit(main())
