"""``python -m benchmarks``: run the suite."""

from ._suite import main

raise SystemExit(main())
