"""Tile plans: split a frame so each tile sees enough context for its output to equal the untiled one."""

from __future__ import annotations

import dataclasses
import itertools


@dataclasses.dataclass(frozen=True)
class Tile:
    """One tile, in input pixels: the core it owns, the region it reads, the region it writes."""

    core: tuple[int, int, int, int]  # y0, y1, x0, x1
    read: tuple[int, int, int, int]
    write: tuple[int, int, int, int]
    ramp_top: bool  # blend into what the tile above wrote
    ramp_left: bool


@dataclasses.dataclass(frozen=True)
class TilePlan:
    height: int
    width: int
    tile: int
    margin: int
    blend: int
    tiles: tuple[Tile, ...]

    @property
    def untiled(self) -> bool:
        return len(self.tiles) == 1

    @classmethod
    def plan(
        cls, height: int, width: int, tile: int, margin: int, blend: int = 4, align: int = 2
    ) -> TilePlan:
        """Cores of about `tile` px; each reads `margin + blend` px of context and blends `blend` px."""
        tile = max(int(tile), 4 * blend + 1, 8)
        if height <= tile and width <= tile:
            whole = (0, height, 0, width)
            return cls(height, width, tile, 0, 0, (Tile(whole, whole, whole, False, False),))

        def cuts(n: int) -> list[tuple[int, int]]:
            count = -(-n // tile)
            edges = [round(i * n / count) for i in range(count + 1)]
            return list(itertools.pairwise(edges))

        rows, cols = cuts(height), cuts(width)
        tiles = []
        for r, (y0, y1) in enumerate(rows):
            for c, (x0, x1) in enumerate(cols):
                top, left = r > 0, c > 0
                bottom, right = r < len(rows) - 1, c < len(cols) - 1
                write = (
                    y0 - blend * top,
                    y1 + blend * bottom,
                    x0 - blend * left,
                    x1 + blend * right,
                )
                ctx = margin + blend
                # Read windows start on multiples of `align`: models that work on pixel groups
                # (kwaflux-denoise's 2x2 pixel-unshuffle) then group exactly as on the whole frame.
                read = (
                    max(0, (y0 - ctx) // align * align),
                    min(height, y1 + ctx),
                    max(0, (x0 - ctx) // align * align),
                    min(width, x1 + ctx),
                )
                tiles.append(Tile((y0, y1, x0, x1), read, write, top, left))
        return cls(height, width, tile, margin, blend, tuple(tiles))
