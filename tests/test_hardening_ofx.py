"""OFX boundary (short CI versions): random sizes, depths, components, rowBytes, offsets, render
scales and parameter values through both effects: 0 crashes, every failure a status + message,
pixels independent of rowBytes/padding/offset/threads; 8 render threads on one instance give the
single-thread pixels; an ASan/UBSan pass."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from reliability import ofx_fuzz

ROOT = Path(__file__).resolve().parent.parent


needs_build = pytest.mark.skipif(
    shutil.which("g++") is None or not ofx_fuzz.default_bundle().exists(),
    reason="needs g++ and the built OFX bundle",
)


@needs_build
def test_fuzz_both_effects_no_crash_every_failure_has_a_message(tmp_path):
    exe = ofx_fuzz.build_fuzzer(ROOT / "build" / "fuzz", sanitize=False)
    cases, figures = ofx_fuzz.run_fuzz(
        exe, ofx_fuzz.default_bundle(), tmp_path, count=200, seed=2026
    )
    bad = [c for c in cases if not c.ok]
    assert not bad, bad[:5]
    assert figures["configurations"] == 200 and figures.get("crashes", 0) == 0
    assert figures["frames ok"] > 150 and figures["failures with a message"] > 20
    # every rendered case was rendered again in the plainest layout: same pixels
    assert figures["layout comparisons"] > 80
    both = {("SuperResolution" in c.name, c.outcome) for c in cases}
    assert both == {
        (True, "accepted"),
        (False, "accepted"),
        (True, "clear error"),
        (False, "clear error"),
    }


@needs_build
def test_out_of_range_source_scale_is_a_clear_message(tmp_path):
    from kwaflux_ofx.hosts.ofx import install as ofx_tools

    models = ofx_fuzz.ofx_models(tmp_path / "m")
    import numpy as np

    np.save(tmp_path / "in.npy", np.ones((6, 8, 3), np.uint8))
    for value in ("inf", "1e300", "nan", "-1"):
        proc = subprocess.run(
            [
                str(ofx_tools.test_host_path()),
                "--bundle",
                str(ofx_fuzz.default_bundle()),
                "--plugin",
                "org.kwaflux.SuperResolution",
                "--input",
                str(tmp_path / "in.npy"),
                "--resolve",
                "--param",
                f"model={models / 'sr.onnx'}",
                "--param",
                f"sourceScale={value}",
            ],
            capture_output=True,
            text=True,
            timeout=120,
            env={
                "OMP_NUM_THREADS": "1",
                "KWAFLUX_LOG_DIR": str(tmp_path / "logs"),
                "PATH": "/usr/bin:/bin",
            },
        )
        assert proc.returncode == 3, proc.stdout[-2000:] + proc.stderr[-2000:]
        assert "source scale must be between 0 and 1" in proc.stdout


@needs_build
def test_eight_render_threads_one_instance_identical_pixels(tmp_path):
    cases = ofx_fuzz.campaign_ofx_threads(tmp_path, frames=64, threads=8, timeout=300)
    assert [c.outcome for c in cases] == ["accepted"], cases


@needs_build
@pytest.mark.skipif(shutil.which("cmake") is None, reason="needs cmake")
def test_fuzz_under_address_and_undefined_sanitizers(tmp_path):
    # The plugin's ASan build is the OFX tests' own (build/asan); the fuzzing host adds UBSan.
    bundle = ofx_fuzz.build_sanitized_bundle(ROOT / "build" / "asan", undefined=False)
    exe = ofx_fuzz.build_fuzzer(ROOT / "build" / "fuzz-san", sanitize=True)
    cases, figures = ofx_fuzz.run_fuzz(
        exe, bundle, tmp_path, count=40, seed=99, max_side=64, sanitize=True, timeout=600
    )
    bad = [c for c in cases if not c.ok]
    assert not bad, bad[:5]
    assert figures.get("sanitizer reports", 0) == 0 and figures["frames"] >= 40


FAKE_FUZZER = """#!{python}
import os, signal, sys
a = dict(zip(sys.argv[1::2], sys.argv[2::2]))
start, count = int(a["--start"]), int(a["--count"])
for i in range(start, start + count):
    print(f"fuzz {{i}} config 4x4x3 |u1 --plugin org.kwaflux.Denoise", flush=True)
    if i == 1 and a["--host"] == "multires":
        print("render t=0 status=0 identity=0 us=1", flush=True)
        os.kill(os.getpid(), signal.SIGSEGV)
    if i == 4:
        print("x.cpp:1:2: runtime error: signed integer overflow", flush=True)
    print("render t=0 status=%d identity=0 us=1" % (i == 5), flush=True)
    if i == 5:
        print("persistent message: Kwaflux: ValueError: bad", flush=True)
    print(f"fuzz {{i}} rc={{3 if i == 5 else 4 if i == 6 else 0}}", flush=True)
print("fuzz done", flush=True)
"""


def test_fuzz_harness_reports_crashes_sanitizer_lines_and_bad_messages(tmp_path):
    """The harness itself can fail: a process killed mid-case, a UBSan line, a raw exception as
    the message and a buffer overrun are each caught, and the run goes on after a crash."""
    exe = tmp_path / "fake-fuzz"
    exe.write_text(FAKE_FUZZER.format(python=sys.executable))
    exe.chmod(0o755)
    cases, figures = ofx_fuzz.run_fuzz(exe, tmp_path, tmp_path / "w", count=9, seed=1, timeout=120)
    by = {int(re.match(r"case (\d+)", c.name).group(1)): c for c in cases}
    assert sorted(by) == list(range(9))  # case 1 died; 2.. still ran
    assert by[1].outcome == "CRASH" and "exit -11" in by[1].detail
    assert by[4].outcome == "CRASH" and "runtime error" in by[4].detail
    assert by[5].outcome == "UNCLEAR"  # a bare Python exception is not a clear message
    assert by[6].outcome == "DAMAGE"
    assert {by[k].outcome for k in (0, 2, 3, 7, 8)} == {"accepted"}
    assert figures["crashes"] == 1 and figures["sanitizer reports"] == 1
