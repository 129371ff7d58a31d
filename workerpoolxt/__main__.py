"""``python -m workerpoolxt``: see ``workerpoolxt._cli``."""

import sys

from ._cli import main

sys.exit(main())
