"""``python -m bench.run``: the command; its code is :mod:`bench.engine.runner`."""

from bench.engine.runner import main

if __name__ == "__main__":
    raise SystemExit(main())
