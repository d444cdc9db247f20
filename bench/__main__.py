"""``python -m bench`` is ``python -m bench.run``."""

import sys

from bench.cli.run import main

sys.exit(main())
