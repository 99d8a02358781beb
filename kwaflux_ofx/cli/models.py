"""`kwaflux models list|info|import-ncnn`: the models found by name, what one is, converting ncnn ones."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from kwaflux_ofx.errors import KwafluxError, ModelError
from kwaflux_ofx.tools.ncnn.convert import import_ncnn


def register(sub) -> None:
    p = sub.add_parser("models", help="list and inspect models")
    msub = p.add_subparsers(dest="models_command", metavar="ACTION", required=True)
    q = msub.add_parser("list", help="models found by name (built-in and your models folder)")
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=cmd_models_list)
    q = msub.add_parser(
        "info", help="what a model is: kind, scale, channels, range, receptive field"
    )
    q.add_argument("model", metavar="NAME|PATH")
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=cmd_models_info)
    add_models_subcommand(msub)


def cmd_models_list(args) -> int:
    from kwaflux_ofx.models.registry import list_models, user_models_dir

    rows = []
    for info in list_models():
        row = {"name": info.name, "builtin": info.builtin, "path": str(info.path)}
        try:
            spec = _spec(info.path)
            row.update(kind=spec.kind, scale=spec.scale)
        except KwafluxError as exc:
            row.update(kind="unusable", scale=None, error=exc.message)
        rows.append(row)
    if args.json:
        json.dump(rows, sys.stdout, indent=2)
        print()
        return 0
    if not rows:
        print(f"no models found (built-in models missing? your folder: {user_models_dir()})")
    kinds = [f"{r['kind']} x{r['scale']}" if r.get("scale") else r["kind"] for r in rows]
    width = max((len(k) for k in kinds), default=0)  # "temporal-denoise x1" is the longest
    for r, kind in zip(rows, kinds, strict=True):
        where = "built-in" if r["builtin"] else "user"
        print(f"{r['name']:<28} {kind:<{width}} {where:<9} {r['path']}")
    return 0


def _spec(path):
    from kwaflux_ofx.engine.spec import ModelSpec

    return ModelSpec.from_onnx(path)


def cmd_models_info(args) -> int:
    from kwaflux_ofx.models.registry import resolve_model

    spec = _spec(resolve_model(args.model))
    info = {
        "name": spec.name,
        "path": str(spec.path),
        "kind": spec.kind,
        "scale": spec.scale,
        "channels": spec.channels,
        "range": list(spec.value_range),
        "noise_input": spec.noise_input,
        "max_noise": spec.max_noise,
        "receptive_field": spec.receptive_field,
        "pad": spec.pad,
        "input_dtype": spec.input_dtype,
        "probed": spec.probed,
        "metadata": spec.metadata,
    }
    if args.json:
        json.dump(info, sys.stdout, indent=2)
        print()
        return 0
    for k, v in info.items():
        if k != "metadata":
            print(f"{k:<16} {v}")
    for k, v in spec.metadata.items():
        if k not in info:
            print(f"{k:<16} {v}")
    return 0


def _run_cli(args: argparse.Namespace) -> int:
    out = Path(args.output)
    if out.exists() and not args.overwrite:
        raise ModelError("exists already (pass --overwrite to replace it)", out)
    if out.resolve() in (Path(args.param).resolve(), Path(args.bin).resolve()):
        raise ModelError("output would overwrite an input file", out)
    res = import_ncnn(
        args.param,
        args.bin,
        args.output,
        name=args.name,
        license=args.license or "",
        bake_padding=not args.no_bake_padding,
        add_input=args.add_input,
    )
    g = res.geometry
    print(
        f"{res.path}: sr x{g.scale}, edge pad {g.pad} px"
        f"{' (baked in)' if not args.no_bake_padding else ''}, size multiple {g.multiple}, "
        f"receptive field {res.receptive_field} px"
        f"{', global pooling (tiles see only their own context)' if res.global_context else ''}"
    )
    return 0


def add_models_subcommand(models_subparsers) -> None:
    """Add `import-ncnn` under `kwaflux models` (called by the models command's parser)."""
    p = models_subparsers.add_parser(
        "import-ncnn",
        help="convert an ncnn model (.param + .bin) to ONNX for the engine",
        description=(
            "Convert an ncnn SR/denoise model (waifu2x, Real-ESRGAN, Real-CUGAN...) to an ONNX "
            "model with kwaflux metadata. Edge padding and size rounding the model needs are "
            "found by probing and built into the ONNX graph."
        ),
    )
    p.add_argument("param", help="the ncnn .param file (text format)")
    p.add_argument("bin", help="the ncnn .bin weight file")
    p.add_argument("-o", "--output", required=True, help="the ONNX file to write")
    p.add_argument("--name", help="model name stored in the metadata (default: the file stem)")
    p.add_argument("--license", help="licence text stored in the metadata")
    p.add_argument("--overwrite", action="store_true", help="replace OUTPUT if it exists")
    p.add_argument(
        "--no-bake-padding",
        action="store_true",
        help="do not build the input padding into the graph; record it as kwaflux.pad instead",
    )
    p.add_argument(
        "--add-input",
        choices=["nearest"],
        help="add the input, upscaled this way, to the output (Real-CUGAN x4 needs 'nearest')",
    )
    p.set_defaults(func=_run_cli)
