"""Campaign: truncated, corrupt and odd media under a timeline; the conform fails those clips clearly."""

from __future__ import annotations

import json
from pathlib import Path

from reliability.cases import Case, run_cli, tree_state

# -- 1c. broken media --------------------------------------------------------------------------
SEQ_FRAMES = 12


CLIP_FRAMES = 12


def _truncate(path: Path, frac: float) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * frac)])
    return path


def broken_media(src: Path) -> dict[str, tuple[Path, str]]:
    """Good and broken sources: {clip name: (media path, expectation)}, expectation "done",
    "fail" (the clip must fail alone, naming its file), "clamp" (rendered to the end of its
    media, saying so) or "damaged" (rendered whole, its broken frames listed with timecodes). Clips use the first CLIP_FRAMES frames;
    a damaged video's clip uses all 24, so the damage lies inside what it uses."""
    import numpy as np

    from tests.support.media import make_sequence, make_video

    src.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(3)
    m: dict[str, tuple[Path, str]] = {}
    m["good video"] = (make_video(src / "good.mkv", 24, codec="ffv1"), "done")
    make_sequence(src / "goodseq", "good.", 1, SEQ_FRAMES)
    m["good sequence"] = (src / "goodseq" / "good.0001.exr", "done")
    m["mov cut in half (no moov atom)"] = (_truncate(make_video(src / "half.mov", 24), 0.5), "fail")
    # Matroska without its index: the frames before the cut decode; the clip is clamped to them.
    m["mkv cut at 40%"] = (_truncate(make_video(src / "cut.mkv", 24, codec="ffv1"), 0.4), "clamp")
    m["mp4 h264 cut at 70%"] = (
        _truncate(make_video(src / "cut70.mp4", 24, codec="libx264"), 0.7),
        "fail",
    )
    (src / "empty.mov").write_bytes(b"")
    m["zero-byte .mov"] = (src / "empty.mov", "fail")
    (src / "noise.mov").write_bytes(rng.integers(0, 256, 50_000, dtype=np.uint8).tobytes())
    m["random bytes named .mov"] = (src / "noise.mov", "fail")
    garbled = bytearray(make_video(src / "garbled.mkv", 24, codec="ffv1").read_bytes())
    for i in rng.integers(2000, len(garbled), 200):
        garbled[i] ^= 0x55
    (src / "garbled.mkv").write_bytes(bytes(garbled))
    # Broken frames keep their places (the last good one held) and are reported: "damaged".
    m["ffv1 mkv with 200 flipped bytes"] = (src / "garbled.mkv", "damaged")
    seq = make_sequence(src / "gap", "gap.", 1, SEQ_FRAMES)
    seq[5].unlink()
    m["image sequence with frame 6 missing"] = (seq[0], "fail")
    seq = make_sequence(src / "garbage", "garbage.", 1, SEQ_FRAMES)
    seq[4].write_bytes(rng.integers(0, 256, 3000, dtype=np.uint8).tobytes())
    m["image sequence, frame 5 is garbage"] = (seq[0], "fail")
    seq = make_sequence(src / "zero", "zero.", 1, SEQ_FRAMES)
    seq[6].write_bytes(b"")
    m["image sequence, frame 7 is empty"] = (seq[0], "fail")
    seq = make_sequence(src / "trunc", "trunc.", 1, SEQ_FRAMES)
    _truncate(seq[3], 0.5)
    m["image sequence, frame 4 truncated"] = (seq[3 - 3], "fail")
    seq = make_sequence(src / "size", "size.", 1, SEQ_FRAMES)
    import OpenImageIO as oiio

    spec = oiio.ImageSpec(32, 18, 3, "half")
    out = oiio.ImageOutput.create(str(seq[3]))
    out.open(str(seq[3]), spec)
    out.write_image(np.zeros((18, 32, 3), np.float32))
    out.close()
    m["image sequence, frame 4 has another size"] = (seq[0], "fail")
    return m


def media_timeline(
    media: dict[str, tuple[Path, str]], path: Path, frames: int = CLIP_FRAMES, rate: float = 24.0
) -> Path:
    """One clip per source, each using frames 0..frames-1, written as .otio."""
    import opentimelineio as otio

    tl = otio.schema.Timeline(name="hardening")
    track = otio.schema.Track(name="V1", kind=otio.schema.TrackKind.Video)
    tl.tracks.append(track)
    for name, (p, want) in media.items():
        # A damaged video's clip uses all its 24 frames, so the damage lies inside its range.
        n = 24 if p.suffix in (".mov", ".mkv", ".mp4") and want != "done" else frames
        ref = otio.schema.ExternalReference(target_url=otio.url_utils.url_from_filepath(str(p)))
        track.append(
            otio.schema.Clip(
                name=name,
                media_reference=ref,
                source_range=otio.opentime.TimeRange(
                    otio.opentime.RationalTime(0, rate), otio.opentime.RationalTime(n, rate)
                ),
            )
        )
    otio.adapters.write_to_file(tl, str(path))
    return path


def nearest_model(d: Path) -> Path:
    from tests.support.media import make_nearest_x2

    d.mkdir(parents=True, exist_ok=True)
    p = d / "nearest-x2.onnx"
    return p if p.exists() else make_nearest_x2(p)


def conform_argv(timeline: Path, out: Path, media_dir: Path, model: Path, *extra: str) -> list[str]:
    return [
        "-q",
        "conform",
        str(timeline),
        "-o",
        str(out),
        "--media-dir",
        str(media_dir),
        "--codec",
        "ffv1",
        "--model",
        str(model),
        "--scale",
        "2",
        "--handles",
        "0",
        "--overwrite",  # reruns of one job replace its timeline
        "--device",
        "cpu",
        "--threads",
        "1",
        "--report",
        str(out.with_suffix(".json")),
        *extra,
    ]


def check_outputs(report: dict, media_dir: Path) -> list[str]:
    """Problems with a conform's results: every 'done' output decodes completely to the frames
    it should hold; nothing half-written is left in the output folder."""
    from tests.support.media import decode_indices

    problems = []
    for c in report["clips"]:
        if c["status"] != "done":
            continue
        out = Path(c["output"])
        try:
            if out.is_dir():
                idx = _sequence_indices(out)
            else:
                idx, _, _ = decode_indices(out)
        except Exception as exc:  # noqa: BLE001 - any decode failure is the finding
            problems.append(f"{out.name} does not decode: {exc}")
            continue
        if idx != list(range(len(idx))) or len(idx) < c["frames"]:
            problems.append(
                f"{out.name} holds frames {idx[:5]}...{idx[-3:]} ({len(idx)}), "
                f"expected 0..{c['frames'] - 1}"
            )
    left = [p.name for p in media_dir.rglob("*") if "partial" in p.name or p.name.startswith(".")]
    if left:
        problems.append(f"left in the output folder: {left}")
    return problems


def campaign_media(work: Path) -> list[Case]:
    """A small real conform of good and broken sources: broken clips fail alone (naming their
    file), good clips render exactly, sources are untouched."""
    import opentimelineio as otio

    work.mkdir(parents=True, exist_ok=True)
    media = broken_media(work / "src")
    tl = media_timeline(media, work / "in.otio")
    model = nearest_model(work / "models")
    before = tree_state(work / "src")
    out, media_dir = work / "out.otio", work / "media"
    run = run_cli(conform_argv(tl, out, media_dir, model), timeout=300)
    cases = []
    if failed := run.failed_outright("media", "conform of broken media"):
        return failed
    report = json.loads(out.with_suffix(".json").read_text())
    by_name = {c["name"]: c for c in report["clips"]}
    for name, (path, want) in media.items():
        c = by_name[name]
        if want == "done":
            outcome = "accepted" if c["status"] == "done" else "WRONG"
            detail = c["reason"] or "rendered"
        elif want == "clamp":
            warned = [
                ln
                for ln in run.err.splitlines()
                if "past its media" in ln and (path.name in ln or name in ln)
            ]
            in_report = "past its media" in c["reason"]
            # a file cut short is also reported as such ("damaged"), with the clamp kept
            rendered = c["status"] in ("done", "damaged")
            outcome = "clip clamped" if rendered and warned and in_report else "WRONG"
            detail = (warned or [f"status {c['status']}: {c['reason']}"])[0]
        elif want == "damaged":
            told = c["status"] == "damaged" and "damaged source frame" in c["reason"]
            outcome = "clip rendered, damage reported" if told and c.get("damaged") else "WRONG"
            detail = f"status {c['status']}: {c['reason']}"
        elif c["status"] in ("failed", "missing"):
            names = {path.name, path.parent.name}
            ok = (
                any(n in c["reason"] for n in names)
                or c["media"]
                and any(n in c["reason"] for n in (Path(c["media"]).name,))
            )
            outcome = "clip failed" if ok else "UNCLEAR"
            detail = c["reason"]
        else:
            outcome, detail = "WRONG", f"status {c['status']}: {c['reason'] or 'rendered'}"
        cases.append(Case("media", name, outcome, detail))
    for problem in check_outputs(report, media_dir):
        cases.append(Case("media", "outputs", "WRONG", problem))
    if tree_state(work / "src") != before:
        cases.append(Case("media", "sources", "DAMAGE", "source media changed"))
    try:
        new = otio.adapters.read_from_file(str(out))
        for clip in new.find_clips():
            want = media[clip.name][1]
            url = (
                clip.media_reference.target_url
                if hasattr(clip.media_reference, "target_url")
                else ""
            )
            relinked = str(media_dir) in (url or "") or isinstance(
                clip.media_reference, otio.schema.ImageSequenceReference
            )
            if (want != "fail") != relinked:
                cases.append(
                    Case(
                        "media",
                        f"timeline: {clip.name}",
                        "WRONG",
                        "relinked" if relinked else "not relinked",
                    )
                )
    except Exception as exc:  # noqa: BLE001
        cases.append(Case("media", "output timeline", "WRONG", f"unreadable: {exc}"))
    return cases


def _sequence_indices(folder: Path) -> list[int]:
    import OpenImageIO as oiio

    from tests.support.media import read_index

    out = []
    for f in sorted(folder.iterdir()):
        buf = oiio.ImageBuf(str(f))
        px = buf.get_pixels(oiio.FLOAT)
        if buf.has_error or px is None:
            raise ValueError(f"{f.name}: {buf.geterror()}")
        out.append(read_index(px))
    return out
