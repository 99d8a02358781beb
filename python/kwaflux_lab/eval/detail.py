"""Detail of the SR looks on textured, text and face crops: PSNR-Y and high-pass energy against the original, and a crop sheet.

Each evaluation picture (scikit-image's, never training data) is bicubic-downscaled whole,
upscaled whole by each method, and measured on crops: PSNR on luma, and the energy of the
luma's Gaussian high-pass (sigma 1.5) of the output over that of the original. Writes the
"Detail" section of docs/models.md and docs/images/detail-xN.png (100% crops).

    cd python && ../.venv/bin/python -m kwaflux_lab.eval.detail [--scale 4]
"""

from __future__ import annotations

import logging
import tempfile
import time
from pathlib import Path

import numpy as np

from kwaflux_lab import docsection, jobs, paths
from kwaflux_lab.eval.common import (
    bicubic_down,
    fmt,
    goal_line,
    highpass_y,
    psnr_y,
    to_u8,
)
from kwaflux_lab.eval.peers import peer_models

log = logging.getLogger("evaluate")

CROP = 128
# The peer beside ours at each scale: waifu2x's photo model at x2; at x4 Real-ESRGAN x4plus,
# itself trained with an adversarial loss for detail.
PEERS = {2: "waifu2x photo x2", 4: "Real-ESRGAN x4plus"}
# (label, kind, picture, top, left): kind "texture" counts for the goal; "text" and "face" are
# where invented structure would show.
CROPS = (
    ("fur (chelsea)", "texture", "chelsea", 8, 200),
    ("foliage (grass)", "texture", "grass", 192, 192),
    ("fabric (astronaut's suit)", "texture", "astronaut", 360, 10),
    ("gravel", "texture", "gravel", 192, 192),
    ("text (text)", "text", "text", 22, 160),
    ("embroidered text (astronaut's badge)", "text", "astronaut", 330, 112),
    ("face (astronaut)", "face", "astronaut", 64, 160),
)
GOAL_HF = (0.9, 1.1)
GOAL_PSNR_OVER_BICUBIC = 0.5


def picture(name: str, scale: int = 2) -> np.ndarray:
    import skimage.data as d

    img = np.asarray(getattr(d, name)())
    if img.ndim == 2:
        img = np.stack([img] * 3, axis=-1)
    img = img[..., :3]
    h, w = img.shape[:2]
    return np.ascontiguousarray(img[: h // scale * scale, : w // scale * scale]).astype(np.uint8)


def pil_up(lr: np.ndarray, scale: int, method: str) -> np.ndarray:
    from PIL import Image

    h, w = lr.shape[:2]
    filt = {"bicubic": Image.Resampling.BICUBIC, "lanczos": Image.Resampling.LANCZOS}[method]
    return np.asarray(Image.fromarray(lr).resize((w * scale, h * scale), filt))


def crop(img: np.ndarray, top: int, left: int, side: int = CROP) -> np.ndarray:
    return img[top : top + side, left : left + side]


def measure(
    methods: dict, scale: int = 2
) -> tuple[dict[str, dict[str, tuple[float, float]]], dict[str, dict[str, np.ndarray]]]:
    """Per crop label, per method: (PSNR-Y dB, high-pass energy over the original's); and the
    crops themselves (the original under "source")."""
    figures: dict = {}
    pixels: dict = {}
    outputs: dict[str, dict[str, np.ndarray]] = {}
    for name in dict.fromkeys(c[2] for c in CROPS):
        hr = picture(name, scale)
        lr = bicubic_down(hr, scale)
        outputs[name] = {"source": hr, **{m: to_u8(run(lr)) for m, run in methods.items()}}
    for label, _kind, name, top, left in CROPS:
        outs = outputs[name]
        ref_hp = crop(highpass_y(outs["source"]), top, left)
        ref = crop(outs["source"], top, left)
        figures[label] = {}
        pixels[label] = {"source": ref}
        for m in methods:
            out = outs[m]
            c = crop(out, top, left)
            ratio = float(np.mean(crop(highpass_y(out), top, left) ** 2) / np.mean(ref_hp**2))
            figures[label][m] = (psnr_y(ref, c), ratio)
            pixels[label][m] = c
    return figures, pixels


SHEET_LABELS = {
    "source": "original",
    "lanczos": "Lanczos",
    "faithful": "faithful",
    "detail": "detail",
}


def crop_sheet(pixels: dict, columns: list[str], path: Path, peer: str = PEERS[2]) -> None:
    """One row per crop, one column per method, at 100%, labelled."""
    from PIL import Image, ImageDraw

    pad, head = 4, 18
    rows = list(pixels)
    w = len(columns) * (CROP + pad) + pad
    h = head + len(rows) * (CROP + pad + 14) + pad
    sheet = Image.new("RGB", (w, h), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    for j, col in enumerate(columns):
        label = peer if col == "peer" else SHEET_LABELS.get(col, col)
        draw.text((pad + j * (CROP + pad), 4), label, fill=(0, 0, 0))
    for i, label in enumerate(rows):
        y = head + i * (CROP + pad + 14)
        draw.text((pad, y), label, fill=(0, 0, 0))
        for j, col in enumerate(columns):
            sheet.paste(Image.fromarray(pixels[label][col]), (pad + j * (CROP + pad), y + 14))
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path, optimize=True)


def report(figures: dict, names: dict[str, str], sheet: str, scale: int = 2) -> tuple[str, dict]:
    methods = list(names)
    command = "python -m kwaflux_lab.eval.detail" + (f" --scale {scale}" if scale != 2 else "")
    out = [
        f"Written by `{command}` on {time.strftime('%Y-%m-%d')}: x{scale} of "
        "scikit-image's pictures (never training data), each bicubic-downscaled whole (Pillow, "
        f"antialiased) and upscaled whole; measured on {CROP}x{CROP} crops of the result. Each "
        "cell: PSNR-Y in dB / energy of the luma's Gaussian high-pass (sigma 1.5) of the output "
        "over that of the original (1.00: as much fine detail as the original; the measure does "
        "not say whether it is the right detail, PSNR and the crop sheet do).",
        "",
        "| crop | " + " | ".join(names[m] for m in methods) + " |",
        "|---|" + "---:|" * len(methods),
    ]
    for label, row in figures.items():
        cells = [f"{fmt(row[m][0], 2)} / {fmt(row[m][1], 2)}" for m in methods]
        out.append(f"| {label} | " + " | ".join(cells) + " |")
    textures = [c[0] for c in CROPS if c[1] == "texture"]
    verdict: dict = {}
    if "detail" in methods:
        ratios = [figures[t]["detail"][1] for t in textures]
        lo, hi = GOAL_HF
        worst = max(ratios, key=lambda r: max(lo - r, r - hi, 0.0))
        verdict["hf"] = all(lo <= r <= hi for r in ratios)
        margins = [figures[t]["detail"][0] - figures[t]["bicubic"][0] for t in figures]
        verdict["psnr"] = min(margins) >= GOAL_PSNR_OVER_BICUBIC
        faithful = ", ".join(f"{figures[t]['faithful'][1]:.2f}" for t in textures)
        out += [
            "",
            goal_line(
                verdict["hf"],
                f"Goal: detail model's high-pass energy {lo}-{hi} of the original's on the "
                f"textured crops: {', '.join(f'{r:.2f}' for r in ratios)} (worst {worst:.2f}; "
                f"the faithful model {faithful})",
            ),
            goal_line(
                verdict["psnr"],
                f"Goal: detail model's PSNR ≥ bicubic + {GOAL_PSNR_OVER_BICUBIC} dB on every crop: "
                f"worst {min(margins):+.2f} dB (" + ", ".join(f"{m:+.2f}" for m in margins) + ")",
            ),
        ]
    out += [
        "",
        f"![detail crops]({sheet}) 100% crops, left to right: "
        + ", ".join(["the original", *[names[m] for m in methods if m != "bicubic"]])
        + ".",
    ]
    return "\n".join(out), verdict


def main() -> None:
    ap = jobs.parser(__doc__)
    ap.add_argument("--scale", type=int, choices=sorted(PEERS), default=2)
    ap.add_argument("--faithful", help="the faithful model (name/path; default kwaflux-sr-xN)")
    ap.add_argument("--detail", help="the detail model (default kwaflux-sr-xN-detail)")
    ap.add_argument("--no-peer", action="store_true", help="leave out the peer (PEERS)")
    ap.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "kwaflux-eval")
    ap.add_argument("--sheet", type=Path, help="default docs/images/detail-xN.png")
    ap.add_argument("--no-write", action="store_true", help="print, leave docs/models.md alone")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    scale = args.scale
    faithful = args.faithful or f"kwaflux-sr-x{scale}"
    detail = args.detail or f"kwaflux-sr-x{scale}-detail"
    sheet_path = args.sheet or paths.ROOT / "docs" / "images" / f"detail-x{scale}.png"
    peer_name = PEERS[scale]

    from kwaflux_ofx import Engine

    engine = Engine(device="cpu", threads=1)

    def model(name) -> object:
        return lambda lr: engine.process(lr, scale=scale, denoise=0, sr_model=name)

    methods = {
        "bicubic": lambda lr: pil_up(lr, scale, "bicubic"),
        "lanczos": lambda lr: pil_up(lr, scale, "lanczos"),
        "faithful": model(faithful),
        "detail": model(detail),
    }
    names = {
        "bicubic": "bicubic",
        "lanczos": "Lanczos",
        "faithful": f"faithful ({Path(faithful).stem})",
        "detail": f"detail ({Path(detail).stem})",
    }
    if not args.no_peer:
        peer = peer_models(args.cache, [peer_name]).get(peer_name)
        if peer is not None:
            methods["peer"] = model(peer)
            names["peer"] = peer_name
    figures, pixels = measure(methods, scale)
    columns = ["source", *[m for m in methods if m != "bicubic"]]
    crop_sheet(pixels, columns, sheet_path, peer_name)
    docs = paths.MODELS_DOC.parent.resolve()
    sheet = sheet_path.resolve()
    rel = sheet.relative_to(docs) if sheet.is_relative_to(docs) else sheet
    body, _ = report(figures, names, str(rel), scale)
    print(body)
    if not args.no_write:
        # x2 keeps the section it always had; x4 has its own markers under it.
        name = "detail" if scale == 2 else f"detail-x{scale}"
        docsection.write_section(paths.MODELS_DOC, name, body, heading="## Detail")
        log.info("wrote the %s section of %s and %s", name, paths.MODELS_DOC, sheet_path)


if __name__ == "__main__":
    main()
