"""GPU out-of-memory simulated on CPU, at the CLI and conform level: the tile halves and the frame
still renders, identical to an unconstrained render; a device too small for any tile is one line."""

from __future__ import annotations

from pathlib import Path

from reliability import oom

ROOT = Path(__file__).resolve().parent.parent


def test_oom_halves_tiles_in_upscale_and_conform(tmp_path):
    cases = oom.campaign_oom(tmp_path)
    bad = [c for c in cases if not c.ok]
    assert not bad, bad
    by = {c.name: c for c in cases}
    assert "identical=True" in by["upscale 260x150, device fails above 90 px tiles"].detail
    assert "identical=True" in by["conform 320x180 x2, device fails above 100 px tiles"].detail
    never = by["upscale, device fails at every tile size"]
    assert never.outcome == "clear error" and "out of memory even with 32 px tiles" in never.detail
