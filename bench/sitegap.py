"""``python -m bench.sitegap``: the command; its code is :mod:`bench.cli.sitegap`."""

from bench.cli.sitegap import main

if __name__ == "__main__":
    raise SystemExit(main())
