"""``python -m bench.suite``: the command; its code is :mod:`bench.jobs.suite`."""

from bench.jobs.suite import main

if __name__ == "__main__":
    raise SystemExit(main())
