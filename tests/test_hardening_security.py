"""Security: outputs stay inside --media-dir, no shell ever sees a name, models load as ONNX only."""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
from pathlib import Path

from reliability import media_files, security

ROOT = Path(__file__).resolve().parent.parent


# Calls that run a shell, run code from a string, or unpickle: none belongs in this package.
BANNED_CALLS = {
    "os.system",
    "os.popen",
    "os.execl",
    "os.execle",
    "os.execlp",
    "os.execv",
    "os.execve",
    "os.execvp",
    "os.spawnl",
    "os.spawnv",
    "os.startfile",
    "eval",
    "exec",
    "compile",
    "pickle.load",
    "pickle.loads",
    "cPickle.load",
    "marshal.loads",
    "dill.load",
    "torch.load",
    "joblib.load",
    "yaml.load",
    "shelve.open",
    "pty.spawn",
    "commands.getoutput",
    "register_custom_ops_library",
}
SUBPROCESS_CALLS = {
    "run",
    "Popen",
    "call",
    "check_call",
    "check_output",
    "getoutput",
    "getstatusoutput",
}


def _name(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_name(node.value)}.{node.attr}"
    return ""


def shell_findings(source: str, filename: str) -> list[str]:
    """Every call in `source` that could hand a string to a shell or an interpreter."""
    found = []
    for node in ast.walk(ast.parse(source, filename)):
        if not isinstance(node, ast.Call):
            continue
        name = _name(node.func)
        where = f"{filename}:{node.lineno}"
        if name in BANNED_CALLS or name.rsplit(".", 1)[-1] == "register_custom_ops_library":
            found.append(f"{where}: {name}()")
        for kw in node.keywords:
            if kw.arg == "shell" and not (
                isinstance(kw.value, ast.Constant) and kw.value.value is False
            ):
                found.append(f"{where}: shell= in {name}()")
            if kw.arg == "allow_pickle" and not (
                isinstance(kw.value, ast.Constant) and kw.value.value is False
            ):
                found.append(f"{where}: allow_pickle in {name}()")
        short = name.rsplit(".", 1)[-1]
        if name.startswith("subprocess.") and short in SUBPROCESS_CALLS and node.args:
            # A command line as one string is what a shell would parse: lists only.
            if isinstance(node.args[0], (ast.Constant, ast.JoinedStr, ast.BinOp)):
                found.append(f"{where}: {name}() with a string command")
            if short in ("getoutput", "getstatusoutput"):
                found.append(f"{where}: {name}() always uses a shell")
    return found


def python_sources() -> list[Path]:
    files = sorted((ROOT / "kwaflux_ofx").rglob("*.py"))
    return files


def test_the_scanner_catches_what_it_looks_for():
    bad = (
        "import os, subprocess, pickle\nos.system('x')\nsubprocess.run('ls', shell=True)\n"
        "subprocess.Popen(f'ls {x}')\npickle.loads(b'')\neval('1')\n"
        "import numpy as np\nnp.load('a', allow_pickle=True)\n"
    )
    assert len(shell_findings(bad, "bad.py")) == 7
    assert shell_findings("import subprocess\nsubprocess.run([a, b], check=True)\n", "ok.py") == []


def test_package_never_uses_a_shell_eval_or_pickle():
    files = python_sources()
    assert len(files) > 10
    findings = [f for p in files for f in shell_findings(p.read_text(), str(p.relative_to(ROOT)))]
    assert findings == []


def test_plugin_and_test_host_never_call_a_shell():
    pattern = re.compile(r"\b(system|popen|execv|execvp|execl|execlp|PyRun_SimpleString)\s*\(")
    hits = []
    for p in sorted((ROOT / "bridge").rglob("*")):
        if p.suffix in (".cpp", ".h", ".c", ".hpp") and p.is_file():
            for n, line in enumerate(p.read_text(errors="replace").splitlines(), 1):
                if pattern.search(line) and not line.lstrip().startswith("//"):
                    hits.append(f"{p.relative_to(ROOT)}:{n}: {line.strip()}")
    assert hits == []


def test_run_time_models_are_onnx_only():
    from kwaflux_ofx.models import registry

    src = Path(registry.__file__).read_text()
    assert 'glob("*.onnx")' in src  # the models folder lists .onnx files only
    for p in python_sources():
        tree = ast.parse(p.read_text())
        imported = {
            a.name.split(".")[0]
            for n in ast.walk(tree)
            if isinstance(n, (ast.Import, ast.ImportFrom))
            for a in (n.names if isinstance(n, ast.Import) else [ast.alias(n.module or "")])
        }
        assert not imported & {
            "pickle",
            "cPickle",
            "dill",
            "joblib",
            "torch",
            "marshal",
            "shelve",
        }, p


def test_hostile_timeline_stays_inside_media_dir_and_runs_nothing(tmp_path):
    cases = security.campaign_security(tmp_path)
    bad = [c for c in cases if not c.ok]
    assert not bad, bad
    names = [c.name for c in cases]
    assert sum(n.startswith("hostile name") for n in names) >= 12
    media = tmp_path / "media"
    assert all(p.is_file() and not p.is_symlink() for p in media.iterdir())
    assert not list(tmp_path.rglob("pwned"))
    # the planted 'complete' output outside was not taken for this job's output
    rel = json.loads((tmp_path / "out.json").read_text())
    good = [c for c in rel["clips"] if c["name"] == "'..' in the media path"][0]
    assert good["status"] == "done" and "earlier run" not in good["reason"]


def test_conform_subprocess_from_the_resolve_round_trip_passes_names_as_arguments(
    tmp_path, monkeypatch
):
    """The Resolve script starts the conform with a list argv: a timeline named like a shell
    command is a file name to it, nothing more."""
    from kwaflux_ofx.hosts.resolve.roundtrip import default_job_dir, run_conform
    from tests.support.media import make_video

    src = tmp_path / "src"
    media = {"clip": (make_video(src / "$(touch pwned).mkv", 3, codec="ffv1"), "done")}
    tl = media_files.media_timeline(
        media, tmp_path / "`touch pwned`; $(touch pwned).otio", frames=2
    )
    model = media_files.nearest_model(tmp_path / "models")
    report = run_conform(
        sys.executable,
        str(tl),
        str(tmp_path / "$(touch pwned)-out.otio"),
        str(tmp_path / "media"),
        str(tmp_path / "report.json"),
        scale=2,
        denoise=0.0,
        codec="ffv1",
        on_progress=None,
        extra_args=["--model", str(model), "--handles", "0", "--device", "cpu"],
    )
    assert report["summary"]["done"] == 1
    assert not list(tmp_path.rglob("pwned")) and not (ROOT / "pwned").exists()
    root = str(tmp_path / "jobs")
    monkeypatch.setenv("KWAFLUX_CONFORM_DIR", root)
    job = default_job_dir("../../$(touch pwned)", "../..", "x2")
    assert os.path.realpath(job).startswith(os.path.realpath(root) + os.sep)


def test_cli_process_with_hostile_clip_name_creates_nothing_but_outputs(tmp_path):
    """The real `kwaflux` process (not in-process) on a clip named `$(touch pwned)`."""
    from tests.support.media import make_video

    src = tmp_path / "src"
    media = {"$(touch pwned)": (make_video(src / "a.mkv", 3, codec="ffv1"), "done")}
    tl = media_files.media_timeline(media, tmp_path / "t.otio", frames=2)
    model = media_files.nearest_model(tmp_path / "models")
    before = set(tmp_path.rglob("*"))
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "kwaflux_ofx.cli",
            *media_files.conform_argv(tl, tmp_path / "o.otio", tmp_path / "media", model),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.returncode == 0, proc.stderr
    new = {p.relative_to(tmp_path).as_posix() for p in set(tmp_path.rglob("*")) - before}
    assert new == {"media", "media/a.mkv", "o.otio", "o.json"}


def test_resolve_round_trip_runs_nothing_a_timeline_or_project_carries(tmp_path, monkeypatch):
    """Project, timeline and media named like shell commands through the whole Resolve round
    trip (stand-in API): conformed and relinked, nothing executed, files only where they go."""
    from kwaflux_ofx.hosts.resolve import roundtrip as rt
    from tests.support.media import make_video
    from tests.support.resolve_standin import isolate_kwaflux, resolve_with_project

    isolate_kwaflux(tmp_path, monkeypatch, denoiser=False)
    monkeypatch.chdir(tmp_path)
    clip = make_video(
        tmp_path / "footage" / "$(touch pwned); `touch pwned`.mov", 12, start_tc="01:00:00:00"
    )
    app = resolve_with_project("../../$(touch pwned)", 64, 36, 24.0)
    project = app.project_manager.project
    pool = project.media_pool
    (item,) = pool.ImportMedia([str(clip)])
    tl = pool.CreateTimelineFromClips(
        "`touch pwned` | rm -rf ~ ; ..", [{"mediaPoolItem": item, "startFrame": 2, "endFrame": 9}]
    )
    assert tl and project.SetCurrentTimeline(tl)
    report = rt.run(app, scale=2, denoise=0.0, codec="ffv1", on_progress=None)
    assert report["summary"]["done"] == 1
    assert not list(tmp_path.rglob("pwned")) and not (ROOT / "pwned").exists()
    out = Path(report["clips"][0]["output"])
    assert out.resolve().is_relative_to((tmp_path / "conform").resolve())
    assert (tmp_path / "footage").exists() and len(list((tmp_path / "footage").iterdir())) == 1
