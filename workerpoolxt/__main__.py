"""``python -m workerpoolxt``: the durable worker's command line, ``workerpoolxt.durable._cli``."""

import sys

from .durable._cli import main

sys.exit(main())
