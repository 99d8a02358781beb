"""The prepared training patches: one compressed array file that travels with the training scripts.

A GPU machine may reach no package registry and so cannot install the Debian wallpaper packages;
the clean patches cut from them go along as `python/data/patches.npz` (under 60 MiB) instead, and
the CPU runs train from the same file, so both see the same data. Damage is added on the fly.

    python -m kwaflux_lab.sets.patches   # build python/data/patches.npz from the installed photos
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np

from kwaflux_lab import jobs
from kwaflux_lab.sets import data, degrade

log = logging.getLogger(__name__)

DEFAULT_PATH = data.CACHE_DIR / "patches.npz"
PATCH = 128  # clean training patch side; crops for every model are cut inside it
VAL_PATCH = 192
VAL_PER_PHOTO = 4


def _detail(p: np.ndarray) -> float:
    q = p.astype(np.float32)
    return float(np.mean(np.abs(np.diff(q, axis=0))) + np.mean(np.abs(np.diff(q, axis=1))))


def _grid(photo: np.ndarray, size: int) -> list[np.ndarray]:
    h, w = photo.shape[:2]
    return [
        photo[y : y + size, x : x + size]
        for y in range(0, h - size + 1, size)
        for x in range(0, w - size + 1, size)
    ]


def _npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return buf.getvalue()


def validation_crops() -> np.ndarray:
    """The validation crops of the held-out photos (seed 7): the same in every patches file, so
    every training curve is measured on the same crops."""
    vrng = np.random.default_rng(7)
    return np.stack(
        [
            np.rint(p * 255.0).astype(np.uint8)
            for photo in data.load_all(data.VALIDATION_PHOTOS)
            for p in degrade.textured_patches(vrng, photo, VAL_PATCH, VAL_PER_PHOTO)
        ]
    )


def fit(
    arrays_for: Callable[[int], dict[str, np.ndarray]],
    count: int,
    max_mib: float,
    rescale: Callable[[int, int], int],
    enough: Callable[[int], bool] = lambda size: True,
    tries: int | None = None,
) -> tuple[bytes, int] | None:
    """The largest compressed file of `arrays_for(count)` found to fit in `max_mib`, and its
    count. Each try that does not fit, or fits but is not `enough` (by its size in bytes), sets
    the next count to `rescale(count, size)`; after `tries` tries (None: no limit) the largest
    fit so far, or None."""
    limit = max_mib * 2**20
    best = None
    n = 0
    while tries is None or n < tries:
        n += 1
        blob = _npz_bytes(arrays_for(count))
        fits = len(blob) <= limit
        if fits and (best is None or len(blob) > len(best[0])):
            best = (blob, count)
        if fits and enough(len(blob)):
            break
        count = rescale(count, len(blob))
    return best


def write(path: Path, blob: bytes) -> None:
    """Write a prepared file through a temporary one, so a reader never sees half of it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(blob)
    tmp.replace(path)


def build(path: Path = DEFAULT_PATH, max_mib: float = 58.0, flat_share: float = 0.1) -> Path:
    """Cut every photo into a grid of PATCH-sized tiles, keep the most detailed ones (plus a few
    flat ones: skies and walls must stay flat) until the compressed file fits in `max_mib`."""
    photos = data.load_all()
    tiles, owner, detail = [], [], []
    for i, photo in enumerate(photos):
        for t in _grid(photo, PATCH):
            tiles.append(t)
            owner.append(i)
            detail.append(_detail(t))
    order = np.argsort(detail)[::-1]
    val = validation_crops()
    manifest = json.dumps(
        [p.__dict__ for p in data.TRAIN_PHOTOS] + [p.__dict__ for p in data.VALIDATION_PHOTOS]
    )

    def arrays_for(keep: int) -> dict[str, np.ndarray]:
        n_flat = int(keep * flat_share)
        chosen = np.concatenate([order[: keep - n_flat], order[::-1][:n_flat]])
        return {
            "train": np.stack([tiles[j] for j in chosen]),
            "train_photo": np.asarray([owner[j] for j in chosen], dtype=np.int16),
            "val": val,
            "manifest": np.asarray(manifest),
        }

    blob, keep = fit(
        arrays_for,
        len(order),
        max_mib,
        lambda keep, size: int(keep * 0.9 * max_mib * 2**20 / size),
    )
    write(path, blob)
    log.info(
        "%s: %d of %d tiles from %d photos, %d validation crops, %.1f MiB",
        path,
        keep,
        len(tiles),
        len(photos),
        len(val),
        len(blob) / 2**20,
    )
    return path


def load(path: Path = DEFAULT_PATH) -> tuple[np.ndarray, np.ndarray]:
    """(train tiles N x PATCH x PATCH x 3 uint8, validation crops M x VAL x VAL x 3 uint8);
    builds the file first where it is missing and the photos are installed."""
    if not path.exists():
        build(path)
    with np.load(path) as z:
        return z["train"], z["val"]


def main_for(doc: str, default_path: Path, build_file: Callable[[Path, float], Path]) -> None:
    """A patches file's command line: where to write it and how large it may be."""
    ap = jobs.parser(doc)
    ap.add_argument("--out", type=Path, default=default_path)
    ap.add_argument("--max-mib", type=float, default=58.0)
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    build_file(args.out, args.max_mib)


def main() -> None:
    main_for(__doc__, DEFAULT_PATH, build)


if __name__ == "__main__":
    main()
