"""The version-2 photo set: old wallpapers plus the sources in sets/sources.py, cleaned, de-duplicated
and split (python/photos-v2.tsv is its record, and docs/models.md's training-data list).

    python -m kwaflux_lab.sets.photos_v2         # clean every photo, drop duplicates, write the .tsv
    python -m kwaflux_lab.sets.photos_v2 --doc   # also write docs/models.md's training-data section
"""

from __future__ import annotations

import csv
import hashlib
import logging
import textwrap
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from kwaflux_lab import docsection, jobs, paths
from kwaflux_lab.sets import data, sources

log = logging.getLogger(__name__)

TSV = paths.PHOTOS_V2_TSV
DOC = paths.MODELS_DOC
V2_CACHE = data.CACHE_DIR / "v2"
MIN_SHORT = 192  # after cleaning: room for a validation crop, and more than a few tiles
# Two pictures are one where their difference hashes are this close (Hamming distance) both on a
# 9x8 (64 bits) and on a 17x16 (256 bits) grey thumbnail: consecutive video frames and recoloured
# copies of one texture measured 0-7 and 5-36; dark skies and eclipses, different pictures, come
# as close as 4 on the coarse hash but no closer than 37 on the fine one.
NEAR_DUPLICATE_BITS = (8, 36)


@dataclass(frozen=True)
class Entry:
    photo: data.Photo
    role: str  # "train" or "val"
    soften: float
    width: int
    height: int


def held_out(source: sources.Source, names: list[str]) -> set[str]:
    """Validation photos of one source, fixed by name: the ones whose name hashes lowest
    (one in a small source, about one in twenty in a large one; none below four photos)."""
    n = len(names)
    count = 0 if n < 4 else max(1, round(n / 20))
    ranked = sorted(names, key=lambda s: hashlib.sha1(s.encode()).hexdigest())
    return set(ranked[:count])


def clean_v2(c: sources.Candidate) -> np.ndarray:
    """The cleaned HxWx3 uint8 ground truth of a new photo: upright, shrunk with an area filter
    to at most `soften` of its size and a short side of at most data.MAX_SHORT_SIDE."""
    V2_CACHE.mkdir(parents=True, exist_ok=True)
    key = hashlib.sha1(f"{c.photo.path}|{c.soften}".encode()).hexdigest()[:16]
    cached = V2_CACHE / f"{key}.npy"
    if cached.exists():
        return np.load(cached)
    im = sources.open_image(c.photo)
    f = min(c.soften, data.MAX_SHORT_SIDE / min(im.size))
    if f < 1.0:
        im = im.resize((round(im.width * f), round(im.height * f)), Image.Resampling.BOX)
    arr = np.asarray(im, dtype=np.uint8).copy()
    np.save(cached, arr)
    return arr


def dhash(arr: np.ndarray, n: int) -> np.ndarray:
    """An n*n-bit difference hash: the signs of horizontal steps on an (n+1) x n grey thumbnail."""
    g = Image.fromarray(arr).convert("L").resize((n + 1, n), Image.Resampling.BOX)
    a = np.asarray(g, dtype=np.int16)
    return (a[:, 1:] > a[:, :-1]).flatten()


def hashes(arr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return dhash(arr, 8), dhash(arr, 16)


def distance(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray]) -> tuple[int, int]:
    return int((a[0] != b[0]).sum()), int((a[1] != b[1]).sum())


def build() -> tuple[list[Entry], list[tuple[str, str, int]]]:
    """(kept entries, dropped (path, reason, distance)). Old validation photos come first, then
    the new validation ones, so a near-duplicate of a held-out photo never trains."""
    entries: list[tuple[Entry, tuple[np.ndarray, np.ndarray]]] = []
    dropped: list[tuple[str, str, int]] = []

    def admit(e: Entry, arr: np.ndarray) -> None:
        h = hashes(arr)
        for other, oh in entries:
            d8, d16 = distance(h, oh)
            if d8 <= NEAR_DUPLICATE_BITS[0] and d16 <= NEAR_DUPLICATE_BITS[1]:
                dropped.append((e.photo.path, f"near-duplicate of {other.photo.path}", d16))
                return
        entries.append((e, h))

    for p in data.VALIDATION_PHOTOS:
        a = data.load_clean(p)
        admit(Entry(p, "val", 1.0, a.shape[1], a.shape[0]), a)
    cands = sources.candidates()
    by_source: dict[str, list[sources.Candidate]] = defaultdict(list)
    for c in cands:
        by_source[c.source.package].append(c)
    val_names = {
        pkg: held_out(cs[0].source, [c.photo.path for c in cs]) for pkg, cs in by_source.items()
    }
    arrays = {}
    for c in cands:
        a = clean_v2(c)
        if min(a.shape[:2]) < MIN_SHORT:
            dropped.append(
                (c.photo.path, f"too small once cleaned ({a.shape[1]}x{a.shape[0]})", -1)
            )
            continue
        arrays[c.photo.path] = a
    ordered = [c for c in cands if c.photo.path in val_names[c.source.package]] + [
        c for c in cands if c.photo.path not in val_names[c.source.package]
    ]
    old_train = [(p, data.load_clean(p)) for p in data.TRAIN_PHOTOS]
    # New held-out photos, then the old training photos, then the new training photos.
    for c in ordered[: sum(c.photo.path in val_names[c.source.package] for c in ordered)]:
        if c.photo.path in arrays:
            a = arrays[c.photo.path]
            admit(Entry(c.photo, "val", c.soften, a.shape[1], a.shape[0]), a)
    for p, a in old_train:
        admit(Entry(p, "train", 1.0, a.shape[1], a.shape[0]), a)
    for c in ordered:
        if c.photo.path in val_names[c.source.package] or c.photo.path not in arrays:
            continue
        a = arrays[c.photo.path]
        admit(Entry(c.photo, "train", c.soften, a.shape[1], a.shape[0]), a)
    return [e for e, _ in entries], dropped


FIELDS = ("role", "path", "package", "license", "author", "soften", "width", "height")


def write_tsv(entries: list[Entry], dropped: list[tuple[str, str, int]], path: Path = TSV) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, delimiter="\t", lineterminator="\n")
        w.writerow(FIELDS)
        for e in entries:
            p = e.photo
            w.writerow(
                (e.role, p.path, p.package, p.license, p.author, e.soften, e.width, e.height)
            )
        for path_, reason, d in dropped:
            w.writerow(("dropped", path_, "", reason, "", "", d, ""))


def read_tsv(path: Path = TSV) -> list[Entry]:
    """The kept photos of the record (dropped ones left out)."""
    out = []
    with open(path, encoding="utf-8") as f:
        for row in csv.DictReader(f, delimiter="\t"):
            if row["role"] in ("train", "val"):
                photo = data.Photo(row["path"], row["package"], row["license"], row["author"])
                out.append(
                    Entry(
                        photo,
                        row["role"],
                        float(row["soften"]),
                        int(row["width"]),
                        int(row["height"]),
                    )
                )
    return out


def read_dropped(path: Path = TSV) -> list[tuple[str, str, int]]:
    with open(path, encoding="utf-8") as f:
        return [
            (r["path"], r["license"], int(r["width"]))
            for r in csv.DictReader(f, delimiter="\t")
            if r["role"] == "dropped"
        ]


_OLD = {p.path for p in data.TRAIN_PHOTOS + data.VALIDATION_PHOTOS}
_CANDIDATES: dict[str, sources.Candidate] = {}


def load(entry: Entry) -> np.ndarray:
    """The cleaned array of a kept photo: old wallpapers exactly as data.load_clean gives them
    (so the old validation crops are the same crops), new ones through clean_v2."""
    if entry.photo.path in _OLD:
        return data.load_clean(entry.photo)
    if not _CANDIDATES:
        _CANDIDATES.update({c.photo.path: c for c in sources.candidates()})
    return clean_v2(_CANDIDATES[entry.photo.path])


def _md_cell(s: str) -> str:
    return s.replace("|", "\\|")


def doc_section(entries: list[Entry], dropped: list[tuple[str, str, int]]) -> str:
    """docs/models.md's training-data section: where the photos come from, how they are
    cleaned, and every file with its package, author and licence."""
    train = [e for e in entries if e.role == "train"]
    val = [e for e in entries if e.role == "val"]
    per_train = Counter(e.photo.package for e in train)
    per_val = Counter(e.photo.package for e in val)
    order = [*sources.OLD_PACKAGES, *(s.package for s in sources.SOURCES)]
    pkgs = sorted({e.photo.package for e in entries}, key=order.index)
    old = {p.path for p in data.TRAIN_PHOTOS}
    licences = sorted({e.photo.license for e in entries})
    lines = [
        "Written by `python -m kwaflux_lab.sets.photos_v2 --doc` from its record, `python/photos-v2.tsv`.",
        "",
        "Only real photographs (and, marked *texture*, tileable textures photographed for games) "
        "from Debian packages. `python -m kwaflux_lab.sets.sources install` fetches them with `apt-get download` "
        "and unpacks them with `dpkg -x` into python/data/pkgs/ (no maintainer scripts, nothing "
        "in /usr); python/kwaflux_lab/sets/data.py finds the old wallpapers there where /usr/share lacks them. "
        "GCompris keeps its photos as WebP inside Qt resource bundles, read by python/kwaflux_lab/sets/rcc.py. "
        "The candidates are the checked lists in python/manifests/ (from "
        "`../shared/data/training-sources.md`, which also lists what was looked at and rejected). "
        "Licences and authors are from each package's `/usr/share/doc/PACKAGE/copyright` (the "
        "last Files stanza that names the file, else the package-wide licence).",
        "",
        f"The shipped models (v1) were trained on the {len(old)} photos of the four wallpaper "
        "packages (marked v1 below) and validated on LadyBird and Kleiber. Version 2 "
        "(`python/data/patches-v2.npz`, python/kwaflux_lab/sets/patches_v2.py) trains on every training photo below. "
        "Each photo is turned upright (EXIF orientation), shrunk with an area filter to at most "
        "`soften` of its size and to a short side of at most 1080 px: the averaging removes JPEG "
        "artefacts and noise, and `soften` below 1 does it harder for soft or lossy sources "
        "(GCompris's WebP 0.6, JPEG q 70-85 about 0.7-0.75). Near-duplicates (difference hashes "
        f"within {NEAR_DUPLICATE_BITS[0]} of 64 and {NEAR_DUPLICATE_BITS[1]} of 256 bits: "
        "consecutive video frames, recoloured copies of one texture) are dropped, held-out photos "
        "first so none of them trains. The held-out photos are fixed by name "
        "(python/kwaflux_lab/sets/photos_v2.py `held_out`: about one in twenty per source, none in a source of "
        "fewer than four); LadyBird and Kleiber stay held out, and the trainers' `val_psnr` is "
        "still measured on the same eight crops of them, so the v1 and v2 curves compare "
        "directly; `v2_*` figures are on two crops of each new held-out photo.",
        "",
        "To rebuild and train on it: `cd python && ../.venv/bin/python -m kwaflux_lab.sets.sources install && "
        "../.venv/bin/python -m kwaflux_lab.sets.photos_v2 --doc && ../.venv/bin/python -m kwaflux_lab.sets.patches_v2`, then "
        "`sh train_all.sh --hours 15 --stint 40 --patches data/patches-v2.npz --suffix -v2 "
        '--order "sr-x2 denoise sr-x4" -- --threads 1` (checkpoints `sr-x2-v2`, `denoise-v2`, '
        "`sr-x4-v2` beside the shipped ones); `python -m kwaflux_lab.eval.compare_curves` sets the v1 and v2 "
        "curves side by side.",
        "",
        "| package | train | held out |",
        "|---|---:|---:|",
        *(f"| {p} | {per_train.get(p, 0)} | {per_val.get(p, 0)} |" for p in pkgs),
        f"| **total** | **{len(train)}** | **{len(val)}** |",
        "",
        f"Dropped ({len(dropped)}):",
        "",
        "| file | why | bits (of 256) |",
        "|---|---|---:|",
        *(f"| `{_md_cell(p)}` | {_md_cell(r)} | {d if d >= 0 else ''} |" for p, r, d in dropped),
        "",
    ]
    kinds = {s.package: s.kind for s in sources.SOURCES}
    for title, rows in (("Training photos", train), ("Held out, for validation only", val)):
        lines += [
            f"{title} ({len(rows)}):",
            "",
            "| file | package | author | licence | soften | v1 |",
            "|---|---|---|---|---:|---|",
            *(
                f"| `{_md_cell(e.photo.path)}` | {e.photo.package}"
                + (" (texture)" if kinds.get(e.photo.package) == "texture" else "")
                + f" | {_md_cell(e.photo.author)} | {_md_cell(e.photo.license)} | {e.soften:g} "
                f"| {'v1' if e.photo.path in old or e.photo in data.VALIDATION_PHOTOS else ''} |"
                for e in rows
            ),
            "",
        ]
    lines += [
        "scikit-image's bundled photographs (astronaut, coffee, chelsea, rocket, ...) are the "
        "evaluation set and are never used in training or validation, nor is anything sold as a "
        "benchmark image (Kodak, Set14: sporco's PNGs are left out). "
        "`tests/test_models_shipped.py` checks the shipped SR x2 against bicubic on a crop of "
        "`astronaut`.",
        "",
        "Licence note: the weights are published under Apache-2.0 (this project's licence). The "
        f"training photos carry these licences: {'; '.join(licences)}. No photo or part of one is "
        "shipped, only weights learned from them.",
    ]
    # Prose wrapped as the rest of the doc is; tables stay one row a line.
    return "\n".join(ln if ln.startswith("|") else textwrap.fill(ln, 100) for ln in lines)


def main() -> None:
    ap = jobs.parser(__doc__)
    ap.add_argument("--doc", action="store_true", help="write docs/models.md's section too")
    ap.add_argument("--from-tsv", action="store_true", help="use the .tsv as it is (no images)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.from_tsv:
        entries, dropped = read_tsv(), read_dropped()
    else:
        entries, dropped = build()
        write_tsv(entries, dropped)
    roles = Counter(e.role for e in entries)
    log.info("%s: %d train, %d val, %d dropped", TSV, roles["train"], roles["val"], len(dropped))
    for p, r, d in dropped:
        log.info("dropped %s: %s (%d)", p, r, d)
    if args.doc:
        docsection.write_section(DOC, "training-data", doc_section(entries, dropped))


if __name__ == "__main__":
    main()
