"""The bundle's shape, what it describes to hosts, and `kwaflux ofx install|doctor`."""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest

from kwaflux_ofx import cli
from kwaflux_ofx.hosts.ofx import install as ofx_tools
from tests.support.ofx import run_host


def test_bundle_exports_only_the_ofx_entry_points():
    binary = ofx_tools.installed_bundle() / "Contents" / "Linux-x86-64" / "Kwaflux.ofx"
    assert binary.is_file(), f"{binary} missing: run `make install`"
    nm = shutil.which("nm")
    if nm is None:
        pytest.skip("binutils' nm not installed")
    out = subprocess.run([nm, "-D", "--defined-only", str(binary)], capture_output=True, text=True)
    names = sorted(line.split()[-1] for line in out.stdout.splitlines() if line.strip())
    assert names == ["OfxGetNumberOfPlugins", "OfxGetPlugin"]


def test_bundle_carries_an_icon_per_effect():
    resources = ofx_tools.installed_bundle() / "Contents" / "Resources"
    for plugin in ("org.kwaflux.Denoise", "org.kwaflux.SuperResolution"):
        assert (resources / f"{plugin}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("plugin", ["org.kwaflux.Denoise", "org.kwaflux.SuperResolution"])
def test_every_numeric_param_has_range_and_display_range(tmp_path, plugin):
    proc = run_host(["--plugin", plugin, "--list"], tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    params = [ln for ln in proc.stdout.splitlines() if ln.startswith("param ")]
    numeric = [ln for ln in params if "OfxParamTypeDouble" in ln or "OfxParamTypeInteger" in ln]
    assert len(numeric) >= 2
    for line in numeric:
        for key in ("Min=", "Max=", "DisplayMin=", "DisplayMax="):
            assert f" {key}" in line, line
    names = {ln.split()[1] for ln in params}
    expected = {"model", "tileSize", "device", "colourSpace"}
    if plugin.endswith("SuperResolution"):
        expected |= {"scale", "look", "autoDenoise", "denoise", "splitView", "sourceScale"}
    else:
        expected |= {"autoStrength", "strength"}
    expected |= {"measuredNoise", "measureNoise", "temporalRadius"}
    assert names == expected
    radius = next(ln for ln in params if ln.startswith("param temporalRadius "))
    assert "type=OfxParamTypeInteger Default=2 Min=0 Max=3 DisplayMin=0 DisplayMax=3" in radius
    assert "thread safety OfxImageEffectRenderFullySafe" in proc.stdout


def test_install_then_host_finds_it_on_ofx_plugin_path(tmp_path, capsys):
    plugins = tmp_path / "ofx"
    assert cli.main(["ofx", "install", "--dest", str(plugins)]) == 0
    bundle = plugins / ofx_tools.BUNDLE_NAME
    cfg = (bundle / "Contents" / "Resources" / "kwaflux.cfg").read_text()
    assert "python = " in cfg
    # Installing again replaces the bundle in place.
    assert cli.main(["ofx", "install", "--dest", str(plugins)]) == 0
    assert sorted(p.name for p in plugins.iterdir()) == [ofx_tools.BUNDLE_NAME]

    img = np.random.default_rng(2).random((5, 6, 4), dtype=np.float32)
    np.save(tmp_path / "in.npy", img)
    cmd = [
        str(ofx_tools.test_host_path()),
        "--plugin",
        "org.kwaflux.Denoise",
        "--input",
        str(tmp_path / "in.npy"),
        "--output",
        str(tmp_path / "out.npy"),
        "--param",
        "strength=0",
        "--param",
        "autoStrength=0",
    ]
    env = {"OFX_PLUGIN_PATH": str(plugins), "KWAFLUX_LOG_DIR": str(tmp_path / "logs")}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"in {bundle}/Contents/Linux-x86-64/Kwaflux.ofx" in proc.stdout
    np.testing.assert_array_equal(np.load(tmp_path / "out.npy"), img)


def test_install_into_a_bad_folder_is_one_clear_error(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    assert cli.main(["ofx", "install", "--dest", str(blocker / "sub")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("kwaflux: error:") and str(blocker / "sub") in err
    assert len(err.splitlines()) == 1


def test_doctor_reports_python_models_and_providers(tmp_path, capsys):
    assert cli.main(["ofx", "doctor", "--bundle", str(ofx_tools.installed_bundle())]) == 0
    out = capsys.readouterr().out
    assert "interpreter: embedded, 3.11" in out
    assert "providers in use: CPUExecutionProvider" in out or "CUDAExecutionProvider" in out
    assert "kwaflux-sr-x2" in out
    assert "test render x2: ok (16, 16) -> (32, 32)" in out


def test_doctor_on_a_broken_install_says_why(tmp_path, capsys):
    bundle = ofx_tools.install(tmp_path, python="/nonexistent/venv/bin/python")
    assert cli.main(["ofx", "doctor", "--bundle", str(bundle)]) == 2
    captured = capsys.readouterr()
    assert "FAILED: Python /nonexistent/venv/bin/python not found" in captured.out
    assert "does not work yet" in captured.err
