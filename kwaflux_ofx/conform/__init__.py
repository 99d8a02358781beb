"""`kwaflux conform`: an exported timeline in, upscaled media and a relinked timeline out."""

from kwaflux_ofx.conform.plan import ConformSettings
from kwaflux_ofx.conform.run import run_conform

__all__ = ["ConformSettings", "run_conform"]
