"""The version-2 training photographs: which Debian packages hold them, installing them without root
side effects, reading each file (inside GCompris's .rcc bundles too) and its licence and author.

Packages are fetched with `apt-get download` and unpacked with `dpkg -x` into
python/data/pkgs/PACKAGE/ (git-ignored): no maintainer scripts run and nothing lands in /usr.
The file lists are python/manifests/PACKAGE.txt (copied from the checked list of sources,
one installed path a line; `[rcc]/NAME/PATH` is PATH inside .../gcompris-qt/rcc/NAME.rcc).

    python -m kwaflux_lab.sets.sources install   # download and unpack every package below
    python -m kwaflux_lab.sets.sources list      # every photo with its licence and author
"""

from __future__ import annotations

import fnmatch
import io
import logging
import re
import subprocess
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from PIL import Image, ImageOps

from kwaflux_lab import jobs, paths
from kwaflux_lab.sets import data

log = logging.getLogger(__name__)

MANIFESTS = paths.MANIFESTS_DIR
PKGS_DIR = data.CACHE_DIR / "pkgs"
DEBS_DIR = data.CACHE_DIR / "debs"
RCC_DIR = "/usr/share/gcompris-qt/rcc/"
RCC_SEP = "::"  # a Photo path inside a bundle: /usr/share/gcompris-qt/rcc/NAME.rcc::PATH

# The packages the project trained on before (sets/data.py lists their photos).
OLD_PACKAGES = (
    "lomiri-wallpapers-16.04",
    "lomiri-wallpapers-20.04",
    "mate-backgrounds",
    "plasma-workspace-wallpapers",
)


@dataclass(frozen=True)
class Source:
    package: str
    license: str  # package-wide, as debian/copyright states it (a Files stanza may refine it)
    author: str  # package-wide
    # Largest scale kept before the usual 1080-px cap: below 1 for soft or lossy sources, so
    # the area filter averages their artefacts away (WebP smoothing, JPEG q 70-85).
    soften: float
    kind: str = "photo"  # "photo" (general scenes) or "texture" (tileable, photo-sourced)
    skip: tuple[str, ...] = ()  # fnmatch patterns of manifest entries not used


SOURCES: tuple[Source, ...] = (
    Source("gcompris-qt-data", "GPL-3+", "GCompris developers (KDE)", 0.6),
    Source("kphotoalbum", "GPL-2+", "Jesper K. Pedersen and KPhotoAlbum authors", 0.75),
    Source("tuxpaint-data", "GPL-2+", "Bill Kendrick and Tux Paint contributors", 0.75),
    Source(
        "gnome-control-center-data",
        "GPL-2+ and GPL-3+ and LGPL-2.1+ and LGPL-2+ and Expat and CC0-1.0",
        "GNOME Control Center authors",
        0.8,
    ),
    Source(
        "tuxtype-data",
        "GPL-2 (photos public domain: NOAA, U.S. FWS)",
        "NOAA / U.S. Fish and Wildlife Service (via Tux4Kids)",
        0.7,
    ),
    Source("libelementary-data", "BSD-2-clause", "Enlightenment Developers", 0.8),
    Source("palapeli-data", "GPL-2+", "Ian Wadham and Palapeli authors", 0.75),
    Source("libjs-jquery-backstretch", "Expat", "Scott Robbin", 0.9),
    Source(
        "forensics-samples-files", "CC-BY-SA-4.0", "Joao Eriberto Mota Filho", 1.0
    ),  # 4000x3000 phone photos: the 1080-px cap already averages the noise away
    Source("focuswriter", "GPL-3+", "Graeme Gott", 1.0),
    Source("darknet", "GPL-3.0+ or MIT or WTFPL", "Joseph Redmon", 0.9),
    Source("labelme-examples", "GPL-3+", "Kentaro Wada", 0.75),
    Source("scribus-template", "public domain", "Riku Leino", 0.7),
    Source("gem-doc", "GPL-2+", "IOhannes m zmölnig", 0.9),
    Source("libjxl-testdata", "BSD-3-clause-Google", "the JPEG XL Project Authors", 1.0),
    Source("kodi-data", "CC0-1.0", "unknown (CC0 grant in home-images/LICENSE)", 0.85),
    Source("sddm-theme-maldives", "GPL-2+", "Abdurrahman AVCI", 1.0),
    Source("python-kivy-examples", "Expat", "Kivy authors", 0.8),
    Source("libdlib19.1", "Boost-1.0", "Davis E. King (dlib examples)", 0.85),
    Source("cube2-data", "CC-BY-3.0", "Cube 2 texture authors", 0.8, "texture"),
    Source("lugaru-data", "CC-BY-SA-3.0", "Wolfire Games", 0.8, "texture"),
    Source("kodi-screensaver-shadertoy", "GPL-2+", "Team Kodi", 0.8, "texture"),
)

# Softer than the rest of cube2-data (the sources list says so): yo_frankie's dirt, grass, bark.
SOFTEN_OVERRIDES = {"/usr/share/games/cube2/packages/yo_frankie/": 0.6}


def _apt_lists_present() -> bool:
    lists = Path("/var/lib/apt/lists")
    return lists.is_dir() and any(
        p.name.endswith("Packages.lz4") or "Packages" in p.name for p in lists.iterdir()
    )


def install(packages: tuple[str, ...] | None = None) -> None:
    """apt-get download + dpkg -x of every package into PKGS_DIR/PACKAGE (skips those done)."""
    packages = packages or OLD_PACKAGES + tuple(s.package for s in SOURCES)
    DEBS_DIR.mkdir(parents=True, exist_ok=True)
    if not _apt_lists_present():
        subprocess.run(["apt-get", "update"], check=True)
    for pkg in packages:
        dest = PKGS_DIR / pkg
        if (dest / "usr").is_dir():
            continue
        debs = sorted(DEBS_DIR.glob(f"{pkg}_*.deb"))
        if not debs:
            subprocess.run(["apt-get", "download", pkg], cwd=DEBS_DIR, check=True)
            debs = sorted(DEBS_DIR.glob(f"{pkg}_*.deb"))
        dest.mkdir(parents=True, exist_ok=True)
        subprocess.run(["dpkg", "-x", str(debs[-1]), str(dest)], check=True)
        log.info("unpacked %s into %s", debs[-1].name, dest)


def installed_path(package: str, path: str) -> Path:
    """Where an installed path of `package` is: /usr itself where the package is installed,
    else its unpacked copy under PKGS_DIR."""
    system = Path(path)
    if system.exists():
        return system
    return PKGS_DIR / package / path.lstrip("/")


# ---- licences: the Files stanzas of a machine-readable debian/copyright ----


@dataclass(frozen=True)
class Stanza:
    globs: tuple[str, ...]
    copyright: str
    license: str


@cache
def copyright_stanzas(package: str) -> tuple[Stanza, ...]:
    """The Files stanzas of the package's DEP-5 copyright file (none for free-form files)."""
    path = installed_path(package, f"/usr/share/doc/{package}/copyright")
    if not path.exists():
        return ()
    out = []
    for para in re.split(r"\n\s*\n", path.read_text(encoding="utf-8", errors="replace")):
        fields: dict[str, str] = {}
        key = None
        for line in para.splitlines():
            m = re.match(r"^([A-Za-z-]+):\s*(.*)$", line)
            if m:
                key = m.group(1).lower()
                fields[key] = m.group(2).strip()
            elif key and line.startswith((" ", "\t")):
                fields[key] += "\n" + line.strip()
        if "files" in fields and "license" in fields:
            out.append(
                Stanza(
                    tuple(fields["files"].split()),
                    fields.get("copyright", ""),
                    fields["license"].splitlines()[0].strip(),
                )
            )
    return tuple(out)


def _author(copyright_text: str) -> str:
    """The first holder of a Copyright field, without years, emails or URLs."""
    holders = []
    for line in copyright_text.splitlines():
        s = re.sub(r"<[^>]*>|\(?https?://\S+\)?|©|\(c\)", "", line, flags=re.I)
        s = re.sub(r"^[\s,.\-–0-9]+|[\s,.]+$", "", s)
        s = re.sub(r"^[0-9, \-–]+", "", s).strip(" ,.")
        if s and s.upper() not in ("UNKNOWN", "NONE"):
            holders.append(s)
    # Up to three holders: a stanza often lists the artists of a whole folder.
    return "; ".join(holders[:3]) + ("; and others" if len(holders) > 3 else "")


def _matches(path: str, glob: str, any_extension: bool) -> bool:
    if fnmatch.fnmatch(path, "*/" + glob):
        return True
    # GCompris's build turns src/.../NAME.jpg into NAME.webp in the bundle: compare the stems.
    if any_extension and not glob.endswith("*"):
        return fnmatch.fnmatch(Path(path).with_suffix("").as_posix(), "*/" + glob.rsplit(".", 1)[0])
    return False


def licence_for(source: Source, path: str) -> tuple[str, str]:
    """(licence, author) of one file: the last specific Files stanza whose glob matches the
    path's tail (DEP-5's last-match rule), else the package-wide figures. For a file inside a
    bundle, `path` is the path inside it (the source tree's path, as debian/copyright has it)."""
    license, author = source.license, source.author
    in_bundle = not path.startswith("/")
    for st in copyright_stanzas(source.package):
        if any(
            g not in ("*", "debian/*") and _matches("/" + path.lstrip("/"), g, in_bundle)
            for g in st.globs
        ):
            license = st.license
            author = _author(st.copyright) or source.author
    return license, author


# ---- the photos ----


def manifest(package: str) -> list[str]:
    lines = (MANIFESTS / f"{package}.txt").read_text(encoding="utf-8").splitlines()
    return [ln.strip() for ln in lines if ln.strip() and not ln.startswith("#")]


def _photo_path(entry: str) -> str:
    if entry.startswith("[rcc]/"):
        name, inner = entry[len("[rcc]/") :].split("/", 1)
        return f"{RCC_DIR}{name}.rcc{RCC_SEP}{inner}"
    return entry


@dataclass(frozen=True)
class Candidate:
    photo: data.Photo
    source: Source
    soften: float


def candidates() -> list[Candidate]:
    """Every manifest entry of every source, with its licence, author and softening."""
    out = []
    for s in SOURCES:
        for entry in manifest(s.package):
            if any(fnmatch.fnmatch(entry, pat) for pat in s.skip):
                continue
            path = _photo_path(entry)
            license, author = licence_for(s, path.split(RCC_SEP, 1)[1] if RCC_SEP in path else path)
            soften = next((f for pre, f in SOFTEN_OVERRIDES.items() if path.startswith(pre)), None)
            out.append(
                Candidate(data.Photo(path, s.package, license, author), s, soften or s.soften)
            )
    return out


@cache
def _bundle(path: Path):
    from kwaflux_lab.sets import rcc

    return rcc.Bundle.open(path)


def open_image(photo: data.Photo) -> Image.Image:
    """The decoded photo, upright (EXIF orientation applied), RGB."""
    if RCC_SEP in photo.path:
        bundle, inner = photo.path.split(RCC_SEP, 1)
        im = Image.open(io.BytesIO(_bundle(installed_path(photo.package, bundle)).read(inner)))
    else:
        im = Image.open(installed_path(photo.package, photo.path))
    im = ImageOps.exif_transpose(im)
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        # Textures with an alpha channel: composite on mid grey rather than keep hidden colours.
        rgba = im.convert("RGBA")
        bg = Image.new("RGBA", rgba.size, (128, 128, 128, 255))
        im = Image.alpha_composite(bg, rgba)
    if im.mode == "I;16" or im.mode.startswith("I"):
        im = im.point(lambda v: v / 256).convert("L")
    return im.convert("RGB")


def main() -> None:
    ap = jobs.parser(__doc__)
    ap.add_argument("job", choices=("install", "list"))
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.job == "install":
        install()
    else:
        for c in candidates():
            p = c.photo
            print(f"{p.package}\t{p.license}\t{p.author}\t{c.soften}\t{p.path}")


if __name__ == "__main__":
    main()
