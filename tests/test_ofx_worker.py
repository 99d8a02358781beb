"""The isolated render worker through the real bundle: every case renders the same pixels as
in-process, a host running another Python (3.10, 3.12) gets it automatically, and nothing the
host does leaves a worker behind."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from kwaflux_ofx import Engine, cli
from kwaflux_ofx.hosts.ofx import install as ofx_tools
from tests.support.ofx import run_host, sr_x2_model
from tests.support.onnx_models import noise_denoiser

SR = "org.kwaflux.SuperResolution"
DENOISE = "org.kwaflux.Denoise"
ISOLATED = {"KWAFLUX_OFX_ISOLATED": "1"}
STARTED = "started the render worker pid "


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("models")
    return {
        "sr": sr_x2_model(d / "sr2.onnx"),
        "dn": noise_denoiser(d / "dn.onnx", meta={"noise_level": "rms"}),
    }


@pytest.fixture(scope="module")
def engine() -> Engine:
    return Engine(device="cpu")


def picture(shape, dtype, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if np.issubdtype(dtype, np.integer):
        return rng.integers(0, np.iinfo(dtype).max, shape, endpoint=True).astype(dtype)
    return rng.random(shape, dtype=np.float32).astype(dtype)


def host(tmp: Path, img, plugin: str, params: dict, *flags: str, env=None, bundle=None):
    tmp.mkdir(parents=True, exist_ok=True)
    np.save(tmp / "in.npy", img)
    args = ["--plugin", plugin, "--input", str(tmp / "in.npy"), "--output", str(tmp / "out.npy")]
    for k, v in params.items():
        args += ["--param", f"{k}={v}"]
    return run_host(args + list(flags), tmp, env=env, bundle=bundle)


def outputs(tmp: Path) -> list[np.ndarray]:
    one = tmp / "out.npy"
    if one.is_file():
        return [np.load(one)]
    return [np.load(tmp / f"out.{t}.npy") for t in range(len(list(tmp.glob("out.*.npy"))))]


def log(tmp: Path) -> str:
    path = tmp / "logs" / "ofx.log"
    return path.read_text() if path.is_file() else ""


def worker_pids(tmp: Path) -> list[int]:
    return [
        int(ln.split(STARTED)[1].split(":")[0]) for ln in log(tmp).splitlines() if STARTED in ln
    ]


def alive(pid: int) -> bool:
    """Running, not a zombie waiting for a container's init to reap it."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def messages(proc) -> list[str]:
    return [ln for ln in proc.stderr.splitlines() if "persistent message" in ln]


# Each case: plugin, picture (shape, dtype), parameters beyond the model, host flags.
CASES = {
    "sr-float-rgba": (SR, (10, 14, 4), np.float32, {}, []),
    "sr-uint8-rgb": (SR, (9, 13, 3), np.uint8, {}, []),
    "sr-uint16-negative-rowbytes": (SR, (8, 11, 4), np.uint16, {}, ["--negative-rowbytes"]),
    "sr-half-padded-offset": (SR, (7, 9, 4), np.float16, {}, ["--row-pad", "12", "--offset", "3,5"]),
    "sr-proxy-scale": (SR, (12, 16, 4), np.float32, {}, ["--render-scale-down", "2"]),
    "sr-resolve-split-view": (SR, (12, 16, 4), np.float32, {"splitView": 1}, ["--resolve"]),
    "sr-straight-alpha": (SR, (8, 10, 4), np.float32, {}, ["--unpremultiplied"]),
    "sr-tiled": (SR, (80, 96, 4), np.float32, {"tileSize": 64, "autoDenoise": 0}, []),
    "sr-resolve-temporal": (
        SR,
        (12, 16, 4),
        np.float32,
        {"autoDenoise": 0, "denoise": 0.3, "temporalRadius": 1},
        ["--resolve", "--frames", "3"],
    ),
    "sr-4-threads": (SR, (16, 20, 4), np.float32, {"temporalRadius": 0}, ["--threads", "4", "--frames", "8"]),
    "denoise-temporal": (
        DENOISE,
        (14, 18, 3),
        np.uint8,
        {"autoStrength": 0, "strength": 0.5, "temporalRadius": 2},
        ["--frames", "5", "--render-order", "4,0,2,1,3"],
    ),
    "denoise-auto": (DENOISE, (24, 32, 4), np.float32, {}, []),
}  # fmt: skip


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_worker_renders_what_in_process_renders(tmp_path, models, case):
    plugin, shape, dtype, extra, flags = CASES[case]
    model = models["sr"] if plugin == SR else models["dn"]
    params = {"model": model, **extra}
    img = picture(shape, dtype, seed=len(case))
    inproc = host(tmp_path / "in", img, plugin, params, *flags)
    isolated = host(tmp_path / "worker", img, plugin, params, *flags, env=ISOLATED)
    assert inproc.returncode == 0, inproc.stdout[-2000:] + inproc.stderr[-2000:]
    assert isolated.returncode == 0, isolated.stdout[-2000:] + isolated.stderr[-2000:]
    assert len(worker_pids(tmp_path / "worker")) == 1  # one worker for the whole sequence
    assert "exited with status 0 (the host unloaded the plugin)" in log(tmp_path / "worker")
    assert not worker_pids(tmp_path / "in")
    want, got = outputs(tmp_path / "in"), outputs(tmp_path / "worker")
    assert len(want) == len(got) >= 1
    for a, b in zip(want, got, strict=True):
        assert a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_array_equal(b, a)
    assert any(np.any(b != 0) for b in got)


@pytest.mark.parametrize("dtype", [np.uint8, np.float32], ids=["uint8", "float32"])
def test_worker_output_equals_the_engine(tmp_path, models, engine, dtype):
    img = picture((10, 14, 4), dtype, seed=3)
    proc = host(tmp_path, img, SR, {"model": models["sr"]}, env=ISOLATED)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    np.testing.assert_array_equal(
        np.load(tmp_path / "out.npy"), engine.process(img, scale=2, sr_model=models["sr"])
    )


def test_measure_noise_through_the_worker(tmp_path, models):
    rng = np.random.default_rng(4)
    img = np.clip(0.5 + rng.normal(0, 12 / 255, (48, 64, 3)), 0, 1).astype(np.float32)
    values = []
    for where, env in (("in", None), ("worker", ISOLATED)):
        flags = ["--changed", "measureNoise"]
        proc = host(tmp_path / where, img, DENOISE, {"model": models["dn"]}, *flags, env=env)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        values += [ln for ln in proc.stdout.splitlines() if ln.startswith("value measuredNoise")]
    assert len(values) == 2 and values[0] == values[1]
    assert values[1].startswith("value measuredNoise = measured noise 1")


def test_no_worker_while_the_host_only_scans(tmp_path):
    proc = run_host(["--plugin", SR, "--list"], tmp_path, env=ISOLATED)
    assert proc.returncode == 0 and "param model" in proc.stdout
    assert STARTED not in log(tmp_path)


def test_the_doctor_says_which_mode_and_why(tmp_path):
    proc = run_host(["--plugin", SR, "--doctor"], tmp_path, env=ISOLATED)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "mode: worker (isolated by KWAFLUX_OFX_ISOLATED=1" in proc.stdout
    assert "test render x2: ok" in proc.stdout
    proc = run_host(["--plugin", SR, "--doctor"], tmp_path / "default")
    assert "mode: in-process (the default where the host runs no Python" in proc.stdout


def test_install_isolated_asks_every_host_for_the_worker(tmp_path, models, capsys, monkeypatch):
    monkeypatch.setenv("KWAFLUX_LOG_DIR", str(tmp_path / "logs"))
    plugins = tmp_path / "plugins"
    assert cli.main(["ofx", "install", "--isolated", "--dest", str(plugins)]) == 0
    assert "isolated: frames render in a worker process" in capsys.readouterr().out
    bundle = plugins / ofx_tools.BUNDLE_NAME
    assert cli.main(["ofx", "doctor", "--bundle", str(bundle)]) == 0
    report = capsys.readouterr().out
    assert "mode: worker (isolated by isolated = yes in " in report
    assert "test render x2: ok" in report
    monkeypatch.delenv("KWAFLUX_LOG_DIR")
    img = picture((6, 8, 3), np.float32, seed=2)
    proc = host(tmp_path / "render", img, SR, {"model": models["sr"]}, bundle=bundle)
    assert proc.returncode == 0 and len(worker_pids(tmp_path / "render")) == 1


def _pyenv_libpython(version: str) -> Path:
    """A shared libpython of another version from pyenv, found by a shell (outside this
    process's read guard: pyenv's tree is no part of a fresh clone's test inputs)."""
    proc = subprocess.run(
        ["sh", "-c", f'ls -d "$(pyenv root)"/versions/{version}.*/lib/libpython{version}.so'],
        capture_output=True,
        text=True,
    )
    found = proc.stdout.split()
    if proc.returncode != 0 or not found:
        pytest.skip(f"no shared libpython{version}.so from pyenv here ({proc.stderr.strip()})")
    return Path(found[-1])


@pytest.mark.parametrize("version", ["3.10", "3.12"])
@pytest.mark.parametrize("plugin", [SR, DENOISE], ids=["sr", "denoise"])
def test_a_host_running_another_python_renders_through_the_worker(
    tmp_path, models, version, plugin
):
    lib = _pyenv_libpython(version)
    img = picture((10, 14, 4), np.float32, seed=9)
    params = {"model": models["sr"] if plugin == SR else models["dn"]}
    flags = ["--natron", "--frames", "3"]
    natron = host(tmp_path / "natron", img, plugin, params, *flags, "--host-python", str(lib))
    assert natron.returncode == 0, natron.stdout[-2000:] + natron.stderr[-2000:]
    assert f"host python {version}." in natron.stdout
    assert f"already runs Python {version}." in log(tmp_path / "natron")
    # The same host without a Python of its own renders in-process: the pixels are the same.
    ours = host(tmp_path / "ours", img, plugin, params, *flags)
    assert ours.returncode == 0 and not worker_pids(tmp_path / "ours")
    for a, b in zip(outputs(tmp_path / "ours"), outputs(tmp_path / "natron"), strict=True):
        np.testing.assert_array_equal(b, a)
    pids = worker_pids(tmp_path / "natron")
    assert len(pids) == 1 and not alive(pids[0])  # ended at unload


def test_a_killed_worker_costs_a_frame_not_the_session(tmp_path, models, engine):
    img = picture((135, 240, 4), np.float32, seed=5)
    flags = ["--frames", "24", "--kill-worker-at", "10", "--kill-delay-ms", "5"]
    params = {"model": models["sr"], "temporalRadius": 0, "autoDenoise": 0}
    proc = host(tmp_path, img, SR, params, *flags, env=ISOLATED)
    assert proc.returncode in (0, 3), proc.stdout[-2000:] + proc.stderr[-2000:]  # never a crash
    assert "sent signal 9 to worker pid" in proc.stdout
    status = {int(ln.split()[1][2:]): ln.split()[2] for ln in proc.stdout.splitlines()
              if ln.startswith("render t=")}  # fmt: skip
    failed = [t for t, s in status.items() if s != "status=0"]
    assert len(status) == 24 and len(failed) <= 2 and all(t >= 10 for t in failed)
    assert all(status[t] == "status=0" for t in range(12, 24))
    if failed:
        assert any(
            "was killed by signal 9 (SIGKILL)" in m and "ofx.log" in m for m in messages(proc)
        )
    for t in range(12, 24):
        ref = engine.process(np.roll(img, t, axis=1), scale=2, sr_model=models["sr"])
        np.testing.assert_array_equal(np.load(tmp_path / f"out.{t}.npy"), ref)
    pids = worker_pids(tmp_path)
    assert len(pids) == 2 and not any(alive(p) for p in pids)


def test_a_hung_worker_times_out_and_the_next_frame_renders(tmp_path, models):
    img = picture((12, 16, 4), np.float32, seed=6)
    env = ISOLATED | {"KWAFLUX_OFX_WORKER_TIMEOUT": "3"}
    flags = ["--frames", "4", "--stop-worker-at", "1"]
    proc = host(tmp_path, img, SR, {"model": models["sr"], "temporalRadius": 0}, *flags, env=env)
    assert proc.returncode == 3, proc.stdout[-2000:] + proc.stderr[-2000:]
    # The stop lands during frame 1 or, when that tiny frame was quicker, before frame 2.
    failed = [t for t in range(4) if f"render t={t} status=0" not in proc.stdout]
    assert failed in ([1], [2]), proc.stdout[-2000:]
    assert f"render t={failed[0] + 1} status=0" in proc.stdout  # a fresh worker renders on
    assert any("did not answer within 3 s" in m for m in messages(proc))
    assert not any(alive(p) for p in worker_pids(tmp_path))


def test_the_host_killed_leaves_no_worker(tmp_path, models):
    img = picture((64, 96, 4), np.float32, seed=7)
    np.save(tmp_path / "in.npy", img)
    cmd = [str(ofx_tools.test_host_path()), "--bundle", str(ofx_tools.installed_bundle())]
    cmd += ["--plugin", SR, "--input", str(tmp_path / "in.npy"), "--frames", "100000"]
    cmd += ["--param", f"model={models['sr']}", "--param", "temporalRadius=0", "--same-buffers"]
    env = dict(os.environ, KWAFLUX_LOG_DIR=str(tmp_path / "logs"), **ISOLATED)
    host_proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not worker_pids(tmp_path) and time.monotonic() < deadline:
            time.sleep(0.1)
        pids = worker_pids(tmp_path)
        assert len(pids) == 1 and alive(pids[0])
    finally:
        host_proc.send_signal(signal.SIGKILL)
        host_proc.wait()
    deadline = time.monotonic() + 10
    while alive(pids[0]) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(pids[0])
