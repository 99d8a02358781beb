"""Bad cases through the real bundle: the host survives every one and the user sees why."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from kwaflux_ofx.hosts.ofx import install as ofx_tools
from tests.support.ofx import failing_model, run_host, sr_x2_model

SR = "org.kwaflux.SuperResolution"
DENOISE = "org.kwaflux.Denoise"
FAILED = 3  # the test host's exit code when renders failed but the host lived


@pytest.fixture()
def frame(tmp_path) -> Path:
    path = tmp_path / "in.npy"
    np.save(path, np.random.default_rng(0).random((6, 8, 4), dtype=np.float32))
    return path


def host(tmp_path, frame, plugin, *args, bundle=None):
    out = tmp_path / "out.npy"
    cmd = ["--plugin", plugin, "--input", str(frame), "--output", str(out), *args]
    return run_host(cmd, tmp_path, bundle=bundle)


def persistent_message(proc) -> str:
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("persistent message: ")]
    assert lines, proc.stdout + proc.stderr
    return lines[-1]


def assert_survived(proc):
    # A crash shows as a negative return code (killed by a signal); the host must end normally.
    assert proc.returncode == FAILED, proc.stdout + proc.stderr
    assert "action OfxActionDestroyInstance -> 0" in proc.stdout
    assert "action OfxActionUnload -> 0" in proc.stdout


def test_missing_venv(tmp_path, frame):
    bundle = ofx_tools.install(tmp_path / "plugins", python=str(tmp_path / "gone/bin/python"))
    proc = host(tmp_path, frame, SR, bundle=bundle)
    assert_survived(proc)
    msg = persistent_message(proc)
    assert "gone/bin/python not found" in msg and "kwaflux ofx install" in msg
    assert "gone/bin/python not found" in (tmp_path / "logs" / "ofx.log").read_text()


def test_venv_without_kwaflux(tmp_path, frame):
    # A real Python 3.11 venv that lacks our packages: Python starts, the import fails, the
    # host is told why on every frame and keeps going.
    venv = tmp_path / "bare-venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    bundle = ofx_tools.install(tmp_path / "plugins", python=str(venv / "bin" / "python"))
    proc = host(tmp_path, frame, SR, "--frames", "2", bundle=bundle)
    assert_survived(proc)
    assert proc.stdout.count("status=1") == 2
    msg = persistent_message(proc)
    assert f"cannot import kwaflux_ofx with {venv}/bin/python" in msg
    assert "ModuleNotFoundError" in msg


def test_broken_model_file(tmp_path, frame):
    bad = tmp_path / "garbage.onnx"
    bad.write_bytes(b"this is not a protobuf" * 10)
    proc = host(tmp_path, frame, SR, "--param", f"model={bad}")
    assert_survived(proc)
    assert str(bad) in persistent_message(proc)


def test_missing_model_file(tmp_path, frame):
    proc = host(tmp_path, frame, DENOISE, "--param", f"model={tmp_path / 'nope.onnx'}")
    assert_survived(proc)
    assert "nope.onnx: model file not found" in persistent_message(proc)


def test_python_exception_inside_render(tmp_path, frame):
    model = failing_model(tmp_path / "fails.onnx")
    proc = host(tmp_path, frame, DENOISE, "--param", f"model={model}", "--frames", "3")
    assert_survived(proc)
    assert proc.stdout.count("status=1") == 3  # every frame failed, none crashed
    assert "Kwaflux:" in persistent_message(proc)
    log = (tmp_path / "logs" / "ofx.log").read_text()
    assert "Traceback" in log and "render failed" in log


def test_wrong_scale_model_is_reported(tmp_path, frame):
    model = sr_x2_model(tmp_path / "x2.onnx")
    proc = host(tmp_path, frame, SR, "--param", f"model={model}", "--param", "scale=4x")
    assert_survived(proc)
    assert "x2 model but x4 was asked for" in persistent_message(proc)


def test_unconnected_source(tmp_path, frame):
    proc = host(tmp_path, frame, SR, "--disconnect-source")
    assert_survived(proc)
    assert "no source image" in persistent_message(proc)


def test_host_reporting_too_short_rows_is_refused(tmp_path, frame):
    # 8 px RGBA float rows need 128 bytes; a buggy host says 40. Nothing may be read or written.
    model = sr_x2_model(tmp_path / "x2.onnx")
    proc = host(tmp_path, frame, SR, "--param", f"model={model}", "--report-rowbytes", "40")
    assert_survived(proc)  # exit 3, not 4: the guard bytes around the buffers are intact
    assert "rows (40 bytes) are shorter than its width needs (128)" in persistent_message(proc)
