"""Old data against new: a run's validation curve beside another's at the same training hours
(both logged by train/common.py on the same old validation crops), from python/checkpoints/.
The hours are training CPU-hours; where the two runs took different times a step (another
machine, another load), `--by step` sets them side by side at the same step instead.

    python -m kwaflux_lab.eval.compare_curves      # sr-x2, denoise, sr-x4 against their -v2 runs
    python -m kwaflux_lab.eval.compare_curves sr-x2 sr-x2-v2 --metric val_psnr

Without arguments it also writes the tables and a summary into docs/models.md ("Old data
against new"): the test of the over-fitting diagnosis.
"""

from __future__ import annotations

import json
from pathlib import Path

from kwaflux_lab import docsection, jobs, paths
from kwaflux_lab.train.common import CHECKPOINTS_DIR

# The figure each model's curve is read by (the first of train/sr.py's / train/denoise.py's metrics).
METRICS = {"sr-x2": "val_psnr", "sr-x4": "val_psnr", "denoise": "awgn25_out"}


def read_log(name: str) -> list[dict]:
    path = CHECKPOINTS_DIR / f"{name}.log.jsonl"
    if not path.exists():
        return []
    return [json.loads(ln) for ln in path.read_text().splitlines() if ln.strip()]


def at_hours(records: list[dict], hours: float, metric: str, by: str = "hours") -> float | None:
    """The metric linearly interpolated at `hours` (or at that step, by="step"; None outside
    the logged range)."""
    pts = [(r[by], r[metric]) for r in records if metric in r]
    if not pts or hours < pts[0][0] or hours > pts[-1][0]:
        return None
    for (h0, v0), (h1, v1) in zip(pts, pts[1:], strict=False):
        if h0 <= hours <= h1:
            return v0 if h1 == h0 else v0 + (v1 - v0) * (hours - h0) / (h1 - h0)
    return pts[-1][1]


def table(old: str, new: str, metric: str, by: str = "hours") -> str:
    a, b = read_log(old), read_log(new)
    rows = [f"`{old}` against `{new}`, {metric} (dB) at the new run's checkpoints, by {by}:", ""]
    rows += [f"| hours | step | {old} | {new} | new - old |", "|---:|---:|---:|---:|---:|"]
    for r in b:
        if metric not in r:
            continue
        v_old = at_hours(a, r[by], metric, by)
        diff = f"{r[metric] - v_old:+.2f}" if v_old is not None else ""
        shown = f"{v_old:.2f}" if v_old is not None else ""
        rows.append(f"| {r['hours']:.2f} | {r['step']} | {shown} | {r[metric]:.2f} | {diff} |")
    return "\n".join(rows)


def summary(old: str, new: str, metric: str) -> str:
    """One line: where the old run peaked and what it fell to, and the new run at the same
    hours and over its own last logged hour (still rising, or flat)."""
    a, b = read_log(old), read_log(new)
    a, b = [r for r in a if metric in r], [r for r in b if metric in r]
    if not a or not b:
        return f"- `{new}`: no records yet"
    peak = max(a, key=lambda r: r[metric])
    end = b[-1]
    v_old = at_hours(a, end["hours"], metric)
    same = f"{end[metric] - v_old:+.2f} dB against the old run at the same hours" if v_old else ""
    before = [r for r in b if r["hours"] <= end["hours"] - 1.0]
    trend = (
        f", {end[metric] - before[-1][metric]:+.2f} dB over its last hour"
        if before
        else ", less than an hour logged"
    )
    best_new = max(b, key=lambda r: r[metric])
    return (
        f"- `{old}` peaked at {peak[metric]:.2f} dB ({peak['hours']:.2f} h) and ended at "
        f"{a[-1][metric]:.2f} ({a[-1]['hours']:.2f} h); `{new}` stands at {end[metric]:.2f} "
        f"({end['hours']:.2f} h, best {best_new[metric]:.2f}){', ' + same if same else ''}"
        f"{trend}."
    )


def main() -> None:
    ap = jobs.parser(__doc__)
    ap.add_argument("old", nargs="?")
    ap.add_argument("new", nargs="?")
    ap.add_argument("--metric", default=None)
    ap.add_argument("--by", choices=("hours", "step"), default="hours")
    ap.add_argument("--doc", type=Path, default=paths.MODELS_DOC)
    args = ap.parse_args()
    pairs = (
        [(args.old, args.new or f"{args.old}-v2")]
        if args.old
        else [(m, f"{m}-v2") for m in METRICS]
    )
    parts, notes = [], []
    for old, new in pairs:
        metric = args.metric or METRICS.get(old, "val_psnr")
        parts.append(table(old, new, metric, args.by))
        notes.append(summary(old, new, metric))
    text = "\n\n".join(parts) + "\n\n" + "\n".join(notes)
    print(text)
    if not args.old:
        lead = (
            "Written by `python -m kwaflux_lab.eval.compare_curves`: each model trained on the "
            "36 photos (v1) and on the 333 (v2, `-v2` checkpoints), scored on the same old "
            "validation crops, at the v2 run's checkpoints (CPU-hours, one thread)."
        )
        docsection.write_section(
            args.doc, "data-curve", lead + "\n\n" + text, "## Old data against new"
        )


if __name__ == "__main__":
    main()
