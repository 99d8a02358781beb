"""Kwaflux OFX: AI denoise and super-resolution for video editors."""

from kwaflux_ofx.engine import Engine, ModelSpec
from kwaflux_ofx.errors import KwafluxError

__all__ = ["Engine", "ModelSpec", "KwafluxError", "__version__"]
__version__ = "0.1.0"
