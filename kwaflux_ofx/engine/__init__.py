"""Frames in, frames out: models, sessions, tiling and the processing pipeline."""

from kwaflux_ofx.engine.engine import Engine
from kwaflux_ofx.engine.spec import ModelSpec
from kwaflux_ofx.engine.tiling import TilePlan

__all__ = ["Engine", "ModelSpec", "TilePlan"]
