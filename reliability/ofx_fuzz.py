"""Campaign: the OFX plugin under a fuzzing host (ofx_fuzz.cpp), sanitizers on, and many render threads."""

from __future__ import annotations

import collections
import os
import re
import shutil
import sys
import time
from pathlib import Path

from reliability.cases import ROOT, Case
from reliability.model_files import _SR_META

# -- 4. OFX boundary fuzzing and the render-thread soak ----------------------------------------
FUZZ_SRC = ROOT / "reliability" / "ofx_fuzz.cpp"


SAN_ENV = {
    "ASAN_OPTIONS": "detect_leaks=0:abort_on_error=0:exitcode=99",
    "UBSAN_OPTIONS": "print_stacktrace=1",
}


def ofx_models(d: Path) -> Path:
    from tests.support.ofx import failing_model, sr_x2_model
    from tests.support.onnx_models import noise_denoiser, sr_model

    d.mkdir(parents=True, exist_ok=True)

    def calibrated_denoiser(path: Path) -> Path:
        # Calibrated like the shipped denoiser, so "auto" (the effects' default) can use it.
        return noise_denoiser(path, meta={"noise_level": "rms"})

    for name, make in (
        ("sr.onnx", sr_x2_model),
        ("dn.onnx", calibrated_denoiser),
        ("fail.onnx", failing_model),
    ):
        if not (d / name).exists():
            make(d / name)
    # Small stand-ins for the built-in names, so an empty model parameter (the defaults, x4 and
    # denoise-before-SR included) renders quickly too: KWAFLUX_MODELS_DIR points here.
    reg = d / "registry"
    reg.mkdir(exist_ok=True)
    if not (reg / "kwaflux-sr-x4.onnx").exists():
        shutil.copyfile(d / "sr.onnx", reg / "kwaflux-sr-x2.onnx")
        shutil.copyfile(d / "dn.onnx", reg / "kwaflux-denoise.onnx")
        sr_model(reg / "kwaflux-sr-x4.onnx", 4, meta={**_SR_META, "scale": 4})
    return d


def build_fuzzer(out_dir: Path, sanitize: bool) -> Path:
    """Compile the fuzz driver (the test host's source plus the random loop)."""
    import subprocess

    out_dir.mkdir(parents=True, exist_ok=True)
    exe = out_dir / "ofx-fuzz"
    srcs = [
        FUZZ_SRC,
        ROOT / "bridge" / "test_host" / "host.cpp",
        ROOT / "bridge" / "test_host" / "conditions.cpp",
        ROOT / "bridge" / "test_host" / "properties.cpp",
        ROOT / "bridge" / "test_host" / "npy.h",
    ]
    if exe.exists() and exe.stat().st_mtime > max(p.stat().st_mtime for p in srcs):
        return exe
    flags = ["-O1", "-g"]
    if sanitize:
        flags += ["-fsanitize=address,undefined", "-fno-omit-frame-pointer"]
    cmd = [
        "g++",
        "-std=c++17",
        *flags,
        f"-I{ROOT / 'bridge'}",
        str(FUZZ_SRC),
        # The host's other sources (host.cpp itself is included by the driver).
        str(ROOT / "bridge" / "test_host" / "conditions.cpp"),
        str(ROOT / "bridge" / "test_host" / "properties.cpp"),
        "-o",
        str(exe),
        "-ldl",
        "-lpthread",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        raise RuntimeError(f"building the fuzzer failed: {proc.stderr[-2000:]}")
    return exe


def build_sanitized_bundle(build: Path, undefined: bool) -> Path:
    """The plugin built with AddressSanitizer (and UBSan) through the project's own CMake option,
    in a build folder of its own."""
    import subprocess

    if not (build / "CMakeCache.txt").is_file():
        cmd = [
            "cmake",
            "-S",
            str(ROOT),
            "-B",
            str(build),
            "-DCMAKE_BUILD_TYPE=Debug",
            "-DKWAFLUX_ASAN=ON",
            f"-DPython_EXECUTABLE={sys.executable}",
        ]
        if shutil.which("ninja"):
            cmd += ["-G", "Ninja"]
        if undefined:
            cmd.append("-DCMAKE_CXX_FLAGS=-fsanitize=undefined -fno-omit-frame-pointer")
        subprocess.run(cmd, check=True, capture_output=True, timeout=300)
    proc = subprocess.run(
        ["cmake", "--build", str(build), "-j", "2"], capture_output=True, text=True, timeout=1800
    )
    if proc.returncode != 0:
        raise RuntimeError(f"building the sanitized plugin failed: {proc.stdout[-2000:]}")
    return build / "Kwaflux.ofx.bundle"


def default_bundle() -> Path:
    from kwaflux_ofx.hosts.ofx import install as ofx_tools

    b = ofx_tools.installed_bundle()
    return b if b.exists() else ROOT / "build" / "cp311-cp311-linux_x86_64" / "Kwaflux.ofx.bundle"


_RAW_EXC = re.compile(r"Kwaflux: [A-Z][A-Za-z]*(Error|Exception): ")


def run_fuzz(
    exe: Path,
    bundle: Path,
    work: Path,
    count: int,
    seed: int = 1,
    max_side: int = 512,
    sanitize: bool = False,
    timeout: float = 1800,
) -> tuple[list[Case], dict]:
    """Run `count` random configurations; a process that dies is restarted after the case that
    killed it. Returns (cases, figures)."""

    work.mkdir(parents=True, exist_ok=True)
    models = ofx_models(work / "models")
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "KWAFLUX_LOG_DIR": str(work / "logs"),
        "KWAFLUX_MODELS_DIR": str(models / "registry"),
        **(SAN_ENV if sanitize else {}),
    }
    figures = collections.Counter()
    cases: list[Case] = []
    deadline = time.monotonic() + timeout
    # One host flavour per process (a host's capabilities never change under a plugin): the
    # cases are split between a Natron-like host, one without multi-resolution, and Resolve.
    for k, flavour in enumerate(("multires", "nomultires", "resolve")):
        first, last = count * k // 3, count * (k + 1) // 3
        _fuzz_flavour(
            exe,
            bundle,
            models,
            work,
            env,
            seed,
            first,
            last,
            max_side,
            flavour,
            deadline,
            cases,
            figures,
        )
    figures["configurations"] = len(cases)
    return cases, dict(figures)


def _fuzz_flavour(
    exe, bundle, models, work, env, seed, first, last, max_side, flavour, deadline, cases, figures
) -> None:
    import subprocess

    start, count = first, last
    while start < count and time.monotonic() < deadline:
        try:
            proc = _run_fuzz_process(
                [
                    str(exe),
                    "--bundle",
                    str(bundle),
                    "--models",
                    str(models),
                    "--work",
                    str(work),
                    "--seed",
                    str(seed),
                    "--start",
                    str(start),
                    "--count",
                    str(count - start),
                    "--max-side",
                    str(max_side),
                    "--host",
                    flavour,
                ],
                env,
                max(1.0, deadline - time.monotonic()),
            )
        except subprocess.TimeoutExpired:
            cases.append(
                Case(
                    "ofx-fuzz",
                    f"cases from {start} [{flavour}]",
                    "HANG",
                    "the fuzz process did not finish before the deadline",
                )
            )
            return
        cur, config, block, last_done = None, "", [], start - 1
        recheck = False
        for line in proc.stdout.splitlines():
            m = re.match(r"fuzz (\d+) config (.*)", line)
            if m:
                cur, config, block, recheck = int(m.group(1)), m.group(2), [], False
                continue
            if re.match(r"fuzz \d+ recheck", line):
                recheck = True
                continue
            m = re.match(r"fuzz (\d+) rc=(-?\d+)", line)
            if m and cur is not None:
                rc = int(m.group(2))
                cases.append(_fuzz_case(cur, f"[{flavour}] {config}", rc, block, figures))
                last_done, cur = cur, None
                continue
            block.append(line)
            if "runtime error:" in line or "AddressSanitizer" in line:
                figures["sanitizer reports"] += 1
            if line.startswith("render t=") and recheck:
                figures["frames re-rendered in the plain layout"] += 1
            elif line.startswith("render t="):
                figures["frames"] += 1
                figures["frames ok" if " status=0 " in line else "frames failed"] += 1
        if cur is not None:  # died inside case `cur`
            san = [ln for ln in block if "AddressSanitizer" in ln or "runtime error:" in ln]
            kind = "SANITIZER" if san else "CRASH"
            figures["crashes"] += 1
            cases.append(
                Case(
                    "ofx-fuzz",
                    f"case {cur} [{flavour}]: {_short(config)}",
                    "CRASH",
                    f"{kind}: process exit {proc.returncode}; "
                    + (san[0] if san else (block[-1] if block else "")),
                )
            )
            start = cur + 1
        elif "fuzz done" in proc.stdout:
            start = count
        else:
            cases.append(
                Case(
                    "ofx-fuzz",
                    f"after case {last_done}",
                    "CRASH",
                    f"process exit {proc.returncode} between cases",
                )
            )
            start = last_done + 2


def _run_fuzz_process(cmd: list[str], env: dict, timeout: float):
    import subprocess

    return subprocess.run(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
        timeout=timeout,
        errors="replace",
        text=True,
    )


def _short(config: str) -> str:
    return re.sub(r"--bundle \S+ |--input \S+ |/\S+/(?=\w+\.onnx)", "", config).replace(
        "org.kwaflux.", ""
    )


def _fuzz_case(i: int, config: str, rc: int, block: list[str], figures) -> Case:
    msgs = [
        ln.split("persistent message: ", 1)[1]
        for ln in block
        if ln.startswith("persistent message: ")
    ]
    san = [ln for ln in block if "runtime error:" in ln or "AddressSanitizer" in ln]
    name = f"case {i}: {_short(config)}"
    if san:
        return Case("ofx-fuzz", name, "CRASH", "sanitizer: " + san[0])
    layout = [ln for ln in block if re.match(r"fuzz \d+ layout ", ln)]
    if layout:
        figures["layout comparisons"] += 1
        if " DIFF " in layout[0]:
            return Case(
                "ofx-fuzz",
                name,
                "WRONG",
                "pixels depend on rowBytes/padding/offset/threads: " + layout[0],
            )
    if rc == 0:
        return Case("ofx-fuzz", name, "accepted", "rendered")
    if rc == 3 and msgs:
        raw = _RAW_EXC.search(msgs[-1])
        figures["failures with a message"] += 1
        return Case("ofx-fuzz", name, "UNCLEAR" if raw else "clear error", msgs[-1][:300])
    if rc == 4:
        return Case("ofx-fuzz", name, "DAMAGE", "plugin wrote outside an image buffer")
    return Case(
        "ofx-fuzz", name, "UNCLEAR", f"host rc {rc} without a message: " + " | ".join(block[-3:])
    )


def campaign_ofx_threads(
    work: Path,
    frames: int,
    threads: int = 8,
    instances: int = 1,
    size: tuple[int, int] = (48, 32),
    timeout: float = 600,
) -> list[Case]:
    """`threads` render threads x `frames` frames on one instance (and `instances` host
    processes at once): every frame identical to the single-threaded render and to the Engine,
    all under a timeout (a deadlock fails it)."""
    import subprocess

    import numpy as np

    from kwaflux_ofx import Engine
    from kwaflux_ofx.hosts.ofx import install as ofx_tools

    work.mkdir(parents=True, exist_ok=True)
    models = ofx_models(work / "models")
    pic = np.random.default_rng(8).random((size[1], size[0], 4), dtype=np.float32)
    np.save(work / "in.npy", pic)
    host = ofx_tools.test_host_path()
    if not host.exists():
        host = ROOT / "build" / "cp311-cp311-linux_x86_64" / "bin" / "kwaflux-ofx-test-host"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "KWAFLUX_LOG_DIR": str(work / "logs")}

    def start(tag: str, n_threads: int):
        out = work / tag
        out.mkdir(exist_ok=True)
        cmd = [
            str(host),
            "--bundle",
            str(default_bundle()),
            "--plugin",
            "org.kwaflux.SuperResolution",
            "--input",
            str(work / "in.npy"),
            "--output",
            str(out / "o.npy"),
            "--param",
            f"model={models / 'sr.onnx'}",
            "--param",
            "autoDenoise=0",  # threads against threads, not the noise estimate
            "--threads",
            str(n_threads),
            "--frames",
            str(frames),
            "--negative-rowbytes",
            "--row-pad",
            "12",
        ]
        return subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True
        ), out

    cases = []
    t0 = time.monotonic()
    runs = [start(f"mt{k}", threads) for k in range(instances)] + [start("st", 1)]
    outs = []
    for proc, out in runs:
        try:
            text, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()  # our own child
            proc.communicate()
            return [Case("ofx-threads", out.name, "HANG", f"no end after {timeout:g} s")]
        outs.append((proc.returncode, text, out))
    seconds = time.monotonic() - t0
    ref_dir = outs[-1][2]
    single = {p.name: np.load(p) for p in ref_dir.glob("*.npy")}
    engine = Engine(device="cpu")
    for k in (0, frames - 1):
        want = engine.process(np.roll(pic, k, axis=1), scale=2, sr_model=models / "sr.onnx")
        got = single.get(f"o.{k}.npy" if frames > 1 else "o.npy")
        if got is None or not np.array_equal(got, want):
            cases.append(Case("ofx-threads", f"frame {k} vs Engine", "WRONG", "pixels differ"))
    for rc, text, out in outs[:-1]:
        rendered = text.count("render t=")
        ok_frames = text.count(" status=0 ")
        diff = [
            p.name for p in out.glob("*.npy") if not np.array_equal(np.load(p), single.get(p.name))
        ]
        good = rc == 0 and rendered == frames == ok_frames and not diff and len(single) == frames
        cases.append(
            Case(
                "ofx-threads",
                f"{threads} threads x {frames} frames ({out.name})",
                "accepted" if good else "WRONG",
                f"{ok_frames}/{frames} frames ok, {len(diff)} differ from 1 thread, "
                f"{instances} instance(s) at once, {seconds:.1f} s",
            )
        )
    return cases
