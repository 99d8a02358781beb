"""Resume inside a clip: `kwaflux upscale` killed with SIGKILL mid-clip restarts near where it
stopped, keeps the finished segments, and the joined output has every frame in place."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from kwaflux_ofx.conform.segments import segment_ranges
from kwaflux_ofx.media.decode import read_frames
from kwaflux_ofx.media.probe import probe
from tests.support.media import make_video, read_index
from tests.support.onnx_models import sr_model

pytestmark = pytest.mark.slow

FRAMES = 240


def test_segments_cover_the_range_once():
    for start, stop in ((0, 1), (0, 240), (7, 1000), (0, 100_000)):
        ranges = segment_ranges(start, stop)
        assert ranges[0][0] == start and ranges[-1][1] == stop
        assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:], strict=False))


def test_kill_9_mid_clip_then_rerun_resumes_near_where_it_stopped(tmp_path):
    src = make_video(tmp_path / "long.mov", FRAMES, rate=25, size=(128, 96), audio=True)
    model = sr_model(tmp_path / "sr2.onnx", 2)
    out = tmp_path / "out" / "long_x2.mov"
    out.parent.mkdir()
    cmd = [sys.executable, "-m", "kwaflux_ofx.cli", "upscale", str(src), str(out),
           "--model", str(model), "--denoise", "0", "--progress", "none",
           "--report", str(tmp_path / "r.json")]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    parts = out.parent / ".long_x2.kwaflux-partial.mov.parts"
    finished: list[str] = []
    while proc.poll() is None:
        if parts.is_dir():
            finished = [n for n in os.listdir(parts) if n.endswith(".mov") and n[0] != "."]
        if len(finished) >= 4:
            break
        time.sleep(0.02)
    assert proc.poll() is None, "the render ended before the kill: the test proves nothing"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not out.exists()  # nothing under the finished name
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    clip = json.loads((tmp_path / "r.json").read_text())["clips"][0]
    assert clip["resumed"] >= 4 * 12  # the finished segments were kept, not re-rendered
    info = probe(out)
    assert (info.frames, info.width, info.has_audio) == (FRAMES, 256, True)
    assert [read_index(f) for _, f in read_frames(info, 0, FRAMES)] == list(range(FRAMES))
    assert sorted(os.listdir(out.parent)) == ["long_x2.mov"]  # no segments left behind
