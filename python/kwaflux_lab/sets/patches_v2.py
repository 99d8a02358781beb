"""The version-2 patches file (python/data/patches-v2.npz): the old and new photos of
python/photos-v2.tsv, in the structure patches.load returns, under 60 MiB.

`val` holds exactly the old file's validation crops (LadyBird and Kleiber, same seed, same
cleaning), so the old and new training curves are measured on the same crops; `val_v2` holds
crops of the new held-out photos, one set spread over every source.

    python -m kwaflux_lab.sets.patches_v2   # build python/data/patches-v2.npz
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import numpy as np

from kwaflux_lab.sets import data, degrade, patches, photos_v2

log = logging.getLogger(__name__)

DEFAULT_PATH = data.CACHE_DIR / "patches-v2.npz"
VAL_V2_PER_PHOTO = 2


def _allot(counts: list[int], total: int) -> list[int]:
    """Tiles per photo: about c * sqrt(tiles it has), capped at what it has, c chosen so the sum
    is `total`. The square root keeps a 2560-px wallpaper from drowning a 600-px snapshot while
    still giving it more than one."""
    lo, hi = 0.0, 1000.0
    for _ in range(60):
        c = 0.5 * (lo + hi)
        if sum(min(n, math.ceil(c * math.sqrt(n))) for n in counts) > total:
            hi = c
        else:
            lo = c
    return [min(n, math.ceil(lo * math.sqrt(n))) for n in counts]


def build(path: Path = DEFAULT_PATH, max_mib: float = 58.0, flat_share: float = 0.1) -> Path:
    entries = photos_v2.read_tsv()
    train = [e for e in entries if e.role == "train"]
    new_val = [e for e in entries if e.role == "val" and e.photo not in data.VALIDATION_PHOTOS]
    per_photo: list[list[np.ndarray]] = []
    for e in train:
        tiles = patches._grid(photos_v2.load(e), patches.PATCH)
        # Most detailed first: flat tiles say little about restoring detail.
        per_photo.append(sorted(tiles, key=patches._detail, reverse=True))
    counts = [len(t) for t in per_photo]
    val = patches.validation_crops()  # the old file's crops
    vrng = np.random.default_rng(8)
    val_v2 = np.stack(
        [
            np.rint(p * 255.0).astype(np.uint8)
            for e in new_val
            for p in degrade.textured_patches(
                vrng, photos_v2.load(e), patches.VAL_PATCH, VAL_V2_PER_PHOTO
            )
        ]
    )
    manifest = json.dumps(
        [{**e.photo.__dict__, "role": e.role, "soften": e.soften} for e in entries]
    )
    # A first guess of the tile count from a sample's compressed size, then shrink to fit.
    sample = np.stack([t[0] for t in per_photo])
    per_tile = len(patches._npz_bytes({"t": sample})) / len(sample)
    budget_off = len(patches._npz_bytes({"v": val, "w": val_v2}))
    budget = max_mib * 2**20 - budget_off
    total = int(budget / per_tile * 0.97)
    limit = max_mib * 2**20

    def arrays_for(total: int) -> dict[str, np.ndarray]:
        chosen, owner = [], []
        for i, (tiles, k) in enumerate(zip(per_photo, _allot(counts, total), strict=True)):
            n_flat = int(k * flat_share) if k < len(tiles) else 0
            # Skies and walls must stay flat: a few of each photo's flattest tiles go in too.
            pick = tiles[: k - n_flat] + (tiles[-n_flat:] if n_flat else [])
            chosen += pick
            owner += [i] * len(pick)
        return {
            "train": np.stack(chosen),
            "train_photo": np.asarray(owner, dtype=np.int16),
            "val": val,
            "val_v2": val_v2,
            "manifest": np.asarray(manifest),
        }

    best = patches.fit(
        arrays_for,
        total,
        max_mib,
        # Scale the tile count by the room left (the tile sizes vary, so it takes a few tries).
        lambda total, size: int(total * (0.99 * limit - budget_off) / (size - budget_off)),
        enough=lambda size: size > 0.97 * limit,
        tries=6,
    )
    if best is None:
        raise SystemExit(f"no tile count fits in {max_mib} MiB")
    blob, total = best
    allot = _allot(counts, total)
    n_chosen = sum(allot)  # each photo gives exactly its allotment (its flat tiles included)
    patches.write(path, blob)
    log.info(
        "%s: %d of %d tiles from %d photos (%d to %d a photo), %d + %d validation crops, %.1f MiB",
        path,
        n_chosen,
        sum(counts),
        len(train),
        min(allot),
        max(allot),
        len(val),
        len(val_v2),
        len(blob) / 2**20,
    )
    return path


def load_val_v2(path: Path = DEFAULT_PATH) -> np.ndarray | None:
    """The crops of the new held-out photos, or None for a file without them (the old one)."""
    with np.load(path) as z:
        return z["val_v2"] if "val_v2" in z.files else None


def main() -> None:
    patches.main_for(__doc__, DEFAULT_PATH, build)


if __name__ == "__main__":
    main()
