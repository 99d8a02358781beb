"""`python -m kwaflux_ofx.cli ...`: the `kwaflux` command without its console script."""

import sys

from kwaflux_ofx.cli import main

sys.exit(main())
