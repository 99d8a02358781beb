"""The reliability runner: runs the campaigns (one module each) and writes docs/reliability.md.

Campaigns: malformed inputs, hostile timelines, kill -9 soaks, simulated OOM, OFX fuzzing.

Each campaign returns a list of `Case` records (what was tried, how it ended). `--short` is the CI
size (tests/test_hardening_*.py call the same functions with small counts); the default long run
writes the measured figures into docs/reliability.md.

    .venv/bin/python -m reliability.campaigns            # long version, writes docs/reliability.md
    .venv/bin/python -m reliability.campaigns --short    # CI size, prints the summary only
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import json
import os
import re
import shutil
import sys
import time
from pathlib import Path

from reliability.cases import DOC, ROOT, TIMELINES, Case
from reliability.kills import campaign_kills
from reliability.media_files import campaign_media
from reliability.model_files import campaign_models
from reliability.ofx_fuzz import (
    build_fuzzer,
    build_sanitized_bundle,
    campaign_ofx_threads,
    default_bundle,
    run_fuzz,
)
from reliability.oom import campaign_oom
from reliability.security import campaign_security
from reliability.timeline_fuzz import campaign_timelines

if not TIMELINES.is_dir():  # CI checks out shared/ inside the project
    TIMELINES = ROOT / "shared" / "timelines"


# -- running the campaigns, writing docs/reliability.md ----------------------------------------
SIZES = {
    # name: (short, long) keyword arguments
    "timelines": ({"per_file": 4}, {"per_file": 60}),
    "models": ({}, {}),
    "media": ({}, {}),
    "security": ({}, {}),
    "kills": ({"kills": 5}, {"kills": 20}),
    "kills-exr": ({"kills": 2, "frames": 24}, {"kills": 6, "frames": 24}),
    "oom": ({}, {}),
    "ofx-fuzz": ({"count": 200, "max_side": 256}, {"count": 6000, "max_side": 4096}),
    "ofx-fuzz-sanitized": ({"count": 40, "max_side": 64}, {"count": 5000, "max_side": 512}),
    "ofx-threads": ({"frames": 64}, {"frames": 1000, "instances": 2}),
}


# Bugs these campaigns found in this project, fixed where they were (kept here so the report
# says what the figures mean).
FIXED = [
    'OTIO 0.18.1 segfaults on a timeline whose "tracks" is null: read_timeline now refuses it '
    "in one line (timelines campaign, mutation 'set tracks').",
    "Models whose kwaflux metadata is not a number, whose graph disagrees with their metadata, "
    "or that give a non-NCHW output raised ValueError/InvalidArgument/IndexError tracebacks: "
    "now one ModelError line naming the model.",
    "A model with NaN/Inf weights rendered silent black (8/16-bit) or NaN (float) frames: the "
    "engine now refuses non-finite model output. NaN/inf pixels of a float source frame render "
    "as black/full scale instead of spreading over the model's receptive field.",
    "An image sequence with a missing frame number was silently collapsed: every later frame "
    "shifted by one in the conformed media. A gap is now a missing frame that fails its clip.",
    "An image sequence with one frame of another size was encoded anyway; now that clip fails "
    "naming the frame. Damaged video that fails mid-decode now names the file.",
    "A symlink planted at an output name passed for a finished output (relinking the clip to "
    "a file outside --media-dir); links are never taken for finished outputs now.",
    "Out of memory at the smallest tile escaped as an onnxruntime traceback; now one line.",
    "OFX: a sourceScale of inf or 1e300 (a script can send one) failed with a bare "
    "OverflowError/ValueError; now a clear message.",
]


def run_campaign(name: str, work: Path, short: bool) -> tuple[list[Case], dict, float]:
    kw = SIZES[name][0 if short else 1]
    t0 = time.monotonic()
    figures: dict = {}
    if name == "timelines":
        cases = campaign_timelines(work, seed=0, **kw)
    elif name == "models":
        cases = campaign_models(work)
    elif name == "media":
        cases = campaign_media(work)
    elif name == "security":
        cases = campaign_security(work)
    elif name == "kills":
        cases = campaign_kills(work, seed=1, **kw)
    elif name == "kills-exr":
        cases = campaign_kills(work, seed=2, codec="exr", **kw)
    elif name == "oom":
        cases = campaign_oom(work)
    elif name == "ofx-fuzz":
        exe = build_fuzzer(ROOT / "build" / "fuzz", sanitize=False)
        cases, figures = run_fuzz(exe, default_bundle(), work, seed=20261125, **kw)
    elif name == "ofx-fuzz-sanitized":
        bundle = build_sanitized_bundle(ROOT / "build" / "fuzz-san", undefined=True)
        exe = build_fuzzer(ROOT / "build" / "fuzz-san", sanitize=True)
        cases, figures = run_fuzz(exe, bundle, work, seed=77, sanitize=True, **kw)
    elif name == "ofx-threads":
        cases = campaign_ofx_threads(work, threads=8, timeout=1800, **kw)
    else:
        raise ValueError(name)
    for c in cases:
        c.campaign = name
    return cases, figures, time.monotonic() - t0


def _isolated(name: str, work: Path, short: bool) -> tuple[list[Case], dict, float]:
    """One campaign in a child process: a segfault there is a finding, not the end of the run."""
    import subprocess

    out = work / f"{name}.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "KWAFLUX_TRACE": "1", "OMP_NUM_THREADS": "1"}
    t0 = time.monotonic()
    proc = subprocess.run(
        [
            sys.executable,
            "-X",
            "faulthandler",
            "-m",
            "reliability.campaigns",
            "--worker",
            name,
            "--work",
            str(work / name),
            "--out",
            str(out),
        ]
        + (["--short"] if short else []),
        capture_output=True,
        text=True,
        env=env,
    )
    if proc.returncode == 0 and out.exists():
        data = json.loads(out.read_text())
        return [Case(**c) for c in data["cases"]], data["figures"], data["seconds"]
    last = [ln for ln in proc.stderr.splitlines() if ln.startswith("case ")][-1:]
    tail = proc.stderr.strip().splitlines()[-3:]
    return (
        [
            Case(
                name,
                "the campaign process",
                "CRASH",
                f"exit {proc.returncode} at {last[0] if last else '?'}: {' | '.join(tail)}",
            )
        ],
        {"crashes": 1},
        time.monotonic() - t0,
    )


def summarize(results: dict[str, tuple[list[Case], dict, float]]) -> dict:
    total = collections.Counter()
    for name, (cases, figures, _) in results.items():
        total["cases"] += len(cases)
        total["bad"] += sum(not c.ok for c in cases)
        if name.startswith("ofx-fuzz"):
            total["frames fuzzed"] += figures.get("frames", 0)
            total["sanitizer reports"] += figures.get("sanitizer reports", 0)
            total["layout re-renders"] += figures.get("frames re-rendered in the plain layout", 0)
        total["crashes"] += sum(c.outcome in ("CRASH", "HANG") for c in cases)
        if name.startswith("kills"):
            total["kills survived"] += sum(c.name.startswith("kill ") and c.ok for c in cases)
        if name in ("timelines", "models", "media"):
            total["malformed inputs tried"] += len(cases)
    return dict(total)


def _table(rows: list[list[str]]) -> str:
    head, *body = rows
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(r) + " |" for r in body]
    return "\n".join(lines)


def _cell(text: str, n: int = 160) -> str:
    text = text.replace("|", "\\|").replace("\n", " ")
    text = re.sub(r"/tmp/\S*?/(?=[^/\s]+(\s|$|:))", "…/", text)
    return text if len(text) <= n else text[: n - 1] + "…"


def write_doc(results: dict, total: dict, short: bool, seconds: float) -> str:
    import platform

    out = [
        "# Reliability: what the campaigns tried and how each case ended",
        "",
        "Written by `reliability/campaigns.py` (the long version; `--short` is what CI runs "
        "through `tests/test_hardening_*.py`). Regenerate with "
        "`.venv/bin/python -m reliability.campaigns`.",
        "",
        f"Run: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
        f"{'short' if short else 'long'} version, {seconds / 60:.1f} min on "
        f"{os.cpu_count()} CPU cores ({platform.machine()}), CPU only.",
        "",
        "## Figures",
        "",
        _table(
            [
                ["figure", "value"],
                [
                    "OFX frames fuzzed (both effects, plain + ASan/UBSan builds)",
                    str(total.get("frames fuzzed", 0)),
                ],
                [
                    "OFX frames rendered again in the plainest layout (all identical unless "
                    "listed below)",
                    str(total.get("layout re-renders", 0)),
                ],
                ["crashes (any campaign)", str(total.get("crashes", 0))],
                ["sanitizer reports", str(total.get("sanitizer reports", 0))],
                [
                    "kill -9 survived (landed mid-render, then rerun)",
                    str(total.get("kills survived", 0)),
                ],
                [
                    "malformed inputs tried (timelines, models, media)",
                    str(total.get("malformed inputs tried", 0)),
                ],
                [
                    "cases that ended badly (crash, unclear, damage, hang, wrong)",
                    str(total.get("bad", 0)),
                ],
            ]
        ),
        "",
        "How a case may end: **accepted** (worked), **clear error** (exit 2, one line naming "
        "the file; or an OFX failed status plus a host message), **clip failed** (that clip "
        "alone failed in the conform report, naming its file), **clip clamped** (a clip "
        "past its media's end rendered the frames there, with a warning naming the file). "
        "Anything else (CRASH, UNCLEAR, DAMAGE, HANG, WRONG) is a bug.",
        "",
        "## Campaigns",
        "",
        _table(
            [["campaign", "cases", "how they ended", "seconds"]]
            + [
                [
                    name,
                    str(len(cases)),
                    ", ".join(
                        f"{k} {v}"
                        for k, v in collections.Counter(c.outcome for c in cases).most_common()
                    ),
                    f"{secs:.0f}",
                ]
                for name, (cases, _, secs) in results.items()
            ]
        ),
        "",
    ]
    for name, (cases, figures, _) in results.items():
        out += [f"### {name}", ""]
        if figures:
            out += ["Figures: " + ", ".join(f"{k} {v}" for k, v in sorted(figures.items())), ""]
        bad = [c for c in cases if not c.ok]
        if name in ("timelines", "ofx-fuzz", "ofx-fuzz-sanitized"):
            # Too many to list: how they ended, by message.
            groups = collections.Counter()
            for c in cases:
                msg = re.sub(r"\d+(\.\d+)?(e[+-]?\d+)?", "N", c.detail)
                msg = re.sub(r"^kwaflux: error: \S+: ", "", msg)
                msg = re.sub(r"\(log: [^)]*\)", "", msg).replace("Kwaflux: ", "")
                groups[(c.outcome, _cell(msg, 110))] += 1
            out += [
                _table(
                    [["ended", "message (numbers as N)", "cases"]]
                    + [[o, m, str(n)] for (o, m), n in groups.most_common(25)]
                ),
                "",
            ]
            if len(groups) > 25:
                out += [f"(and {len(groups) - 25} rarer messages)", ""]
        else:
            out += [
                _table(
                    [["case", "ended", "what the user saw / what was checked"]]
                    + [[_cell(c.name, 90), c.outcome, _cell(c.detail)] for c in cases]
                ),
                "",
            ]
        if bad and name in ("timelines", "ofx-fuzz", "ofx-fuzz-sanitized"):
            out += (
                ["Bad cases:", ""]
                + [f"- {_cell(c.name, 200)}: {c.outcome}: {_cell(c.detail)}" for c in bad[:30]]
                + [""]
            )
    out += ["## Bugs these campaigns found (fixed)", ""] + [f"- {f}" for f in FIXED] + [""]
    out += [
        "## How the OFX fuzz works, and its limits",
        "",
        "- `reliability/ofx_fuzz.cpp` includes the test host's source and calls its main() "
        "in a loop: each case is the full action sequence (load, describe, create instance, "
        "clip preferences, RoD, RoI, render on 1-4 threads, destroy, unload) with a random "
        "image (1x1 up to 4K; 8/16-bit, half, float; RGB/RGBA; NaN/inf/negative values in "
        "some float images), rowBytes (negative, padded by 1..4096 bytes), bounds offset, "
        "render scale, context, premultiplication, source connected or not, and parameter "
        "values (out-of-range, NaN, inf, huge; missing, failing and wrong-kind models).",
        "- Every case that renders is rendered again in the plainest layout (positive "
        "rowBytes, no padding, no offset, one thread): the pixels must be identical. An "
        "offset that is not a whole pixel at the render scale moves the image by a fraction "
        "of a pixel, so it is kept in both renders.",
        "- A host's capabilities (multi-resolution, name) are read by the plugin once, as in "
        "any real host; each fuzz process is one host flavour (Natron-like, no "
        "multi-resolution, Resolve), a third of the cases each.",
        "- The buffers carry guard bytes: a write outside them fails the case (DAMAGE).",
        "",
        "## Not covered",
        "",
        "- Several OFX instances inside one host process at once: the test host makes one "
        "instance per process, so 'several instances' runs as several host processes.",
        "- A real GPU: out-of-memory is simulated on CPU (the allocation failure onnxruntime "
        "raises); the fuzz and soaks run on the CPU provider.",
        "",
    ]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--short", action="store_true", help="CI size; prints, does not write docs")
    ap.add_argument("--only", action="append", choices=tuple(SIZES), help="run only these")
    ap.add_argument("--work", default=None, help="scratch folder (default: a temp folder)")
    ap.add_argument(
        "--write", action="store_true", help="write docs/reliability.md even if --short"
    )
    ap.add_argument(
        "--report-only",
        action="store_true",
        help="rewrite docs/reliability.md from the results saved in --work",
    )
    ap.add_argument("--worker", choices=tuple(SIZES), help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    import tempfile

    if args.worker:
        cases, figures, secs = run_campaign(args.worker, Path(args.work), args.short)
        Path(args.out).write_text(
            json.dumps(
                {
                    "cases": [dataclasses.asdict(c) for c in cases],
                    "figures": figures,
                    "seconds": secs,
                }
            )
        )
        return 0
    work = Path(args.work or tempfile.mkdtemp(prefix="kwaflux-reliability-"))
    results = {}
    if args.report_only:
        seconds = 0.0
        for name in args.only or SIZES:
            data = json.loads((work / f"{name}.json").read_text())
            results[name] = ([Case(**c) for c in data["cases"]], data["figures"], data["seconds"])
            seconds += data["seconds"]
        DOC.write_text(write_doc(results, summarize(results), args.short, seconds))
        print(f"wrote {DOC}")
        return 0
    t0 = time.monotonic()
    for name in args.only or SIZES:
        print(f"== {name}", flush=True)
        results[name] = _isolated(name, work, args.short)
        cases, figures, secs = results[name]
        print(
            f"   {len(cases)} cases in {secs:.0f} s: "
            + ", ".join(
                f"{k} {v}" for k, v in collections.Counter(c.outcome for c in cases).items()
            )
            + (f"; {figures}" if figures else ""),
            flush=True,
        )
        for c in cases:
            if not c.ok:
                print(f"   BAD {c.outcome}: {c.name}: {c.detail}", flush=True)
    total = summarize(results)
    print("total:", total)
    if not args.short or args.write:
        DOC.parent.mkdir(exist_ok=True)
        DOC.write_text(write_doc(results, total, args.short, time.monotonic() - t0))
        print(f"wrote {DOC}")
    if not args.work:
        shutil.rmtree(work, ignore_errors=True)
    return 1 if total.get("bad") else 0


if __name__ == "__main__":
    sys.exit(main())
