"""Conform real timelines (Premiere, Avid, Hiero, Nucoda, OTIO) against generated stand-in media.

Every stand-in frame shows its own frame index as pixels, so each check reads the conformed
media back and proves the exact source frame landed where the new timeline says it is.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import opentimelineio as otio
import pytest

from kwaflux_ofx.conform.locate import base_name
from kwaflux_ofx.conform.plan import same_rate
from kwaflux_ofx.conform.timeline import video_clips
from kwaflux_ofx.media.decode import read_frames
from kwaflux_ofx.media.probe import probe
from kwaflux_ofx.media.timecode import frames_to_timecode
from tests.support.conform import conform
from tests.support.media import (
    SHARED_TIMELINES,
    decode_indices,
    make_nearest_x2,
    read_index,
    stand_in_media,
    tree_checksums,
)

pytestmark = pytest.mark.shared_timelines

os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return str(make_nearest_x2(tmp_path_factory.mktemp("model") / "nearest_x2.onnx"))


def record_ranges(tl: otio.schema.Timeline) -> list[tuple[str, otio.opentime.TimeRange]]:
    return [(c.name, c.range_in_parent()) for c in video_clips(tl)]


def media_frames(value: float, rate: float, media_rate: float) -> float:
    return value if same_rate(rate, media_rate) else value * media_rate / rate


def check_conformed(src_tl, new_tl, report, media, scale=2):
    """Every done clip: same record range, new media at the right size, and the frame its
    source range starts on is the very source frame the old timeline named."""
    assert record_ranges(new_tl) == record_ranges(src_tl)
    checked = 0
    for old, new, entry in zip(
        video_clips(src_tl), video_clips(new_tl), report["clips"], strict=True
    ):
        assert entry["name"] == (old.name or entry["name"])
        if entry["status"] != "done":
            assert otio.adapters.write_to_string(new.media_reference) == (
                otio.adapters.write_to_string(old.media_reference)
            )
            continue
        ref = new.media_reference
        assert os.path.realpath(entry["output"]).startswith(os.path.realpath(report["media_dir"]))
        info = probe(
            entry["output"]
            if isinstance(ref, otio.schema.ExternalReference)
            else _first_frame(entry["output"])
        )
        src = (
            media[base_name(entry["media"])]
            if base_name(entry["media"]) in media
            else next(m for m in media.values() if os.path.realpath(m["path"]) == entry["media"])
        )
        assert (info.width, info.height) == (64 * scale, 36 * scale)
        avail = ref.available_range
        assert info.frames == round(avail.duration.value)
        # Video and EXR carry the timecode; PNG/TIFF frames are numbered by it.
        tc = info.start_tc if info.start_tc is not None else info.first_number
        assert tc == round(avail.start_time.value)
        assert ref.metadata["kwaflux"]["width"] == 64 * scale
        assert new.metadata["kwaflux"]["scale"] == scale
        # The new media's start timecode: the old media's plus the first rendered frame.
        assert frames_to_timecode(tc, info.rate) == ref.metadata["kwaflux"]["start_timecode"]
        rng = new.trimmed_range()
        if info.frames > 1 and not any(isinstance(e, otio.schema.TimeEffect) for e in new.effects):
            # first and last frame the clip shows, in old and new media
            for t in (rng.start_time.value, rng.end_time_exclusive().value - 1):
                pos = media_frames(t, rng.start_time.rate, src["rate"])
                want = math.floor(pos + 1e-6) - src["tc"]
                local = math.floor(media_frames(t, rng.start_time.rate, info.rate) + 1e-6) - round(
                    avail.start_time.value
                )
                if not 0 <= want < src["frames"]:
                    continue  # held past the end of a still / short media
                got = dict(read_frames(info, local, local + 1))[local]
                assert read_index(got) == want, (entry["name"], t)
                checked += 1
    return checked


def _first_frame(folder: str) -> str:
    return os.path.join(folder, sorted(os.listdir(folder))[0])


CASES = [
    # (timeline, rate, codec, expected done, expected skipped, expected missing)
    ("otio/simple_cut.otio", None, "ffv1", 4, 0, 0),
    ("otio/transition.otio", None, "prores_422hq", 4, 0, 0),
    ("otio/nested_example.otio", None, "ffv1", 7, 0, 0),
    ("edl/dissolve_test.edl", None, "h264", 3, 0, 0),
    ("edl/25fps.edl", 25, "ffv1", 4, 0, 0),
    ("edl/avid_example.edl", None, "exr", 2, 0, 0),
    ("edl/speed_effects_small.edl", None, "ffv1", 5, 0, 0),
    ("edl/screening_example.edl", None, "ffv1", 9, 0, 0),
    ("fcp7xml/premiere_example.xml", None, "ffv1", 6, 1, 0),
    ("fcp7xml/premiere_enable_property.xml", None, "ffv1", 6, 0, 0),  # long-GOP .mp4 sources
    ("fcp7xml/img_seq_media_reference.otio", None, "png", 1, 0, 0),
    ("fcp7xml/hiero_xml_export.xml", None, "ffv1", 1, 0, 1),
]


@pytest.mark.parametrize("name,rate,codec,done,skipped,missing", CASES, ids=[c[0] for c in CASES])
def test_real_timeline_conforms(tmp_path, model, name, rate, codec, done, skipped, missing):
    src = SHARED_TIMELINES / name
    media = stand_in_media(src, tmp_path / "src", rate=rate)
    before = tree_checksums(tmp_path / "src")
    out = tmp_path / "out.otio"
    report = conform(
        src,
        tmp_path,
        out=out,
        media="media",
        model=model,
        codec=codec,
        handles=2,
        rate=rate,
        report_path=tmp_path / "report.json",
    )
    assert report["summary"] == {
        "done": done,
        "damaged": 0,
        "skipped": skipped,
        "missing": missing,
        "failed": 0,
    }, report["clips"]
    assert json.loads((tmp_path / "report.json").read_text()) == report
    from kwaflux_ofx.conform.timeline import read_timeline

    new_tl = read_timeline(out)
    checked = check_conformed(read_timeline(src, rate=rate), new_tl, report, media)
    assert checked >= 1
    assert tree_checksums(tmp_path / "src") == before  # sources untouched
    # Nothing but outputs in the media folder: no temp files left over.
    assert not [n for n in os.listdir(tmp_path / "media") if n.startswith(".")]


def test_outputs_cover_union_of_used_ranges_plus_handles(tmp_path, model):
    """dissolve_test.edl: clip_B is used twice (one across a dissolve); its media is rendered
    once over both ranges plus handles; clip_A is extended for the dissolve's out-offset."""
    src = SHARED_TIMELINES / "edl/dissolve_test.edl"
    media = stand_in_media(src, tmp_path / "src", margin=40)
    report = conform(src, tmp_path, model=model, handles=3)
    outputs = {c["name"]: c["output"] for c in report["clips"]}
    assert len(set(outputs.values())) == 2
    a_idx, _, a_tc = decode_indices(outputs["clip_A"])
    b_idx, size, b_tc = decode_indices(outputs["clip_B"])
    assert size == (128, 72)
    a0, b0 = media["clip_A.mov"]["tc"], media["clip_B.mov"]["tc"]
    # clip_A: 86501 + 9 frames, + 10 frames of dissolve after its cut, +/- 3 handles
    assert a_idx == list(range(86501 - 3 - a0, 86501 + 9 + 10 + 3 - a0))
    # clip_B: 86600..86611 from two events, one output
    assert b_idx == list(range(86600 - 3 - b0, 86611 + 3 - b0))
    assert a_tc == frames_to_timecode(86501 - 3, 24)
    assert b_tc == frames_to_timecode(86600 - 3, 24)


def test_time_warps_use_the_frames_they_play(tmp_path, model):
    """speed_effects_small.edl: a freeze frame needs one source frame; a 47.56 fps clip
    (x1.98) needs about twice its record length."""
    src = SHARED_TIMELINES / "edl/speed_effects_small.edl"
    stand_in_media(src, tmp_path / "src")
    report = conform(src, tmp_path, model=model, dry_run=True)
    frames = {c["name"]: c["frames"] for c in report["clips"]}
    assert frames["Z682_156 (LAY3)"] == 1  # M2 freeze over 17 record frames
    assert frames["Z686_5A (LAY2) (47.56 FPS)"] == math.ceil(36 * 47.56 / 24 - 1e-6)
    assert frames["Z677_4C (ANIM10)"] == 126
    assert not (tmp_path / "m").exists()  # a dry run writes nothing
    assert not (tmp_path / "o.otio").exists()


def test_missing_media_reported_and_rest_carried_on(tmp_path, model):
    src = SHARED_TIMELINES / "edl/screening_example.edl"
    media = stand_in_media(src, tmp_path / "src")
    # take two of the files away
    gone = sorted(media)[:2]
    for name in gone:
        os.unlink(media[name]["path"])
    report = conform(src, tmp_path, model=model)
    missing = [c for c in report["clips"] if c["status"] == "missing"]
    assert missing and all("not found" in c["reason"] for c in missing)
    assert report["summary"]["done"] == len(report["clips"]) - len(missing)
    assert report["summary"]["failed"] == 0


def cli(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "kwaflux_ofx.cli", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )


@pytest.mark.parametrize(
    "name,rate,what",
    [
        ("edl/dissolve_test_fail.edl", None, "cannot read timeline"),
        ("edl/timecode_mismatch.edl", 25, "duration don't match"),
        ("fcp7xml/premiere_example_filter.xml", None, "No top-level sequences"),
        ("otio/premiere_example.otio", None, "newer OpenTimelineIO"),
    ],
)
def test_bad_timeline_is_one_clear_line(tmp_path, name, rate, what):
    src = SHARED_TIMELINES / name
    args = [src, "-o", tmp_path / "o.otio", "--media-dir", tmp_path / "m"]
    if rate:
        args += ["--rate", rate]
    r = cli("conform", *args)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert str(src) in lines[0] and what in lines[0]
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "m").exists() and not (tmp_path / "o.otio").exists()


def test_missing_media_cli_report_and_exit(tmp_path):
    """No search path: every EDL clip is missing; a JSON report says so; exit 1."""
    r = cli(
        "conform",
        SHARED_TIMELINES / "edl/screening_example.edl",
        "-o",
        tmp_path / "o.otio",
        "--media-dir",
        tmp_path / "m",
        "--report",
        tmp_path / "r.json",
        "--progress",
        "none",
    )
    assert r.returncode == 1, r.stderr
    rep = json.loads((tmp_path / "r.json").read_text())
    assert rep["summary"] == {"done": 0, "damaged": 0, "skipped": 0, "missing": 9, "failed": 0}
    assert "9 missing" in r.stdout
    # the output timeline is written and still points at the old references
    assert len(otio.adapters.read_from_file(str(tmp_path / "o.otio")).find_clips()) == 9


def test_dry_run_prints_the_plan_and_writes_nothing(tmp_path, model):
    src = SHARED_TIMELINES / "edl/dissolve_test.edl"
    stand_in_media(src, tmp_path / "src")
    r = cli(
        "conform",
        src,
        "-o",
        tmp_path / "o.otio",
        "--media-dir",
        tmp_path / "m",
        "--search-path",
        tmp_path / "src",
        "--dry-run",
        "--handles",
        "0",
        "--model",
        model,
    )
    assert r.returncode == 0, r.stderr
    assert "3 video clips, 2 outputs, 30 frames to render (x2" in r.stdout
    assert "128x72" in r.stdout  # 64x36 stand-ins at x2
    assert not (tmp_path / "m").exists() and not (tmp_path / "o.otio").exists()
