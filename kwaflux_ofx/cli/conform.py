"""The `kwaflux conform` sub-command: argument parsing and the human/JSON report."""

from __future__ import annotations

import argparse
import sys

from kwaflux_ofx import settings
from kwaflux_ofx.cli import options

CONFORM_EXAMPLES = """examples:
  kwaflux conform cut.otio -o cut_x2.otio --media-dir media_x2
  kwaflux conform cut.edl -o cut_x2.edl --media-dir media_x2 --rate 25 --search-path footage
  kwaflux conform cut.xml -o cut_x2.xml --media-dir media_x2 --codec dnxhr_hq --container mxf
  kwaflux conform cut.otio -o cut_x2.otio --media-dir media_x2 --codec h265 --crf 18 --overwrite
"""


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "conform",
        help="upscale/denoise the media a timeline uses and write a relinked timeline",
        description="Read a timeline (OTIO, EDL, FCP7 XML), render only the frames the cut uses "
        "(plus handles) through the engine into new media, and write a timeline pointing at it.",
        epilog=CONFORM_EXAMPLES,
    )
    p.add_argument("timeline", help="input timeline: .otio, .otioz, .edl, .xml, .fcpxml")
    p.add_argument(
        "-o",
        "--output",
        required=True,
        metavar="OUT_TIMELINE",
        help="output timeline; its extension picks the format",
    )
    p.add_argument("--media-dir", required=True, metavar="DIR", help="folder for the new media")
    options.add_scale(p, settings.DEFAULT_SCALE, "upscaling factor (1 = denoise only)")
    options.add_denoise(
        p,
        settings.DENOISE_AUTO,
        "denoise strength before upscaling (0 = off; auto = measured on each clip)",
    )
    options.add_temporal_radius(p)
    options.add_colour_space(p)
    p.add_argument("--model", default=None, help="SR model: registry name or .onnx path")
    options.add_look(p)
    p.add_argument("--denoise-model", default=None, help="denoise model: name or .onnx path")
    p.add_argument("--handles", type=int, default=12, help="extra frames each side of a clip")
    options.add_codec(p, settings.DEFAULT_CODEC, "codec of the new media")
    options.add_delivery_options(p, "container of the new media (default: the codec's own)")
    p.add_argument(
        "--search-path",
        action="append",
        default=[],
        metavar="DIR",
        help="folder to find media in by file name (repeatable)",
    )
    p.add_argument(
        "--rate",
        type=float,
        default=None,
        metavar="FPS",
        help="frame rate of an EDL (EDLs do not carry one)",
    )
    p.add_argument("--dry-run", action="store_true", help="print the plan, render nothing")
    p.add_argument("--jobs", type=int, default=1, metavar="N", help="outputs rendered at once")
    p.add_argument(
        "--scheduler",
        default=None,
        metavar="ADDRESS",
        help="Dask distributed scheduler, e.g. tcp://host:8786",
    )
    options.add_device(p)
    options.add_run_options(p)
    p.add_argument(
        "--overwrite", action="store_true", help="replace OUT_TIMELINE if it exists already"
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from kwaflux_ofx.conform.plan import ConformSettings
    from kwaflux_ofx.conform.report import print_report
    from kwaflux_ofx.conform.run import run_conform

    settings = ConformSettings(
        scale=args.scale,
        denoise=args.denoise,
        temporal_radius=args.temporal_radius,
        colour=args.colour_space,
        model=options.sr_model(args, args.scale),
        denoise_model=args.denoise_model,
        handles=args.handles,
        codec=args.codec,
        rate=args.rate,
        jobs=args.jobs,
        scheduler=args.scheduler,
        device=args.device,
        threads=args.threads,
        delivery=options.delivery_from(args),
    )
    mode = args.progress or ("none" if getattr(args, "quiet", False) else "bar")
    report = run_conform(
        args.timeline,
        args.output,
        args.media_dir,
        search_paths=args.search_path,
        settings=settings,
        dry_run=args.dry_run,
        report_path=args.report,
        progress=mode,
        overwrite=args.overwrite,
    )
    if not args.dry_run:
        # With JSON progress stdout belongs to the wrapper; the human summary goes to stderr.
        print_report(report, sys.stderr if mode == "json" else sys.stdout)
    bad = report["summary"]["failed"] + report["summary"]["missing"]
    bad += report["summary"].get("damaged", 0)  # rendered, broken source frames held
    return 1 if bad else 0
