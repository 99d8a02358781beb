"""OFX boundary (short CI versions): random sizes, depths, components, rowBytes, offsets, render
scales and parameter values through both effects: 0 crashes, every failure a status + message,
pixels independent of rowBytes/padding/offset/threads; 8 render threads on one instance give the
single-thread pixels; an ASan/UBSan pass."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "reliability"))

import campaigns as C  # noqa: E402

needs_build = pytest.mark.skipif(
    shutil.which("g++") is None or not C.default_bundle().exists(),
    reason="needs g++ and the built OFX bundle")


@needs_build
def test_fuzz_both_effects_no_crash_every_failure_has_a_message(tmp_path):
    exe = C.build_fuzzer(ROOT / "build" / "fuzz", sanitize=False)
    cases, figures = C.run_fuzz(exe, C.default_bundle(), tmp_path, count=200, seed=2026)
    bad = [c for c in cases if not c.ok]
    assert not bad, bad[:5]
    assert figures["configurations"] == 200 and figures.get("crashes", 0) == 0
    assert figures["frames ok"] > 150 and figures["failures with a message"] > 20
    # every rendered case was rendered again in the plainest layout: same pixels
    assert figures["layout comparisons"] > 80
    both = {("SuperResolution" in c.name, c.outcome) for c in cases}
    assert both == {(True, "accepted"), (False, "accepted"), (True, "clear error"),
                    (False, "clear error")}


@needs_build
def test_out_of_range_source_scale_is_a_clear_message(tmp_path):
    from kwaflux_ofx import ofx_tools

    models = C.ofx_models(tmp_path / "m")
    import numpy as np

    np.save(tmp_path / "in.npy", np.ones((6, 8, 3), np.uint8))
    for value in ("inf", "1e300", "nan", "-1"):
        proc = subprocess.run(
            [str(ofx_tools.test_host_path()), "--bundle", str(C.default_bundle()), "--plugin",
             "org.kwaflux.SuperResolution", "--input", str(tmp_path / "in.npy"), "--resolve",
             "--param", f"model={models / 'sr.onnx'}", "--param", f"sourceScale={value}"],
            capture_output=True, text=True, timeout=120,
            env={"OMP_NUM_THREADS": "1", "KWAFLUX_LOG_DIR": str(tmp_path / "logs"),
                 "PATH": "/usr/bin:/bin"})
        assert proc.returncode == 3, proc.stdout[-2000:] + proc.stderr[-2000:]
        assert "source scale must be between 0 and 1" in proc.stdout


@needs_build
def test_eight_render_threads_one_instance_identical_pixels(tmp_path):
    cases = C.campaign_ofx_threads(tmp_path, frames=64, threads=8, timeout=300)
    assert [c.outcome for c in cases] == ["accepted"], cases


@needs_build
@pytest.mark.skipif(shutil.which("cmake") is None, reason="needs cmake")
def test_fuzz_under_address_and_undefined_sanitizers(tmp_path):
    # The plugin's ASan build is the OFX tests' own (build/asan); the fuzzing host adds UBSan.
    bundle = C.build_sanitized_bundle(ROOT / "build" / "asan", undefined=False)
    exe = C.build_fuzzer(ROOT / "build" / "fuzz-san", sanitize=True)
    cases, figures = C.run_fuzz(exe, bundle, tmp_path, count=40, seed=99, max_side=64,
                                sanitize=True, timeout=600)
    bad = [c for c in cases if not c.ok]
    assert not bad, bad[:5]
    assert figures.get("sanitizer reports", 0) == 0 and figures["frames"] >= 40
