"""Training photographs from Debian wallpaper packages: the file list, their licences, a patch cache."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from kwaflux_lab import paths

log = logging.getLogger(__name__)

CACHE_DIR = paths.CACHE_DIR
# Where sets/sources.py unpacks packages (apt-get download + dpkg -x) instead of installing them.
PKGS_DIR = CACHE_DIR / "pkgs"


@dataclass(frozen=True)
class Photo:
    path: str
    package: str
    license: str
    author: str


_LOMIRI16 = "/usr/share/backgrounds/"
_MATE = "/usr/share/backgrounds/mate/nature/"
_PLASMA = "/usr/share/wallpapers/{}/contents/images/{}"

# Photographs only: abstract renders and paintings in the same packages are left out on purpose
# (umang, Fossa, Infinite-Sea, Painting-Colors; plasma's vector art and Autumn, a painting).
TRAIN_PHOTOS: tuple[Photo, ...] = (
    Photo(
        _LOMIRI16 + "Bridge_by_Sander_Klootwijk.jpg",
        "lomiri-wallpapers-16.04",
        "CC-BY-SA-4.0",
        "Sander Klootwijk",
    ),
    Photo(_LOMIRI16 + "Dragonfly_by_Bolly.jpg", "lomiri-wallpapers-16.04", "CC-BY-SA-4.0", "Bolly"),
    Photo(
        _LOMIRI16 + "Picture_0B_by_freespace.jpg",
        "lomiri-wallpapers-16.04",
        "CC-BY-4.0",
        "Trevor Freespace",
    ),
    Photo(
        _LOMIRI16 + "Picture_1A_by_freespace.jpg",
        "lomiri-wallpapers-16.04",
        "CC-BY-4.0",
        "Trevor Freespace",
    ),
    Photo(
        _LOMIRI16 + "Wine_by_Jakkub_Mede.jpg", "lomiri-wallpapers-16.04", "CC-BY-4.0", "Jakub Mede"
    ),
    Photo(
        _LOMIRI16 + "aitzgorri_by_Aitzol_Berasategi.jpg",
        "lomiri-wallpapers-16.04",
        "CC-BY-4.0",
        "Aitzol Berasategi",
    ),
    Photo(
        _LOMIRI16 + "analogpattern_by_Peter_Nerlich.jpg",
        "lomiri-wallpapers-16.04",
        "CC-BY-SA-4.0",
        "Peter Nerlich",
    ),
    Photo(
        _LOMIRI16 + "free_by_Peter_Nerlich.jpg",
        "lomiri-wallpapers-16.04",
        "CC-BY-SA-4.0",
        "Peter Nerlich",
    ),
    Photo(
        _LOMIRI16 + "friends_by_Aitzol_Berasategi.jpg",
        "lomiri-wallpapers-16.04",
        "CC-BY-4.0",
        "Aitzol Berasategi",
    ),
    Photo(
        _LOMIRI16 + "greentock_by_Peter_Nerlich.jpg",
        "lomiri-wallpapers-16.04",
        "CC-BY-SA-4.0",
        "Peter Nerlich",
    ),
    Photo(
        _LOMIRI16 + "life_by_Aitzol_Berasategi.jpg",
        "lomiri-wallpapers-16.04",
        "CC-BY-4.0",
        "Aitzol Berasategi",
    ),
    Photo(
        _LOMIRI16 + "picosdeeuropa_by_Aitzol_Berasategi.jpg",
        "lomiri-wallpapers-16.04",
        "CC-BY-4.0",
        "Aitzol Berasategi",
    ),
    Photo(
        _LOMIRI16 + "seeding_by_Clements_Engelhardt.jpg",
        "lomiri-wallpapers-16.04",
        "CC0-1.0",
        "Clemens Engelhardt",
    ),
    Photo(
        _LOMIRI16 + "sunset_by_Aitzol_Berasategi.jpg",
        "lomiri-wallpapers-16.04",
        "CC-BY-4.0",
        "Aitzol Berasategi",
    ),
    Photo(_MATE + "Aqua.jpg", "mate-backgrounds", "GPL-2+", "Charles Barbin"),
    Photo(_MATE + "Blinds.jpg", "mate-backgrounds", "GPL-2+", "Lennart Poettering"),
    Photo(_MATE + "Dune.jpg", "mate-backgrounds", "GPL-2+", "Marco Cogoni"),
    Photo(_MATE + "FreshFlower.jpg", "mate-backgrounds", "GPL-2+", "Jens Ansorg"),
    Photo(_MATE + "Garden.jpg", "mate-backgrounds", "GPL-2+", "see package copyright"),
    Photo(_MATE + "GreenMeadow.jpg", "mate-backgrounds", "GPL-2+", "Timothy Schellhase"),
    Photo(_MATE + "RainDrops.jpg", "mate-backgrounds", "GPL-2+", "blackcombwhistler07"),
    Photo(_MATE + "Storm.jpg", "mate-backgrounds", "GPL-2+", "Sergey Nazarov"),
    Photo(_MATE + "TwoWings.jpg", "mate-backgrounds", "GPL-2+", "Charles Barbin"),
    Photo(_MATE + "Wood.jpg", "mate-backgrounds", "GPL-2+", "Jean-Francois Fortin Tam"),
    Photo(_MATE + "YellowFlower.jpg", "mate-backgrounds", "GPL-2+", "see package copyright"),
    *(
        Photo(
            _PLASMA.format(name, size),
            "plasma-workspace-wallpapers",
            "GPL-2+",
            "KDE Visual Design Group",
        )
        for name, size in (
            ("BytheWater", "2560x1440.jpg"),
            ("ColdRipple", "2560x1440.jpg"),
            ("ColorfulCups", "2560x1600.jpg"),
            ("DarkestHour", "2560x1440.jpg"),
            ("EveningGlow", "2560x1440.jpg"),
            ("FallenLeaf", "2560x1440.jpg"),
            ("Grey", "2560x1440.jpg"),
            ("Kite", "2560x1440.jpg"),
            ("OneStandsOut", "2560x1440.jpg"),
            ("Path", "2560x1440.jpg"),
            ("summer_1am", "2560x1440.jpg"),
        )
    ),
)

# Held out of training: used only for validation PSNR while training.
VALIDATION_PHOTOS: tuple[Photo, ...] = (
    Photo(_MATE + "LadyBird.jpg", "mate-backgrounds", "GPL-2+", "see package copyright"),
    Photo(
        "/usr/share/backgrounds/Kleiber_by_Lukas_Baubkus.jpg",
        "lomiri-wallpapers-20.04",
        "CC-BY-SA-3.0",
        "Lukas Baubkus",
    ),
)

# Photos are shrunk (area filter) so their short side is at most this: the downscale averages
# away the originals' JPEG artefacts and sensor noise, giving cleaner ground truth.
MAX_SHORT_SIDE = 1080


def resolve(photo: Photo) -> Path:
    """The photo's file: its /usr/share path where the package is installed, else the copy
    unpacked under PKGS_DIR/PACKAGE/ (python -m kwaflux_lab.sets.sources install)."""
    system = Path(photo.path)
    if system.exists():
        return system
    unpacked = PKGS_DIR / photo.package / photo.path.lstrip("/")
    return unpacked if unpacked.exists() else system


def load_clean(photo: Photo) -> np.ndarray:
    """Decode one photo, area-downscaled to a clean HxWx3 uint8 ground truth; cached as .npy."""
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    # The whole path names the cache file: plasma's photos all end in contents/images/SIZE.jpg.
    cached = CACHE_DIR / (photo.path.strip("/").replace("/", "_") + ".npy")
    if cached.exists():
        return np.load(cached)
    with Image.open(resolve(photo)) as im:
        im = im.convert("RGB")
        short = min(im.size)
        if short > MAX_SHORT_SIDE:
            f = MAX_SHORT_SIDE / short
            im = im.resize((round(im.width * f), round(im.height * f)), Image.Resampling.BOX)
        arr = np.asarray(im, dtype=np.uint8).copy()
    np.save(cached, arr)
    log.info("cached %s %s", photo.path, arr.shape)
    return arr


def load_all(photos: tuple[Photo, ...] = TRAIN_PHOTOS) -> list[np.ndarray]:
    missing = [p.path for p in photos if not resolve(p).exists()]
    if missing:
        raise SystemExit(
            "training photos missing (apt-get install lomiri-wallpapers-16.04 "
            "lomiri-wallpapers-20.04 mate-backgrounds plasma-workspace-wallpapers, or unpack them "
            "with python -m kwaflux_lab.sets.sources install): " + ", ".join(missing)
        )
    return [load_clean(p) for p in photos]
