"""Put the OFX bundle where hosts look for it, and check it loads and renders in the test host."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from kwaflux_ofx.errors import KwafluxError

BUNDLE_NAME = "Kwaflux.ofx.bundle"


DEFAULT_PLUGIN_DIR = Path("/usr/OFX/Plugins")


CONFIG_NAME = "kwaflux.cfg"


def share_dir() -> Path:
    """Where `pip install` put the bundle and the test host: <venv>/share/kwaflux."""
    return Path(sys.prefix) / "share" / "kwaflux"


def installed_bundle() -> Path:
    """The bundle this Python environment carries ($KWAFLUX_OFX_BUNDLE overrides, for dev builds)."""
    env = os.environ.get("KWAFLUX_OFX_BUNDLE")
    return Path(env) if env else share_dir() / BUNDLE_NAME


def test_host_path() -> Path:
    env = os.environ.get("KWAFLUX_OFX_TEST_HOST")
    return Path(env) if env else share_dir() / "bin" / "kwaflux-ofx-test-host"


def plugin_dirs() -> list[Path]:
    """Where hosts look, in their order: OFX_PLUGIN_PATH, then /usr/OFX/Plugins."""
    dirs = [Path(p) for p in os.environ.get("OFX_PLUGIN_PATH", "").split(":") if p]
    return dirs + [DEFAULT_PLUGIN_DIR]


def write_config(
    bundle: Path, python: str, pythonpath: list[str] | None = None, isolated: bool = False
) -> Path:
    """Name the Python (a venv's bin/python) the plugin embeds, in Contents/Resources; with
    `isolated`, frames always render in a worker process started from it."""
    resources = bundle / "Contents" / "Resources"
    resources.mkdir(parents=True, exist_ok=True)
    lines = [
        "# Written by `kwaflux ofx install`: the Python the Kwaflux plugin embeds.",
        f"python = {python}",
    ]
    lines += [f"pythonpath = {p}" for p in pythonpath or []]
    if isolated:
        lines += ["# Render in a separate worker process: a crash there costs a frame, not the host.",
                  "isolated = yes"]  # fmt: skip
    path = resources / CONFIG_NAME
    path.write_text("\n".join(lines) + "\n")
    return path


def install(dest: Path | None = None, python: str | None = None, isolated: bool = False) -> Path:
    """Copy this environment's bundle into `dest` (default /usr/OFX/Plugins), atomically; with
    `isolated`, its config asks for the render worker in every host."""
    src = installed_bundle()
    binary = src / "Contents" / "Linux-x86-64" / "Kwaflux.ofx"
    if not binary.is_file():
        raise KwafluxError("no built OFX plugin here; run `make install` first", binary)
    dest = Path(dest) if dest else DEFAULT_PLUGIN_DIR
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise KwafluxError(f"cannot create the folder ({exc.strerror})", dest) from None
    if not os.access(dest, os.W_OK):
        raise KwafluxError("not writable: run with sudo or pass --dest DIR", dest)
    target = dest / BUNDLE_NAME
    # Build the new bundle beside the old one, then swap: a host scanning meanwhile never sees
    # half a bundle.
    staging = Path(tempfile.mkdtemp(prefix=".kwaflux-", dir=dest))
    try:
        new = staging / BUNDLE_NAME
        shutil.copytree(src, new, symlinks=False)
        # A bundle from a build tree names that build's Python; the installed one names ours.
        write_config(new, python or sys.executable, isolated=isolated)
        old = staging / "old"
        if target.exists():
            target.rename(old)
        new.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def find_installed() -> Path | None:
    for d in plugin_dirs():
        if (d / BUNDLE_NAME).is_dir():
            return d / BUNDLE_NAME
    return None


def doctor(bundle: Path | None = None) -> tuple[bool, str]:
    """Load the bundle in the test host and ask the plugin what works; (ok, report)."""
    bundle = bundle or find_installed() or installed_bundle()
    if not (bundle / "Contents" / "Linux-x86-64" / "Kwaflux.ofx").is_file():
        raise KwafluxError(
            "not a Kwaflux OFX bundle (no Contents/Linux-x86-64/Kwaflux.ofx)", bundle
        )
    host = test_host_path()
    if not host.is_file():
        raise KwafluxError("test host missing; run `make install`", host)
    proc = subprocess.run(
        [str(host), "--bundle", str(bundle), "--plugin", "org.kwaflux.SuperResolution", "--doctor"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    noise = ("action ", "render ", "rod ", "roi ", "output bounds")
    lines = [ln for ln in proc.stdout.splitlines() if not ln.startswith(noise)]
    lines += [ln for ln in proc.stderr.splitlines() if ln.startswith("host:")]
    if proc.returncode < 0:
        lines.append(f"the test host crashed (signal {-proc.returncode})")
    return proc.returncode == 0, "\n".join(lines)
