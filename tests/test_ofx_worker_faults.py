"""Faults of the render worker through the real bundle: a malformed reply writes nothing, a
worker that cannot start says why in one line and is not restarted in a loop, and the host's
Python environment reaches neither the in-process interpreter nor the worker."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from kwaflux_ofx.hosts.ofx import install as ofx_tools
from tests.support.ofx import run_host, sr_x2_model

SR = "org.kwaflux.SuperResolution"
ROOT = Path(__file__).resolve().parents[1]
FAULTY = "tests.support.ofx_faulty_worker"


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    return sr_x2_model(tmp_path_factory.mktemp("models") / "sr2.onnx")


def isolated_bundle(tmp: Path, *lines: str) -> Path:
    """An installed bundle whose kwaflux.cfg asks for the worker, plus `lines`."""
    bundle = ofx_tools.install(tmp / "plugins")
    cfg = bundle / "Contents" / "Resources" / ofx_tools.CONFIG_NAME
    cfg.write_text(cfg.read_text() + "\n".join(["isolated = yes", *lines]) + "\n")
    return bundle


def render(tmp: Path, model: Path, *flags: str, bundle=None, env=None, frames: int = 1):
    img = np.random.default_rng(2).random((8, 12, 4), dtype=np.float32)
    np.save(tmp / "in.npy", img)
    args = ["--plugin", SR, "--input", str(tmp / "in.npy"), "--output", str(tmp / "out.npy")]
    args += ["--param", f"model={model}", "--param", "temporalRadius=0", "--frames", str(frames)]
    return img, run_host(args + list(flags), tmp, bundle=bundle, env=env)


def log(tmp: Path) -> str:
    return (tmp / "logs" / "ofx.log").read_text()


def messages(proc) -> list[str]:
    return [ln for ln in proc.stderr.splitlines() if "persistent message" in ln]


def test_a_reply_of_the_wrong_shape_is_a_crash_and_writes_nothing(tmp_path, model):
    bundle = isolated_bundle(
        tmp_path,
        f"worker_module = {FAULTY}",
        f"pythonpath = {ROOT}",
        "env = KWAFLUX_TEST_WORKER_FAULT=wrong-shape",
    )
    _, proc = render(tmp_path, model, bundle=bundle, frames=2)
    assert proc.returncode == 3, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert proc.stdout.count("status=1") == 2
    msg = messages(proc)[0]
    assert "replied with a frame of shape 17 24 4 float32 for 16 24 4 float32" in msg
    assert "treated as a crash, nothing written" in msg
    for t in range(2):
        # The worker did render into the shared buffer: none of it reached the host's.
        assert not np.load(tmp_path / f"out.{t}.npy").any()
    assert log(tmp_path).count("started the render worker pid") == 2  # each crash: a new one


def test_a_worker_dying_at_start_is_not_restarted_in_a_loop(tmp_path, model):
    bundle = isolated_bundle(
        tmp_path,
        f"worker_module = {FAULTY}",
        f"pythonpath = {ROOT}",
        "env = KWAFLUX_TEST_WORKER_FAULT=die-at-start",
    )
    _, proc = render(tmp_path, model, bundle=bundle, frames=6)
    assert proc.returncode == 3, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert proc.stdout.count("status=1") == 6
    assert log(tmp_path).count("starting the render worker") == 3
    shown = messages(proc)
    assert len(shown) == 6  # one per frame, no storm
    assert all("exited with status 3 while starting" in m for m in shown[:3])
    assert all("failed to start 3 times in a row" in m and "next try in" in m for m in shown[3:])
    assert all("ofx-worker.log" in m and "ofx.log" in m for m in shown)


def test_a_worker_that_cannot_import_says_so_as_in_process(tmp_path, model):
    bundle = isolated_bundle(tmp_path, "worker_module = kwaflux_ofx.no_such_module")
    _, proc = render(tmp_path, model, bundle=bundle)
    assert proc.returncode == 3, proc.stdout[-2000:] + proc.stderr[-2000:]
    (msg,) = messages(proc)
    assert "Kwaflux: cannot import kwaflux_ofx with " in msg
    assert "ModuleNotFoundError: No module named 'kwaflux_ofx.no_such_module'" in msg


def test_a_moved_venv_says_what_in_process_says(tmp_path, model):
    bundle = ofx_tools.install(tmp_path / "plugins", python=str(tmp_path / "gone/bin/python"))
    _, inproc = render(tmp_path, model, bundle=bundle)
    (tmp_path / "w").mkdir()
    _, worker = render(tmp_path / "w", model, bundle=bundle, env={"KWAFLUX_OFX_ISOLATED": "1"})
    assert inproc.returncode == worker.returncode == 3
    (a,), (b,) = messages(inproc), messages(worker)
    assert a.split(" (log: ")[0] == b.split(" (log: ")[0]  # each run logs to its own folder
    assert "gone/bin/python not found" in messages(worker)[0]


@pytest.fixture()
def hostile_env(tmp_path) -> dict[str, str]:
    """What a host may set for its own Python: each would break ours if it were read."""
    evil = tmp_path / "evil"
    for pkg in ("numpy", "kwaflux_ofx", "onnxruntime"):
        (evil / pkg).mkdir(parents=True)
        (evil / pkg / "__init__.py").write_text(f"raise ImportError('hostile {pkg}')\n")
    user_site = tmp_path / "userbase" / "lib" / "python3.11" / "site-packages"
    (user_site / "numpy").mkdir(parents=True)
    (user_site / "numpy" / "__init__.py").write_text("raise ImportError('user site numpy')\n")
    (tmp_path / "startup.py").write_text("raise SystemExit('PYTHONSTARTUP ran')\n")
    return {
        "PYTHONPATH": str(evil),
        "PYTHONHOME": str(tmp_path / "no-such-home"),
        "PYTHONNOUSERSITE": "",  # unset for the user site below to be read, were it honoured
        "PYTHONUSERBASE": str(tmp_path / "userbase"),
        "PYTHONSTARTUP": str(tmp_path / "startup.py"),
        "PYTHONWARNINGS": "error",
        "PYTHONPLATLIBDIR": "nowhere",
    }


@pytest.mark.parametrize("mode", ["in-process", "worker"])
def test_the_hosts_python_environment_changes_nothing(tmp_path, model, hostile_env, mode):
    env = hostile_env | ({"KWAFLUX_OFX_ISOLATED": "1"} if mode == "worker" else {})
    img, proc = render(tmp_path, model, env=env)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    want = "started the render worker pid" if mode == "worker" else "started Python 3.11"
    assert want in log(tmp_path)
    clean = tmp_path / "clean"
    clean.mkdir()
    render(clean, model)
    np.testing.assert_array_equal(np.load(tmp_path / "out.npy"), np.load(clean / "out.npy"))
