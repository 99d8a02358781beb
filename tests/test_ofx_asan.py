"""The plugin and the test host built with AddressSanitizer: good and bad frames, no memory errors."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from kwaflux_ofx import Engine
from tests.support.ofx import failing_model, run_host, sr_x2_model

ROOT = Path(__file__).resolve().parent.parent
BUILD = ROOT / "build" / "asan"


@pytest.fixture(scope="module")
def asan_build() -> Path:
    cmake = shutil.which("cmake")
    if cmake is None:
        pytest.skip("cmake not on PATH")
    gen = ["-G", "Ninja"] if shutil.which("ninja") else []
    # A configure that failed half-way leaves a cache but no build files: configure again.
    if not any((BUILD / f).is_file() for f in ("build.ninja", "Makefile")):
        subprocess.run(
            [cmake, "-S", str(ROOT), "-B", str(BUILD), *gen, "-DCMAKE_BUILD_TYPE=Debug",
             "-DKWAFLUX_ASAN=ON", f"-DPython_EXECUTABLE={sys.executable}"],
            check=True, capture_output=True, timeout=300,
        )  # fmt: skip
    # Incremental: only the first run on a machine pays for the compile.
    proc = subprocess.run(
        [cmake, "--build", str(BUILD), "-j", "2"], capture_output=True, text=True, timeout=900
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return BUILD


def run_asan(build: Path, tmp: Path, args: list[str]) -> subprocess.CompletedProcess:
    # Python and numpy keep their arenas until exit by design: leaks are not what we look for.
    env = {"ASAN_OPTIONS": "detect_leaks=0:abort_on_error=0:exitcode=99"}
    host = build / "bin" / "kwaflux-ofx-test-host"
    return run_host(args, tmp, bundle=build / "Kwaflux.ofx.bundle", env=env, timeout=600, host=host)


def test_asan_good_and_bad_frames(asan_build, tmp_path):
    model = sr_x2_model(tmp_path / "sr2.onnx")
    img = np.random.default_rng(4).random((5, 7, 4), dtype=np.float32)
    np.save(tmp_path / "in.npy", img)
    io = ["--input", str(tmp_path / "in.npy"), "--output", str(tmp_path / "out.npy")]
    sr = ["--plugin", "org.kwaflux.SuperResolution", *io]

    good = run_asan(
        asan_build,
        tmp_path,
        sr + ["--param", f"model={model}", "--negative-rowbytes", "--offset", "3,-2",
              "--row-pad", "5", "--threads", "3", "--frames", "3"],
    )  # fmt: skip
    assert "AddressSanitizer" not in good.stderr, good.stderr[-4000:]
    assert good.returncode == 0, good.stdout + good.stderr[-3000:]
    # Auto denoise and Temporal radius 2 are the defaults: frame 2 is denoised with frames 0, 1.
    frames = [np.roll(img, t, axis=1) for t in range(3)]
    ref = Engine(device="cpu").process_window(frames, 2, scale=2, denoise="auto", sr_model=model)
    np.testing.assert_array_equal(np.load(tmp_path / "out.2.npy"), ref)
    assert good.stdout.count("host: fetch t=") == 2 + 2 + 2

    broken = failing_model(tmp_path / "fails.onnx")
    bad = run_asan(
        asan_build,
        tmp_path,
        ["--plugin", "org.kwaflux.Denoise", *io, "--param", f"model={broken}", "--resolve"],
    )
    assert "AddressSanitizer" not in bad.stderr, bad.stderr[-4000:]
    assert bad.returncode == 3 and "persistent message: Kwaflux:" in bad.stdout

    tiny = np.ones((1, 1, 3), np.uint8)
    np.save(tmp_path / "in.npy", tiny)
    one = run_asan(asan_build, tmp_path, sr + ["--param", f"model={model}", "--resolve"])
    assert "AddressSanitizer" not in one.stderr, one.stderr[-4000:]
    assert one.returncode == 0, one.stdout + one.stderr[-3000:]


def test_asan_through_the_worker_and_its_death(asan_build, tmp_path):
    model = sr_x2_model(tmp_path / "sr2.onnx")
    img = np.random.default_rng(5).random((6, 9, 4), dtype=np.float32)
    np.save(tmp_path / "in.npy", img)
    args = ["--plugin", "org.kwaflux.SuperResolution", "--input", str(tmp_path / "in.npy")]
    args += ["--output", str(tmp_path / "out.npy"), "--param", f"model={model}"]
    args += ["--param", "temporalRadius=1", "--negative-rowbytes", "--row-pad", "5"]
    args += ["--threads", "2", "--frames", "6", "--kill-worker-at", "3"]
    env = {"ASAN_OPTIONS": "detect_leaks=0:abort_on_error=0:exitcode=99"}
    env["KWAFLUX_OFX_ISOLATED"] = "1"
    host = asan_build / "bin" / "kwaflux-ofx-test-host"
    bundle = asan_build / "Kwaflux.ofx.bundle"
    proc = run_host(args, tmp_path, bundle=bundle, env=env, timeout=600, host=host)
    assert "AddressSanitizer" not in proc.stderr, proc.stderr[-4000:]
    assert proc.returncode in (0, 3), proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "sent signal 9 to worker pid" in proc.stdout
    assert proc.stdout.count("status=0") >= 4  # at most the frames in flight at the kill failed
