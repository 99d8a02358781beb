"""Malformed-input corpus (short CI version): broken timelines, models and media never crash,
each gives one clear line naming the file (or a per-clip failure) and damages nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reliability import media_files, model_files, timeline_fuzz
from reliability.cases import TIMELINES, judge_error, run_cli

ROOT = Path(__file__).resolve().parent.parent


pytestmark = pytest.mark.shared_timelines


def _bad(cases):
    return [c for c in cases if not c.ok]


def test_mutated_real_timelines_plan_or_fail_clearly(tmp_path):
    # One file per format family keeps this short; the long campaign mutates every file.
    files = [
        TIMELINES / "otio" / "nested_example.otio",
        TIMELINES / "otio" / "transition.otio",
        TIMELINES / "edl" / "cdl.edl",
        TIMELINES / "edl" / "25fps.edl",
        TIMELINES / "fcp7xml" / "sample_just_track.xml",
    ]
    cases = timeline_fuzz.campaign_timelines(tmp_path, per_file=12, seed=7, files=files)
    assert len(cases) == 60
    assert not _bad(cases), _bad(cases)
    outcomes = {c.outcome for c in cases}
    assert outcomes == {"accepted", "clear error"}  # both paths are really exercised


def test_timeline_without_tracks_is_a_clear_error_not_a_segfault(tmp_path):
    # OTIO 0.18.1 segfaults in video_tracks() on "tracks": null (found by the campaign).
    doc = json.loads((TIMELINES / "otio" / "simple_cut.otio").read_text())
    doc["tracks"] = None
    bad = tmp_path / "no_tracks.otio"
    bad.write_text(json.dumps(doc))
    run = run_cli(
        [
            "conform",
            str(bad),
            "-o",
            str(tmp_path / "o.otio"),
            "--media-dir",
            str(tmp_path / "m"),
            "--dry-run",
        ]
    )
    assert run.rc == 2 and run.error_lines == [
        f"kwaflux: error: {bad}: holds a timeline without a track stack"
    ]


def test_broken_models_one_clear_line_no_output(tmp_path):
    cases = model_files.campaign_models(tmp_path)
    assert len(cases) >= 70
    assert not _bad(cases), _bad(cases)
    # NaN weights: a clear refusal, never silent black frames.
    nan = [
        c
        for c in cases
        if c.name
        in (
            "NaN weights [upscale]",
            "Inf weights [upscale]",
            "NaN weights (denoise model) [upscale --denoise-model]",
        )
    ]
    assert len(nan) == 3 and all("NaN or infinite" in c.detail for c in nan), nan
    assert not (tmp_path / "models" / "UNPICKLED").exists()


def test_broken_media_fail_their_clips_alone(tmp_path):
    cases = media_files.campaign_media(tmp_path)
    assert not _bad(cases), _bad(cases)
    by = {c.name: c for c in cases}
    assert by["good video"].outcome == by["good sequence"].outcome == "accepted"
    assert "gap.0006.exr: frame is missing" in by["image sequence with frame 6 missing"].detail
    assert "32x18" in by["image sequence, frame 4 has another size"].detail
    garbled = by["ffv1 mkv with 200 flipped bytes"]  # rendered, broken frames listed
    assert garbled.outcome == "clip rendered, damage reported" and "garbled.mkv" in garbled.detail
    assert sum(c.outcome == "clip failed" for c in cases) >= 9


def test_nan_and_inf_pixels_render_as_black_and_white_not_poison(tmp_path):
    import numpy as np

    from kwaflux_ofx import Engine
    from tests.support.onnx_models import sr_model

    model = sr_model(tmp_path / "sr2.onnx", 2)
    frame = np.random.default_rng(4).random((40, 50, 4), dtype=np.float32)
    frame[5, 7, 0], frame[20, 30, 1], frame[33, 3, 2], frame[10, 10, 3] = (
        np.nan,
        np.inf,
        -np.inf,
        np.nan,
    )
    engine = Engine(device="cpu", tile=32)  # several tiles: the NaNs sit near seams too
    out = engine.process(frame, scale=2, sr_model=model)
    assert np.isfinite(out).all()
    clean = np.nan_to_num(frame, nan=0.0, posinf=1.0, neginf=0.0)
    np.testing.assert_array_equal(out, engine.process(clean, scale=2, sr_model=model))


def test_the_judge_tells_crashes_and_vague_errors_from_clear_ones(tmp_path, monkeypatch):
    """The campaigns' verdicts can fail: a traceback is a CRASH, an error line that names no
    file is UNCLEAR, and only one line naming the file is a clear error."""
    from kwaflux_ofx.cli import process as commands
    from kwaflux_ofx.errors import KwafluxError

    f = str(tmp_path / "in.png")
    argv = ["upscale", f, str(tmp_path / "out.png")]
    for raised, verdict in (
        (ValueError("boom"), "CRASH"),
        (KwafluxError("something went wrong"), "UNCLEAR"),
        (KwafluxError("cannot read image", f), "clear error"),
    ):

        def fail(args, exc=raised):
            raise exc

        monkeypatch.setattr(commands, "cmd_upscale", fail)
        assert judge_error(run_cli(argv), [f])[0] == verdict


def test_a_run_that_neither_succeeds_nor_reports_is_one_bad_case():
    from reliability.cases import CliRun

    assert CliRun(0, "", "").failed_outright("media", "x") == []
    assert CliRun(1, "", "kwaflux: error: a clip failed").failed_outright("media", "x") == []
    (crash,) = CliRun(None, "", "", exc="ZeroDivisionError: x").failed_outright("media", "x")
    assert (crash.outcome, crash.detail) == ("CRASH", "ZeroDivisionError: x")
    (unclear,) = CliRun(2, "", "Traceback...\nboom").failed_outright("security", "y")
    assert (unclear.campaign, unclear.outcome, unclear.detail) == (
        "security",
        "UNCLEAR",
        "Traceback...\nboom",
    )
