"""Conform crash-safety (short CI soak): kill -9 a real conform at random moments and rerun."""

from __future__ import annotations

from pathlib import Path

import pytest

from reliability import cases, kills, media_files

ROOT = Path(__file__).resolve().parent.parent


# Soaks: run by default (make test, CI); `-m "not slow"` leaves them out while iterating.
pytestmark = pytest.mark.slow


def test_kill_9_during_conform_never_leaves_a_partial_output_for_finished(tmp_path):
    cases = kills.campaign_kills(tmp_path, kills=5, seed=11)
    bad = [c for c in cases if not c.ok]
    assert not bad, bad
    assert sum(c.name.startswith("kill ") for c in cases) == 5  # five kills landed mid-job
    assert cases[-1].name.startswith("final rerun after 5 kills")
    # the final state: three complete outputs, nothing hidden left behind
    names = sorted(p.name for p in (tmp_path / "media").iterdir())
    assert names == ["alpha.mkv", "bravo.mkv", "charlie.mkv"]


def test_kill_9_with_image_sequence_outputs(tmp_path):
    cases = kills.campaign_kills(tmp_path, kills=2, seed=3, frames=24, codec="exr")
    bad = [c for c in cases if not c.ok]
    assert not bad, bad
    assert sorted(p.name for p in (tmp_path / "media").iterdir()) == ["alpha", "bravo", "charlie"]


def test_the_soak_checker_catches_a_partial_file_under_a_finished_name(tmp_path):
    from tests.support.media import make_video

    src = tmp_path / "src"
    make_video(src / "a.mkv", 4, codec="ffv1")
    state = cases.tree_state(src)
    media = tmp_path / "media"
    good = make_video(media / "alpha.mkv", 10, codec="ffv1")
    assert kills.verify_job(media, {"alpha.mkv": 10}, state, src, None, final=False) == []
    media_files._truncate(good, 0.5)
    problems = kills.verify_job(media, {"alpha.mkv": 10}, state, src, None, final=False)
    assert problems and "alpha.mkv taken for finished" in problems[0]
    (media / ".alpha.kwaflux-partial.mkv").write_bytes(b"half")
    (src / "a.mkv").write_bytes(b"changed")
    final = kills.verify_job(media, {"alpha.mkv": 10}, state, src, None, final=True)
    assert "source media changed" in final and any("partial file left" in p for p in final)
    assert "no output timeline after the final run" in final
