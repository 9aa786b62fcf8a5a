"""``python -m smelter_ems``: the same as the ``smelter-ems`` console script."""

import sys

from smelter_ems.cli import main

sys.exit(main())
