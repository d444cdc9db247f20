"""``python -m bench`` is ``python -m bench.run``."""

import sys

from bench.engine.runner import main

sys.exit(main())
