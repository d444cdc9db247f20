"""``python -m bench.sweep``: the command; its code is :mod:`bench.jobs.sweep`."""

from bench.jobs.sweep import main

if __name__ == "__main__":
    raise SystemExit(main())
