"""Cached training windows for the learned multi-frame denoiser: moved, damaged, aligned, fused.

python -m kwaflux_lab.sets.temporal_data      # build python/data/temporal_windows.npz
python -m kwaflux_lab.sets.temporal_data --count 600 --seed 1 --out data/other.npz

Where real footage is installed (sets/real_video.py) a share of the windows (P_REAL) comes from it.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from kwaflux_lab import jobs, paths
from kwaflux_lab.sets import data, degrade, patches

# The engine lives beside python/; the trainer must use its alignment graph, not a copy.
paths.checkout_on_path()

log = logging.getLogger(__name__)

DEFAULT_PATH = data.CACHE_DIR / "temporal_windows.npz"
RADIUS = 2
# Frame times in the order the engine hands them to the alignment (TemporalJob.window): the
# frame rendered first, then the others in time order. The model's input slots follow it.
ORDER = (0, -2, -1, 1, 2)
MAX_STEP = 6.0  # camera translation per frame (px, each axis; any fraction of a pixel)
MAX_SHIFT = 12.0  # ... and in all at t +-2
FRAME = 96  # frame side cut from a 128 px training patch: room for the motion without fill
CROP = 64  # side stored after alignment
EDGE = 8  # the stored crop keeps this far from the frame's border (border blocks match worse)
# Same as train.denoise.MAX_NOISE * 1.1: the single-frame trainer's range of damage.
MAX_SIGMA = 50.0 / 255.0 * 1.1
P_STATIC, P_AFFINE, P_OCCLUDER = 0.15, 0.3, 0.3
# Real footage is never a whole-pixel move: a hand-held or tracked camera shakes by a fraction
# of a pixel from frame to frame (per window: its shake's standard deviation, up to JITTER)...
JITTER = 0.5
# ... things in the scene move on their own (a smooth field of local motion, px per frame at
# most, growing with time from the centre frame, which it leaves alone)...
P_LOCAL, MAX_LOCAL = 0.4, 1.0
# ... and a fast move smears during the exposure (shutter open for this share of the frame
# interval; 180-degree shutter is 0.5) once a frame moves faster than BLUR_SPEED px per frame.
P_BLUR, SHUTTER, BLUR_SPEED = 0.5, (0.25, 0.75), 2.0
# Fast pans: a share of the windows moves 8 to 24 px per frame, as hand-held or sports footage
# does (bikes.mp4 pans 17.6 px a frame), over a PAN_PATCH region of a training photo. There the
# neighbours run out of picture at the frame's edge: the stored crop may touch the edge, so the
# model learns what the alignment leaves where a neighbour saw nothing. Without them the model
# trained on at most 6 px per frame away from the edge, and on bikes lost 1.4-1.6 dB to the
# fusion along the edges the pan uncovers against 0.17 dB inside (sigma 25, 1.30 h).
P_PAN, PAN_SPEED, PAN_PATCH = 0.3, (8.0, 24.0), 224
PAN_SHIFT = (PAN_PATCH - FRAME) / 2 - 4  # the most a frame may move from the centre one
COUNT = 760  # ~74 KiB each zipped: the set stays under 60 MiB
# Real footage (sets/real_video.py) where it is installed: a share of the windows is cut from
# it, with the motion and occlusions the scene really had.
P_REAL = 0.3


@dataclass(frozen=True)
class Motion:
    """A camera path over the window, per time -RADIUS..RADIUS: sub-pixel shift, zoom, roll."""

    # Per time (index t + RADIUS): the view's shift (dy, dx) in pixels, fractions allowed; its
    # zoom and rotation (radians) about the frame centre; the share of the frame interval the
    # shutter stays open while it moves (0: sharp). `local`: a field of motion of the scene
    # itself (2 x size x size, px per frame, dy then dx), or None.

    shifts: tuple[tuple[float, float], ...]
    zooms: tuple[float, ...] = (1.0,) * (2 * RADIUS + 1)
    angles: tuple[float, ...] = (0.0,) * (2 * RADIUS + 1)
    exposure: tuple[float, ...] = (0.0,) * (2 * RADIUS + 1)
    local: np.ndarray | None = field(default=None, compare=False, repr=False)


def _local_field(rng: np.random.Generator, size: int, peak: float) -> np.ndarray:
    """A smooth random motion field (2 x size x size) whose largest displacement is `peak`."""
    from scipy.ndimage import zoom as upsample

    coarse = rng.standard_normal((2, 4, 4))
    fine = np.stack([upsample(c, size / 4.0, order=3, mode="nearest") for c in coarse])
    return (fine * (peak / max(np.abs(fine).max(), 1e-6))).astype(np.float32)


def random_motion(
    rng: np.random.Generator, scale: float = 1.0, size: int = FRAME, pan: bool = False
) -> Motion:
    """A random smooth sub-pixel camera path with shake, sometimes zoom, local motion, blur;
    with `pan`, a fast one (PAN_SPEED) over a PAN_PATCH region."""
    # A velocity plus a little acceleration and per-frame shake; `scale` shrinks it all (used
    # when a path would leave the patch).
    times = np.arange(-RADIUS, RADIUS + 1)
    n = len(times)
    if pan:
        speed, heading = rng.uniform(*PAN_SPEED), rng.uniform(0.0, 2.0 * math.pi)
        v = speed * np.array([math.sin(heading), math.cos(heading)]) * scale
        reach = PAN_SHIFT
    elif rng.random() < P_STATIC:
        # A locked-off shot: truly still, the alignment's exact case.
        return Motion(tuple((0.0, 0.0) for _ in times))
    else:
        v = rng.uniform(-MAX_STEP, MAX_STEP, 2) * scale
        reach = MAX_SHIFT
    a = rng.uniform(-1.0, 1.0, 2) * scale
    path = np.outer(times, v) + 0.5 * np.outer(times**2, a)
    path += rng.normal(0.0, rng.uniform(0.0, JITTER), (n, 2)) * scale
    path = np.clip(path, -reach, reach)
    shifts = tuple((float(dy), float(dx)) for dy, dx in path)
    zooms, angles = (1.0,) * n, (0.0,) * n
    if rng.random() < P_AFFINE:
        zoom = math.exp(rng.uniform(-0.02, 0.02) * scale)
        angle = math.radians(rng.uniform(-0.5, 0.5) * scale)
        zooms = tuple(zoom ** float(t) for t in times)
        angles = tuple(angle * float(t) for t in times)
    local = None
    if rng.random() < P_LOCAL:
        local = _local_field(rng, size, rng.uniform(0.2, MAX_LOCAL) * scale)
    exposure = (0.0,) * n
    if rng.random() < P_BLUR:
        shutter = rng.uniform(*SHUTTER)
        speed = np.hypot(*np.gradient(path, axis=0).T)
        exposure = tuple(float(shutter) if s > BLUR_SPEED else 0.0 for s in speed)
    return Motion(shifts, zooms, angles, exposure, local)


def _samples(motion: Motion, size: int, room: int) -> list[list[tuple[np.ndarray, np.ndarray]]]:
    """Per frame, the patch positions (rows, columns) it samples: several along a smeared move."""
    shifts = np.asarray(motion.shifts, np.float64)
    velocity = np.gradient(shifts, axis=0)  # px per frame at each time
    j = np.arange(size) + 0.5 - size / 2.0  # output pixel centres about the frame centre
    yy, xx = np.meshgrid(j, j, indexing="ij")
    c = room + size / 2.0 - 0.5  # the patch centre in index units
    out = []
    for i, t in enumerate(range(-RADIUS, RADIUS + 1)):
        cos = math.cos(motion.angles[i]) / motion.zooms[i]
        sin = math.sin(motion.angles[i]) / motion.zooms[i]
        # As PIL's affine map before: source = centre + shift + R(angle) / zoom @ output.
        base_y, base_x = sin * xx + cos * yy, cos * xx - sin * yy
        e = motion.exposure[i]
        # Enough sub-positions that the smear has no gaps (about one per pixel moved).
        k = 1 if e <= 0.0 else max(2, int(math.ceil(e * np.hypot(*velocity[i]))) + 1)
        offsets = [0.0] if k == 1 else list(np.linspace(-e / 2.0, e / 2.0, k))
        frame = []
        for u in offsets:
            sy, sx = c + shifts[i] + u * velocity[i]
            py, px = base_y + sy, base_x + sx
            if motion.local is not None:
                py = py + (t + u) * motion.local[0]
                px = px + (t + u) * motion.local[1]
            frame.append((py, px))
        out.append(frame)
    return out


def _fits(patch_side: int, size: int, room: int, motion: Motion) -> bool:
    """Whether every frame samples inside the patch with the cubic's support (no mirrored fill)."""
    for frame in _samples(motion, size, room):
        for py, px in frame:
            lo, hi = min(py.min(), px.min()), max(py.max(), px.max())
            if lo < 2.0 or hi > patch_side - 3.0:
                return False
    return True


def render(patch: np.ndarray, size: int, motion: Motion) -> np.ndarray:
    """The clean frames (K, size, size, 3) uint8, time order, a camera on `motion` sees."""
    # Every frame is resampled (cubic spline, in float, per channel) at its sub-pixel position
    # and a smeared one averaged over its exposure; a whole-pixel shift stays an exact crop
    # (the spline passes through the samples).
    from scipy.ndimage import map_coordinates, spline_filter

    room = (patch.shape[0] - size) // 2
    # A cubic spline rather than PIL's bicubic: a camera's sampling is no softer at half-pixel
    # phases than at whole ones, and the spline's response varies far less with the phase.
    coeffs = [spline_filter(patch[..., ch].astype(np.float64), order=3, mode="mirror")
              for ch in range(patch.shape[2])]  # fmt: skip
    frames = []
    for frame in _samples(motion, size, room):
        acc = np.zeros((size, size, patch.shape[2]))
        for py, px in frame:
            for ch, co in enumerate(coeffs):
                acc[..., ch] += map_coordinates(
                    co, (py, px), order=3, mode="mirror", prefilter=False
                )
        frames.append(np.clip(np.rint(acc / len(frame)), 0, 255).astype(np.uint8))
    return np.stack(frames)


def _affine(size: int, room: int, dy: int, dx: int, zoom: float, angle: float) -> tuple:
    """PIL's inverse map (frame pixel -> patch position) for a view centred at the patch centre
    plus (dy, dx), zoomed and rotated about it."""
    c = room + size / 2.0
    cos, sin = math.cos(angle) / zoom, math.sin(angle) / zoom
    # source = centre + R(angle) / zoom @ (output - size / 2)
    return (
        cos,
        -sin,
        c + dx - cos * size / 2.0 + sin * size / 2.0,
        sin,
        cos,
        c + dy - sin * size / 2.0 - cos * size / 2.0,
    )


def render_whole(patch: np.ndarray, size: int, motion: Motion) -> np.ndarray:
    """render() as it was (whole-pixel crops, PIL bilinear zoom/roll), for validation_windows."""
    # The validation windows stay exactly those of the first stints: the log stays comparable.
    room = (patch.shape[0] - size) // 2
    frames = []
    for (dy, dx), zoom, angle in zip(motion.shifts, motion.zooms, motion.angles, strict=True):
        if zoom == 1.0 and angle == 0.0:
            y, x = room + int(dy), room + int(dx)
            if min(y, x) < 0 or max(y, x) + size > patch.shape[0]:
                raise ValueError("motion leaves the patch")
            frames.append(patch[y : y + size, x : x + size])
        else:
            im = Image.fromarray(patch).transform(
                (size, size),
                Image.Transform.AFFINE,
                _affine(size, room, int(dy), int(dx), zoom, angle),
                resample=Image.Resampling.BILINEAR,
            )
            frames.append(np.asarray(im))
    return np.stack(frames)


def add_occluder(rng: np.random.Generator, frames: np.ndarray, other: np.ndarray) -> np.ndarray:
    """A piece of another photo (a rectangle or an ellipse) moving over the frames on its own
    path, in front of the scene: what the alignment cannot match and the model must not average."""
    size = frames.shape[1]
    side = int(rng.integers(16, 41))
    oy, ox = (int(v) for v in rng.integers(0, other.shape[0] - side + 1, 2))
    piece = other[oy : oy + side, ox : ox + side]
    mask = np.ones((side, side), bool)
    if rng.random() < 0.5:
        yy, xx = np.mgrid[0:side, 0:side] + 0.5 - side / 2.0
        mask = (yy / (side / 2.0)) ** 2 + (xx / (side / 2.0)) ** 2 <= 1.0
    # Over the middle of the centre frame, where the stored crop is cut.
    start = rng.integers(size // 4 - side // 2, 3 * size // 4 - side // 2 + 1, 2)
    velocity = rng.integers(-8, 9, 2)
    out = frames.copy()
    for i, t in enumerate(range(-RADIUS, RADIUS + 1)):
        y, x = (int(v) for v in start + velocity * t)
        y0, x0, y1, x1 = max(y, 0), max(x, 0), min(y + side, size), min(x + side, size)
        if y0 >= y1 or x0 >= x1:
            continue
        m = mask[y0 - y : y1 - y, x0 - x : x1 - x]
        region = out[i, y0:y1, x0:x1]
        region[m] = piece[y0 - y : y1 - y, x0 - x : x1 - x][m]
    return out


class _FrameDraws:
    """The random draws of one frame of a window: every parameter (kind of damage, its level,
    JPEG quality, codec, flip...) from a generator that each frame of the window replays, so
    the clip has one kind of noise; the noise itself (every standard_normal) from the frame's
    own generator, so it is independent from frame to frame."""

    def __init__(self, params_seed: int, noise: np.random.Generator) -> None:
        self._params = np.random.default_rng(params_seed)
        self._noise = noise

    def standard_normal(self, *args, **kwargs):
        return self._noise.standard_normal(*args, **kwargs)

    def __getattr__(self, name: str):
        return getattr(self._params, name)


def damage(
    rng: np.random.Generator, frames: np.ndarray, max_sigma: float = MAX_SIGMA
) -> tuple[np.ndarray, np.ndarray, float]:
    """(noisy frames uint8, clean frames uint8, the centre frame's noise level) for clean uint8
    frames in time order, damaged by the single-frame trainer's own degrade.denoise_pair (same
    kinds and ranges), one kind and level for the window, independent noise per frame. The
    noisy frames are quantised to 8 bits like decoded footage; the level is the RMS of the
    damage left in the centre frame (the "rms" definition of the shipped noise map)."""
    seed = int(rng.integers(2**63))
    noisy, clean = [], []
    for f in frames:
        draws = _FrameDraws(seed, np.random.default_rng(rng.integers(2**63)))
        x, c, _ = degrade.denoise_pair(draws, f, f.shape[0], max_sigma)  # type: ignore[arg-type]
        noisy.append(np.clip(np.rint(x * 255.0), 0, 255).astype(np.uint8))
        clean.append(np.clip(np.rint(c * 255.0), 0, 255).astype(np.uint8))
    noisy_a, clean_a = np.stack(noisy), np.stack(clean)
    mid = RADIUS
    diff = noisy_a[mid].astype(np.float32) - clean_a[mid].astype(np.float32)
    level = float(np.sqrt(np.mean(diff**2))) / 255.0
    return noisy_a, clean_a, level


def align_session():
    """The engine's alignment graph (temporal.aligned_model) in a one-thread CPU session."""
    import onnxruntime as ort

    from kwaflux_ofx.engine.temporal import aligned_model

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    return ort.InferenceSession(aligned_model(), opts, providers=["CPUExecutionProvider"])


def fusion_session():
    """The engine's fusion graph (temporal.fusion_model, aligning) in a one-thread CPU session."""
    import onnxruntime as ort

    from kwaflux_ofx.engine.temporal import fusion_model

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    return ort.InferenceSession(fusion_model(True), opts, providers=["CPUExecutionProvider"])


def in_engine_order(frames: np.ndarray) -> np.ndarray:
    """Frames in time order -> the engine's order (ORDER: the centre first)."""
    return frames[[t + RADIUS for t in ORDER]]


def _feeds(frames: np.ndarray, sigma: float) -> dict[str, np.ndarray]:
    """The inputs of the shipped alignment and fusion graphs: K×3×H×W float 0..1, and sigma."""
    x = frames.astype(np.float32)
    if frames.dtype == np.uint8:
        x /= 255.0
    return {
        "input_frames": np.ascontiguousarray(x.transpose(0, 3, 1, 2)),
        "sigma": np.array([sigma], np.float32),
    }


def align(session, frames: np.ndarray, sigma: float) -> np.ndarray:
    """Frames (K, H, W, 3) uint8 or float 0..1 in the engine's order -> the same with every
    neighbour warped onto the first, float32 0..1. `sigma` is what the engine passes: the
    noise level (0..1) the denoise strength stands for."""
    return session.run(["aligned"], _feeds(frames, sigma))[0].transpose(0, 2, 3, 1)


def fuse(session, frames: np.ndarray, sigma: float) -> tuple[np.ndarray, np.ndarray]:
    """Frames as for align() -> the fused frame (H, W, 3) and its level left (H, W), float32."""
    fused, level = session.run(["fused", "level"], _feeds(frames, sigma))
    return fused[0].transpose(1, 2, 0), level[0, 0]


def clip(
    rng: np.random.Generator,
    patch: np.ndarray,
    other: np.ndarray | None,
    size: int,
    pan: bool = False,
) -> tuple[np.ndarray, Motion]:
    """Clean frames (time order, uint8) of a random camera path over `patch` (a fast pan with
    `pan`: give it a PAN_PATCH patch), with an occluder cut from `other` in some of them; the
    path shrinks until no frame needs border fill."""
    scale = 1.0
    for _ in range(20):
        motion = random_motion(rng, scale, size, pan)
        if _fits(patch.shape[0], size, (patch.shape[0] - size) // 2, motion):
            break
        scale *= 0.8
    else:
        motion = Motion(tuple((0.0, 0.0) for _ in range(2 * RADIUS + 1)))
    frames = render(patch, size, motion)
    if other is not None and rng.random() < P_OCCLUDER:
        frames = add_occluder(rng, frames, other)
    return frames, motion


def make_window(
    rng: np.random.Generator,
    patch: np.ndarray,
    other: np.ndarray | None,
    session,
    fusion,
    size: int = FRAME,
    crop: int = CROP,
    pan: bool = False,
) -> dict[str, np.ndarray | float]:
    """One training window, cut to `crop`: as load() describes one row; with `pan` a fast pan
    over `patch` (PAN_PATCH side), the crop anywhere in the frame, its edges included."""
    frames, _ = clip(rng, patch, other, size, pan)
    return window_of(rng, frames, session, fusion, crop, edge=0 if pan else EDGE)


def window_of(
    rng: np.random.Generator,
    frames: np.ndarray,
    session,
    fusion,
    crop: int = CROP,
    edge: int = EDGE,
) -> dict[str, np.ndarray | float]:
    """One training window from clean frames (time order, K×size×size×3 uint8: a synthetic
    camera path's or real footage's): damaged, aligned and fused as the engine does it, then
    cut to `crop` at least `edge` from the frame's border."""
    size = frames.shape[1]
    noisy, clean, level = damage(rng, frames)
    ordered = in_engine_order(noisy)
    # TemporalJob passes sigma = strength * max_noise to alignment and fusion. The trainer's
    # full-strength target is the window's true level (its map carries it, as for the
    # single-frame model: strength = level / max_noise), so sigma here is that level.
    aligned = align(session, ordered, level)
    # On the whole frame, as the engine runs it on a tile, then cut like the rest.
    fused, level_map = fuse(fusion, ordered, level)
    # The warp only picks pixels of the 8-bit frames, so back to uint8 is exact.
    aligned8 = np.clip(np.rint(aligned * 255.0), 0, 255).astype(np.uint8)
    y, x = (int(v) for v in rng.integers(edge, size - crop - edge + 1, 2))
    cut = np.s_[y : y + crop, x : x + crop]
    return {
        "noisy": aligned8[(slice(None), *cut)],
        "clean": clean[RADIUS][cut],
        "level": level,
        "fused": fused[cut],
        "level_map": level_map[cut],
    }


def pan_patch(rng: np.random.Generator, photos: list[np.ndarray], tries: int = 8) -> np.ndarray:
    """A PAN_PATCH square of a random photo: half the time the most detailed of a few random
    places, half the time any place. Flat walls and skies stay in: where a neighbour ran out of
    picture, the alignment finds a plausible flat match of another shade there, which the model
    must learn to distrust (after a first stint of pans over detailed places only, it
    brightened bikes.mp4's uncovered flat band by 2 levels)."""
    photo = photos[int(rng.integers(len(photos)))]
    h, w = photo.shape[:2]
    best, best_detail = None, -1.0
    for _ in range(tries if rng.random() < 0.5 else 1):
        y = int(rng.integers(0, h - PAN_PATCH + 1))
        x = int(rng.integers(0, w - PAN_PATCH + 1))
        cut = photo[y : y + PAN_PATCH, x : x + PAN_PATCH]
        detail = float(np.abs(np.diff(cut.astype(np.int16), axis=1)).mean())
        if detail > best_detail:
            best, best_detail = cut, detail
    return best


def pan_photos(patches_path: Path | None = None) -> list[np.ndarray]:
    """The pictures fast pans are cut from: a prepared patches file's 'pan' array where it has
    one (a GPU machine, or a test's own pictures), else the installed training photos."""
    path = patches_path or patches.DEFAULT_PATH
    if path.exists():
        with np.load(path) as z:
            if "pan" in z.files:
                return list(z["pan"])
    return data.load_all()


def build(
    out: Path = DEFAULT_PATH,
    count: int = COUNT,
    seed: int = 1,
    patches_path: Path | None = None,
    tiles: np.ndarray | None = None,
    photos: list[np.ndarray] | None = None,
    real: list[np.ndarray] | None = None,
) -> Path:
    """Make `count` windows from the training patches and save them (atomically) to `out`;
    the fast pans are cut from `photos` (uint8 H×W×3; default: pan_photos(patches_path)), and
    a share P_REAL from the real clips `real` (N×H×W×3 uint8 each; default: those installed,
    real_video.load_all; an empty list: none)."""
    from kwaflux_lab.sets import real_video

    if tiles is None:
        tiles, _ = patches.load(patches_path or patches.DEFAULT_PATH)
    if photos is None:
        photos = pan_photos(patches_path)
    if real is None:
        real = real_video.load_all()
    n_real = 0
    rng = np.random.default_rng(seed)
    session, fusion = align_session(), fusion_session()
    keys = ("noisy", "clean", "level", "fused", "level_map")
    cols: dict[str, list] = {k: [] for k in keys}
    t0 = time.time()
    for i in range(count):
        a, b = (int(v) for v in rng.choice(len(tiles), 2, replace=False))
        frames = (
            real_video.random_window(rng, real, FRAME) if real and rng.random() < P_REAL else None
        )
        if frames is not None:
            w = window_of(rng, frames, session, fusion)
            n_real += 1
        elif rng.random() < P_PAN:
            w = make_window(rng, pan_patch(rng, photos), tiles[b], session, fusion, pan=True)
        else:
            w = make_window(rng, tiles[a], tiles[b], session, fusion)
        for k in keys:
            cols[k].append(w[k])
        if (i + 1) % 100 == 0:
            log.info("%d/%d windows, %.1f s", i + 1, count, time.time() - t0)
    meta = {"count": count, "seed": seed, "frame": FRAME, "crop": CROP, "order": ORDER,
            "fusion_sigma": "level", "motion": "subpixel", "pan": P_PAN,
            "real": n_real}  # fmt: skip
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp.npz")
    # float16 for the fused frame and its level: 0.00025 at most on 0..1, far below the noise.
    np.savez_compressed(
        tmp,
        noisy=np.stack(cols["noisy"]),
        clean=np.stack(cols["clean"]),
        level=np.asarray(cols["level"], np.float32),
        fused=np.stack(cols["fused"]).astype(np.float16),
        level_map=np.stack(cols["level_map"]).astype(np.float16),
        meta=np.asarray(json.dumps(meta)),
    )
    os.replace(tmp, out)
    log.info(
        "%s: %d windows (%d of real footage), %.1f MiB",
        out,
        count,
        n_real,
        out.stat().st_size / 2**20,
    )
    return out


def load(path: Path = DEFAULT_PATH) -> dict[str, np.ndarray]:
    """'noisy' N x K x CROP x CROP x 3 uint8, 'clean' N x CROP x CROP x 3 uint8, 'level' N
    float32, 'fused' N x CROP x CROP x 3 and 'level_map' N x CROP x CROP float16."""
    if not path.exists():
        raise SystemExit(
            f"{path}: no cached windows; build them with python -m kwaflux_lab.sets.temporal_data"
        )
    with np.load(path) as z:
        if "fused" not in z.files:
            raise SystemExit(f"{path}: windows without the fusion's output; rebuild them")
        return {k: z[k] for k in ("noisy", "clean", "level", "fused", "level_map")}


def read_meta(path: Path = DEFAULT_PATH) -> dict:
    """The build parameters stored with a set of windows (count, seed, sizes, motion)."""
    with np.load(path) as z:
        return json.loads(str(z["meta"])) if "meta" in z.files else {}


def validation_windows(
    val: np.ndarray,
    session,
    fusion,
    sigmas: tuple[float, ...] = (25.0, 15.0),
    size: int = 128,
) -> dict[float, dict[str, np.ndarray]]:
    """Fixed windows from the held-out patches at each Gaussian sigma (0..255 units): per sigma
    'frames' (the noisy frames in the engine's order, N x K x H x W x 3 float32, unaligned),
    'aligned' (the same after the shipped alignment), 'fused' and 'level' (the shipped fusion's
    output, N x H x W x 3 and N x H x W x 1) and 'clean' (centre, N x H x W x 3).
    The camera path cycles through still, panning, zoom/roll and panning under an occluder, so
    every kind of window counts the same; noise is clipped and 8-bit like decoded footage."""
    vrng = np.random.default_rng(11)
    clips = []
    for i, p in enumerate(val):
        kind = i % 4
        times = range(-RADIUS, RADIUS + 1)
        if kind == 0:
            motion = Motion(tuple((0, 0) for _ in times))
        else:
            v = vrng.uniform(-MAX_STEP, MAX_STEP, 2)
            shifts = tuple((int(round(v[0] * t)), int(round(v[1] * t))) for t in times)
            motion = Motion(shifts)
            if kind == 2:
                zoom, angle = math.exp(0.015), math.radians(0.4)
                motion = Motion(
                    shifts, tuple(zoom**t for t in times), tuple(angle * t for t in times)
                )
        frames = render_whole(p, size, motion)
        if kind == 3:
            # Forced in: add_occluder always places one (its probability is the caller's).
            frames = add_occluder(vrng, frames, val[(i + 1) % len(val)])
        clips.append(frames)
    clean_all = np.stack(clips).astype(np.float32) / 255.0  # N x K(time) x H x W x 3
    out = {}
    for sigma in sigmas:
        noisy = clean_all + (sigma / 255.0) * vrng.standard_normal(clean_all.shape).astype(
            np.float32
        )
        noisy = np.rint(np.clip(noisy, 0.0, 1.0) * 255.0) / 255.0
        frames = np.stack([in_engine_order(n) for n in noisy]).astype(np.float32)
        aligned = np.stack([align(session, f, sigma / 255.0) for f in frames])
        fused = [fuse(fusion, f, sigma / 255.0) for f in frames]
        out[sigma] = {
            "frames": frames,
            "aligned": aligned,
            "fused": np.stack([f for f, _ in fused]),
            "level": np.stack([lv for _, lv in fused])[..., None],
            "clean": clean_all[:, RADIUS],
        }
    return out


def main() -> None:
    ap = jobs.parser(__doc__)
    ap.add_argument("--out", type=Path, default=DEFAULT_PATH)
    ap.add_argument("--count", type=int, default=COUNT, help="windows (~74 KiB each zipped)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--patches", type=Path, default=None)
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    build(args.out, args.count, args.seed, args.patches)


if __name__ == "__main__":
    main()
