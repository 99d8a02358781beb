"""The export decision: the shipped ONNX models and the latest checkpoints on the trainers' own
validation sets, side by side (the checkpoints' figures from their logs).

Run: `cd python && ../.venv/bin/python -m kwaflux_lab.eval.compare_shipped [--measure-checkpoints]`.
A checkpoint is worth exporting when it beats the shipped model here; eval/evaluate.py then measures it
against the peers on the evaluation photos before it ships.
"""

from __future__ import annotations

import json

import numpy as np
import onnxruntime as ort
import torch

from kwaflux_lab import jobs
from kwaflux_lab.sets import patches
from kwaflux_lab.train import denoise as train_denoise
from kwaflux_lab.train import sr as train_sr
from kwaflux_lab.train.common import checkpoint_path, load_checkpoint
from kwaflux_lab.train.export import MODELS_DIR, build

RUNS = {"denoise": "kwaflux-denoise", "sr-x2": "kwaflux-sr-x2", "sr-x4": "kwaflux-sr-x4"}


def onnx_runner(name: str):
    """The shipped model as run(x NCHW tensor, level or None) -> tensor, one crop at a time."""
    session = ort.InferenceSession(
        str(MODELS_DIR / f"{name}.onnx"), providers=["CPUExecutionProvider"]
    )
    inputs = [i.name for i in session.get_inputs()]

    def run(x: torch.Tensor, level: float | None = None) -> torch.Tensor:
        outs = []
        for crop in x.numpy()[:, None]:
            feed = {inputs[0]: crop}
            if level is not None:
                feed[inputs[1]] = np.full((1, 1) + crop.shape[2:], level, np.float32)
            outs.append(session.run(None, feed)[0])
        return torch.from_numpy(np.concatenate(outs))

    return run


def checkpoint_runner(run_name: str):
    """The checkpoint's EMA weights as the same kind of run function."""
    model = build(load_checkpoint(run_name))
    model.eval()

    def run(x: torch.Tensor, level: float | None = None) -> torch.Tensor:
        with torch.no_grad():
            if level is None:
                return model(x)
            return model(x, torch.full((x.shape[0], 1) + x.shape[2:], level))

    return run


def last_logged(run_name: str) -> dict:
    path = checkpoint_path(run_name).with_suffix(".log.jsonl")
    return json.loads(path.read_text().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    ap = jobs.parser(__doc__.splitlines()[0])
    ap.add_argument("--patches", default=patches.DEFAULT_PATH)
    ap.add_argument(
        "--measure-checkpoints",
        action="store_true",
        help="measure the checkpoints here too, instead of quoting their logs",
    )
    args = ap.parse_args(argv)
    _, val = patches.load(args.patches)
    torch.set_num_threads(1)
    for run_name, model_name in RUNS.items():
        if run_name == "denoise":
            sets = train_denoise.validation_set(val)
            shipped = train_denoise.scores(onnx_runner(model_name), sets)
            ours = (
                train_denoise.scores(checkpoint_runner(run_name), sets)
                if args.measure_checkpoints
                else last_logged(run_name)
            )
        else:
            scale = int(run_name[-1])
            vlr, vhr = train_sr.validation_set(val, scale)
            shipped = train_sr.scores(onnx_runner(model_name), vlr, vhr, scale)
            ours = (
                train_sr.scores(checkpoint_runner(run_name), vlr, vhr, scale)
                if args.measure_checkpoints
                else last_logged(run_name)
            )
        hours = last_logged(run_name)["hours"]
        print(f"{run_name} (checkpoint at {hours:.2f} h):")
        for key, value in shipped.items():
            if key.endswith("_in") or key == "bicubic_psnr":
                print(f"  {key:14s} {value:7.3f}")
                continue
            if key not in ours:  # a figure the checkpoint's log predates
                print(f"  {key:14s} shipped {value:7.3f}  checkpoint (not logged yet)")
                continue
            unit = "levels, lower is better" if key.endswith("_shift") else "dB"
            print(f"  {key:14s} shipped {value:7.3f}  checkpoint {ours[key]:7.3f}  "
                  f"({ours[key] - value:+.3f} {unit})")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
