"""``python -m calcinosis``: the ``calcinosis`` command (where the script is not on PATH)."""

import sys

from calcinosis.cli import main

sys.exit(main())
