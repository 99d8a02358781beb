"""Random, seeded degradations that imitate real footage: resampling kernels, blur, sensor noise,
colour noise, film grain, JPEG and video-codec damage. All work on float32 HxWx3 arrays in 0..1."""

from __future__ import annotations

import io

import av
import numpy as np
from PIL import Image, ImageDraw, ImageFilter

_KERNELS = (
    Image.Resampling.BICUBIC,
    Image.Resampling.LANCZOS,
    Image.Resampling.BOX,  # area averaging, what many NLE scalers do when shrinking
    Image.Resampling.BILINEAR,
)


def to_pil(x: np.ndarray) -> Image.Image:
    return Image.fromarray(np.clip(np.rint(x * 255.0), 0, 255).astype(np.uint8))


def from_pil(im: Image.Image) -> np.ndarray:
    return np.asarray(im, dtype=np.float32) / 255.0


def random_patch(rng: np.random.Generator, photo: np.ndarray, size: int) -> np.ndarray:
    """A random crop with a random flip/90-degree rotation, float32 0..1."""
    h, w = photo.shape[:2]
    y = int(rng.integers(0, h - size + 1))
    x = int(rng.integers(0, w - size + 1))
    p = photo[y : y + size, x : x + size]
    p = np.rot90(p, int(rng.integers(0, 4)))
    if rng.random() < 0.5:
        p = p[:, ::-1]
    return np.ascontiguousarray(p, dtype=np.float32) / 255.0


def blur(rng: np.random.Generator, x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    return from_pil(to_pil(x).filter(ImageFilter.GaussianBlur(float(rng.uniform(lo, hi)))))


def downscale(rng: np.random.Generator, x: np.ndarray, scale: int) -> np.ndarray:
    h, w = x.shape[:2]
    kernel = _KERNELS[int(rng.integers(0, len(_KERNELS)))]
    # Resize in float ("F" mode per channel) so the LR image is not quantised twice.
    chans = [
        np.asarray(Image.fromarray(x[..., c]).resize((w // scale, h // scale), kernel))
        for c in range(3)
    ]
    return np.clip(np.stack(chans, axis=-1), 0.0, 1.0).astype(np.float32)


def sensor_noise(rng: np.random.Generator, x: np.ndarray, max_sigma: float) -> np.ndarray:
    """Poisson-Gaussian noise: variance = a*signal + b^2, partly correlated across channels
    (luma noise) and partly not (chroma noise), as in demosaiced camera footage."""
    b = rng.uniform(0.0, max_sigma)
    a = rng.uniform(0.0, max_sigma) ** 2  # shot-noise gain: std ~ max_sigma at full white
    std = np.sqrt(a * x + b * b)
    mix = rng.uniform(0.0, 1.0)  # 0: pure chroma noise, 1: pure luma noise
    luma = rng.standard_normal(x.shape[:2] + (1,), dtype=np.float32)
    chroma = rng.standard_normal(x.shape, dtype=np.float32)
    n = np.sqrt(mix) * luma + np.sqrt(1.0 - mix) * chroma
    return x + std * n


def colour_blotches(rng: np.random.Generator, x: np.ndarray, max_sigma: float) -> np.ndarray:
    """Low-frequency chroma noise (the blotchy colour noise of dark, high-ISO footage)."""
    h, w = x.shape[:2]
    f = int(rng.choice([2, 4]))
    small = rng.standard_normal((max(h // f, 1), max(w // f, 1), 3), dtype=np.float32)
    chans = [
        np.asarray(Image.fromarray(small[..., c]).resize((w, h), Image.Resampling.BILINEAR))
        for c in range(3)
    ]
    n = np.stack(chans, axis=-1)
    n -= n.mean(axis=-1, keepdims=True)  # chroma only, no luma shift
    return x + rng.uniform(0.0, max_sigma) * n


def film_grain(rng: np.random.Generator, x: np.ndarray, max_sigma: float) -> np.ndarray:
    """Monochrome grain with a grain size above one pixel, strongest in the mid-tones."""
    g = rng.standard_normal(x.shape[:2], dtype=np.float32)
    g = _blur3(g, float(rng.uniform(0.4, 1.0)))
    g = g / (g.std() + 1e-6)
    midtone = 4.0 * x.mean(axis=-1, keepdims=True) * (1.0 - x.mean(axis=-1, keepdims=True))
    return x + rng.uniform(0.0, max_sigma) * midtone * g[..., None]


def _blur3(g: np.ndarray, sigma: float) -> np.ndarray:
    """Separable 3-tap Gaussian blur of a float 2-D array (PIL cannot blur float images)."""
    k = np.exp(-0.5 * (np.arange(-1, 2) / sigma) ** 2).astype(np.float32)
    k /= k.sum()
    p = np.pad(g, 1, mode="reflect")
    g = k[0] * p[:-2] + k[1] * p[1:-1] + k[2] * p[2:]
    return k[0] * g[:, :-2] + k[1] * g[:, 1:-1] + k[2] * g[:, 2:]


def gaussian_noise(rng: np.random.Generator, x: np.ndarray, sigma: float) -> np.ndarray:
    return x + sigma * rng.standard_normal(x.shape, dtype=np.float32)


def jpeg(rng: np.random.Generator, x: np.ndarray, qlo: int, qhi: int) -> np.ndarray:
    buf = io.BytesIO()
    subsampling = int(rng.choice([0, 2]))  # 4:4:4 or 4:2:0 like most delivery codecs
    to_pil(x).save(buf, "JPEG", quality=int(rng.integers(qlo, qhi + 1)), subsampling=subsampling)
    buf.seek(0)
    with Image.open(buf) as im:
        return from_pil(im.convert("RGB"))


def video_codec(rng: np.random.Generator, x: np.ndarray, strength: float = 1.0) -> np.ndarray:
    """Real codec damage through PyAV: H.264 (deblocking on or off) or MPEG-4 part 2 at a high
    quantiser, always 4:2:0. Half the time the patch is the second frame of a two-frame GOP
    after a shifted copy of itself, so it carries P-frame (motion-compensated) damage, not only
    intra blocks. `strength` 0..1 scales the quantiser range from mild to heavy."""
    h, w = x.shape[:2]
    he, we = h + h % 2, w + w % 2
    img = np.clip(np.rint(x * 255.0), 0, 255).astype(np.uint8)
    img = np.pad(img, ((0, he - h), (0, we - w), (0, 0)), mode="edge")
    frames = [img]
    if rng.random() < 0.5:
        dy, dx = (int(v) for v in rng.integers(-3, 4, 2))
        frames.insert(0, np.roll(img, (dy, dx), axis=(0, 1)))
    if rng.random() < 0.6:
        qp = int(round(24 + strength * rng.uniform(0.0, 22.0)))
        params = "no-deblock=1" if rng.random() < 0.3 else ""
        codec, fmt = "libx264", "matroska"
        opts = {"qp": str(qp), "preset": "veryfast", "threads": "1", "x264-params": params}
    else:
        q = int(round(3 + strength * rng.uniform(0.0, 28.0)))
        codec, fmt, opts = "mpeg4", "avi", {"qscale": str(q), "threads": "1"}
    decoded = codec_roundtrip(frames, codec, {k: v for k, v in opts.items() if v}, fmt)
    return decoded[-1][:h, :w].astype(np.float32) / 255.0


def codec_roundtrip(
    frames: list[np.ndarray], codec: str, options: dict, container: str = "matroska"
) -> list[np.ndarray]:
    """Encode RGB uint8 frames as one short 25 fps clip with a real encoder (4:2:0), decode them
    back (also the evaluation's codec damage)."""
    buf = io.BytesIO()
    h, w = frames[0].shape[:2]
    with av.open(buf, "w", format=container) as out:
        stream = out.add_stream(codec, rate=25)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.options = dict(options)
        for f in frames:
            out.mux(stream.encode(av.VideoFrame.from_ndarray(f, format="rgb24")))
        out.mux(stream.encode())
    buf.seek(0)
    with av.open(buf) as inp:
        return [f.to_ndarray(format="rgb24") for f in inp.decode(video=0)]


def faint_lines(rng: np.random.Generator, x: np.ndarray) -> np.ndarray:
    """Draw a few thin straight lines of low contrast (painted lines, cables, cracks, hair): the
    structure a denoiser wipes out when it cannot tell a faint edge from noise. In the clean
    target too, so the network learns that such edges are signal."""
    h, w = x.shape[:2]
    im = to_pil(x)
    draw = ImageDraw.Draw(im)
    for _ in range(int(rng.integers(1, 4))):
        base = np.asarray(im, dtype=np.float32).mean() / 255.0
        sign = 1.0 if base < 0.5 else -1.0
        contrast = sign * rng.uniform(8.0, 40.0) / 255.0
        colour = np.clip(base + contrast, 0, 1)
        pts = [tuple(int(v) for v in rng.integers(0, [w, h])) for _ in range(2)]
        draw.line(pts, fill=tuple([int(colour * 255)] * 3), width=int(rng.integers(1, 4)))
    return from_pil(im)


# Share of SR samples blurred before the downscale. The network learns to undo that blur on every
# input, so the share sets how hard it sharpens what was not blurred (see train/sr.py).
SR_BLUR_SHARE = 0.3


def sr_pair(
    rng: np.random.Generator,
    photo: np.ndarray,
    scale: int,
    lr_size: int,
    blur_share: float = SR_BLUR_SHARE,
) -> tuple[np.ndarray, np.ndarray]:
    """(LR input, HR target) for super-resolution training.

    About half the samples are a plain downscale with a random kernel; the rest add mild blur,
    sensor noise or compression at levels typical of delivered footage, not heavy damage: the
    denoiser is the tool for heavy damage, and SR trained on it learns to smear texture.
    """
    hr = random_patch(rng, photo, lr_size * scale)
    x = hr
    if rng.random() < blur_share:
        x = blur(rng, x, 0.3, 0.6 * scale)
    lr = downscale(rng, x, scale)
    if rng.random() < 0.25:
        lr = sensor_noise(rng, lr, 4.0 / 255.0)
    kind = rng.random()
    if kind < 0.2:
        lr = jpeg(rng, lr, 60, 95)
    elif kind < 0.35:
        # Web video: downscale, then a delivery codec at a moderate quantiser.
        lr = video_codec(rng, np.clip(lr, 0.0, 1.0), strength=0.35)
    return np.clip(lr, 0.0, 1.0), hr


def levels(rng: np.random.Generator, x: np.ndarray) -> np.ndarray:
    """The patch's range squeezed into a random [lo, hi] inside [0, 1]. Photographs put much of
    their area at full white (skies, highlights), which taught the denoiser that a bright noisy
    patch is brighter than it looks: it lifted flat 200/255 by 2 levels under sigma 25, and
    video's whites are seldom saturated. Squeezed patches keep highlights below white as often
    as at it."""
    lo = rng.uniform(0.0, 0.08)
    hi = rng.uniform(0.75, 1.0)
    return (lo + x * (hi - lo)).astype(np.float32)


def denoise_pair(
    rng: np.random.Generator, photo: np.ndarray, size: int, max_sigma: float
) -> tuple[np.ndarray, np.ndarray, float]:
    """(noisy input, clean target, noise level) for denoise training.

    The noise level fed to the network is the RMS of the damage actually added, so one scalar
    control means the same thing for Gaussian noise, sensor noise, grain and codec damage.
    """
    clean = random_patch(rng, photo, size)
    if rng.random() < 0.5:
        clean = levels(rng, clean)
    if rng.random() < 0.15:
        clean = faint_lines(rng, clean)
    kind = rng.random()
    if kind < 0.04:
        return clean, clean, 0.0
    x = clean
    if kind < 0.34:
        x = gaussian_noise(rng, x, rng.uniform(0.0, max_sigma))
    elif kind < 0.64:
        x = sensor_noise(rng, x, max_sigma * 0.8)
        if rng.random() < 0.5:
            x = colour_blotches(rng, x, 0.04)
    elif kind < 0.74:
        x = film_grain(rng, x, 0.12)
    else:
        # Compressed footage, often noisy before it was compressed.
        if rng.random() < 0.5:
            x = sensor_noise(rng, x, 0.06)
        if kind < 0.84:
            x = jpeg(rng, np.clip(x, 0.0, 1.0), 10, 70)
        else:
            x = video_codec(rng, np.clip(x, 0.0, 1.0))
    x = np.clip(x, 0.0, 1.0)
    level = float(np.sqrt(np.mean((x - clean) ** 2)))
    return x, clean, level


def textured_patches(
    rng: np.random.Generator, photo: np.ndarray, size: int, count: int, candidates: int = 24
) -> list[np.ndarray]:
    """The `count` most detailed of `candidates` random crops: flat bokeh crops say nothing
    about how well a model restores detail."""
    crops = [random_patch(rng, photo, size) for _ in range(candidates)]
    detail = [
        float(np.mean(np.abs(np.diff(c, axis=0))) + np.mean(np.abs(np.diff(c, axis=1))))
        for c in crops
    ]
    order = np.argsort(detail)[::-1][:count]
    return [crops[i] for i in order]
