"""`python -m kwaflux_ofx.demo OUT_DIR`: the whole story on generated sample material."""

import sys

from kwaflux_ofx.demo import main

sys.exit(main())
