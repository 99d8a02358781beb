"""Old data against new: a run's validation curve beside another's at the same training hours
(both logged by train/common.py on the same old validation crops), from python/checkpoints/.
The hours are training CPU-hours; where the two runs took different times a step (another
machine, another load), `--by step` sets them side by side at the same step instead.

    python -m kwaflux_lab.eval.compare_curves      # sr-x2, denoise, sr-x4 against their -v2 runs
    python -m kwaflux_lab.eval.compare_curves sr-x2 sr-x2-v2 --metric val_psnr
"""

from __future__ import annotations

import json

from kwaflux_lab import jobs
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


def main() -> None:
    ap = jobs.parser(__doc__)
    ap.add_argument("old", nargs="?")
    ap.add_argument("new", nargs="?")
    ap.add_argument("--metric", default=None)
    ap.add_argument("--by", choices=("hours", "step"), default="hours")
    args = ap.parse_args()
    pairs = (
        [(args.old, args.new or f"{args.old}-v2")]
        if args.old
        else [(m, f"{m}-v2") for m in METRICS]
    )
    for old, new in pairs:
        print(table(old, new, args.metric or METRICS.get(old, "val_psnr"), args.by))
        print()


if __name__ == "__main__":
    main()
