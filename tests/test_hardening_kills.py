"""Conform crash-safety (short CI soak): kill -9 a real conform at random moments and rerun."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "reliability"))

import campaigns as C  # noqa: E402


def test_kill_9_during_conform_never_leaves_a_partial_output_for_finished(tmp_path):
    cases = C.campaign_kills(tmp_path, kills=5, seed=11)
    bad = [c for c in cases if not c.ok]
    assert not bad, bad
    assert sum(c.name.startswith("kill ") for c in cases) == 5  # five kills landed mid-job
    assert cases[-1].name.startswith("final rerun after 5 kills")
    # the final state: three complete outputs, nothing hidden left behind
    names = sorted(p.name for p in (tmp_path / "media").iterdir())
    assert names == ["alpha.mkv", "bravo.mkv", "charlie.mkv"]


def test_kill_9_with_image_sequence_outputs(tmp_path):
    cases = C.campaign_kills(tmp_path, kills=2, seed=3, frames=24, codec="exr")
    bad = [c for c in cases if not c.ok]
    assert not bad, bad
    assert sorted(p.name for p in (tmp_path / "media").iterdir()) == ["alpha", "bravo", "charlie"]
