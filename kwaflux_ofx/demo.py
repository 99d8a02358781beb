"""`make demo`: the whole story on generated sample material, in a few minutes on a 2-core CPU."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np


def step(title: str) -> None:
    print(f"\n== {title}", flush=True)


def engine_demo(out: Path) -> None:
    from kwaflux_ofx.cli import main as kwaflux
    from kwaflux_ofx.engine.engine import from_float
    from kwaflux_ofx.imageio import write_image
    from kwaflux_ofx.samples import add_camera_noise, scene

    step("a noisy low-resolution frame -> denoised and upscaled 2x")
    sample = out / "sample_frame.png"
    write_image(sample, from_float(add_camera_noise(scene()), np.dtype(np.uint8)))
    upscaled = out / "sample_frame_x2.png"
    args = ["--scale", "2", "--denoise", "0.5", "--overwrite"]
    if kwaflux(["upscale", str(sample), str(upscaled), *args]) != 0:
        raise SystemExit(1)
    preview = out / "preview.png"
    if kwaflux(["preview", str(sample), str(preview), *args]) != 0:
        raise SystemExit(1)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m kwaflux_ofx.demo", description=__doc__)
    ap.add_argument("out", type=Path, nargs="?", default=Path("demo_out"))
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    engine_demo(args.out)
    print(f"\nDone: everything is in {args.out}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
