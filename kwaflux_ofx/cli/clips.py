"""`kwaflux upscale` on clips: the options only clips take, and the batch around conform/clips.py."""

from __future__ import annotations

import argparse
import dataclasses
import glob
import os
import sys

from kwaflux_ofx import settings
from kwaflux_ofx.cli import options
from kwaflux_ofx.conform.clips import VIDEO_SUFFIXES, is_clip_input  # noqa: F401 - used by process.py
from kwaflux_ofx.errors import KwafluxError
from kwaflux_ofx.media.timing import VfrMode


def add_clip_options(p: argparse.ArgumentParser) -> None:
    options.add_codec(p, None, "codec of a video output (default: from its extension)")
    options.add_delivery_options(
        p, "container of a batch's outputs (default: the codec's own); one output: its extension"
    )
    p.add_argument("--start", default=None, metavar="TC|FRAME", help="first frame rendered")
    p.add_argument(
        "--end", default=None, metavar="TC|FRAME", help="first frame NOT rendered (default: end)"
    )
    p.add_argument(
        "--vfr",
        choices=[m.value for m in VfrMode],
        default=VfrMode.CFR.value,
        help="variable frame rate: conform to the base rate, or keep every frame once",
    )
    options.add_run_options(p)


def _output_for(source: str, out_dir: str, codec: str, delivery) -> str:
    from kwaflux_ofx.conform.plan import safe_stem

    stem = safe_stem(os.path.splitext(os.path.basename(source))[0])
    spec = settings.CODECS[codec]
    return os.path.join(out_dir, stem if spec.is_sequence else stem + delivery.extension(codec))


def cmd_clips(args, engine, scale_of) -> int:
    """A clip, a sequence, or a batch of clips: plan each, render them all, report."""
    from kwaflux_ofx.conform.clips import clip_inputs, pick_codec, plan_clip, print_clips, run_clips
    from kwaflux_ofx.conform.plan import ConformSettings

    text = str(args.input)
    sources = clip_inputs(text)
    batch = os.path.isdir(text) or (glob.has_magic(text) and not os.path.exists(text))
    out = str(args.output)
    delivery = options.delivery_from(args)
    if batch:
        codec = args.codec or settings.DEFAULT_CODEC
    else:
        seq_out = args.codec is not None and settings.CODECS[args.codec].is_sequence
        codec = args.codec if seq_out else pick_codec(out, args.codec)
        ext = os.path.splitext(out)[1].lower()
        if delivery.container not in (None, ext) and not seq_out:
            raise KwafluxError(f"--container {args.container} but the output is {ext!r}", out)
        if not seq_out:
            delivery = dataclasses.replace(delivery, container=ext)
    scale = scale_of(args, engine)
    chosen = ConformSettings(
        scale=scale,
        denoise=args.denoise,
        temporal_radius=args.temporal_radius,
        colour=args.colour_space,
        model=options.sr_model(args, scale),
        denoise_model=args.denoise_model,
        codec=codec,
        device=args.device,
        threads=args.threads,
        delivery=delivery,
    )
    if batch:  # the choices are checked (ConformSettings) before the folder is made
        os.makedirs(out, exist_ok=True)
        targets = [_output_for(s, out, codec, delivery) for s in sources]
    else:
        if not os.path.isdir(os.path.dirname(os.path.abspath(out))):
            raise KwafluxError("output folder does not exist", os.path.dirname(out))
        targets = [out]
    units = [
        plan_clip(
            s,
            t,
            chosen,
            uid=i,
            start=args.start,
            end=args.end,
            vfr=VfrMode(args.vfr),
            overwrite=args.overwrite,
        )
        for i, (s, t) in enumerate(zip(sources, targets, strict=True))
    ]
    mode = args.progress or ("none" if args.quiet else "bar")
    report = run_clips(units, chosen, engine, mode, args.report)
    if not args.quiet:
        print_clips(report, sys.stderr if mode == "json" else sys.stdout)
    # a clip from a damaged source is written, but the run says so in its exit code too
    return 1 if report["summary"]["failed"] or report["summary"]["damaged"] else 0
