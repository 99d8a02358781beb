"""Install the Resolve menu script, and connect to a running Resolve from a terminal."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

from kwaflux_ofx.errors import KwafluxError

SCRIPT_NAME = "Kwaflux Conform.py"


# The menu script ships inside the package (scripts/), so a plain `pip install` can install it.
SCRIPT_SOURCE = Path(__file__).resolve().parent / "scripts" / SCRIPT_NAME


ROUNDTRIP = Path(__file__).resolve().parent / "roundtrip.py"


def scripts_dir(system: bool = False, platform: str | None = None) -> Path:
    """Resolve's Scripts/Edit folder (the Edit page's menu) for this user or for all users."""
    platform = platform or sys.platform
    if platform.startswith("win"):
        if system:
            base = Path(os.environ.get("PROGRAMDATA", r"C:\ProgramData"))
            return base / "Blackmagic Design" / "DaVinci Resolve" / "Fusion" / "Scripts" / "Edit"
        base = Path(os.environ.get("APPDATA", Path.home() / "AppData" / "Roaming"))
        return (
            base
            / "Blackmagic Design"
            / "DaVinci Resolve"
            / "Support"
            / "Fusion"
            / "Scripts"
            / "Edit"
        )
    if platform == "darwin":
        base = Path("/") if system else Path.home()
        return (
            base
            / "Library"
            / "Application Support"
            / "Blackmagic Design"
            / "DaVinci Resolve"
            / "Fusion"
            / "Scripts"
            / "Edit"
        )
    if system:
        # Resolve installed from the ISO lives in /home/resolve instead of /opt/resolve.
        for root in (Path("/opt/resolve"), Path("/home/resolve")):
            if root.is_dir():
                return root / "Fusion" / "Scripts" / "Edit"
        return Path("/opt/resolve/Fusion/Scripts/Edit")
    return Path.home() / ".local" / "share" / "DaVinciResolve" / "Fusion" / "Scripts" / "Edit"


def render_script(python: str, roundtrip: str, template: str | None = None) -> str:
    """The menu script with this venv's Python and the round-trip module's path filled in."""
    text = template if template is not None else SCRIPT_SOURCE.read_text(encoding="utf-8")
    out, n1 = re.subn(r"^VENV_PYTHON = None$", f"VENV_PYTHON = {python!r}", text, flags=re.M)
    out, n2 = re.subn(
        r"^ROUNDTRIP_MODULE = None$", f"ROUNDTRIP_MODULE = {roundtrip!r}", out, flags=re.M
    )
    if n1 != 1 or n2 != 1:
        raise KwafluxError(
            "the menu script template has no VENV_PYTHON/ROUNDTRIP_MODULE lines", SCRIPT_SOURCE
        )
    return out


def install(dest: Path, python: str | None = None) -> Path:
    """Write the filled-in script into `dest` (atomically) and record the venv's Python in the
    config file the round trip reads; returns the script's path."""
    from kwaflux_ofx.hosts.resolve import roundtrip as rt

    if not SCRIPT_SOURCE.is_file():
        raise KwafluxError(
            "menu script missing from the installed package; reinstall kwaflux-ofx", SCRIPT_SOURCE
        )
    python = python or sys.executable
    text = render_script(python, str(ROUNDTRIP))
    try:
        dest.mkdir(parents=True, exist_ok=True)
        target = dest / SCRIPT_NAME
        tmp = dest / f".{SCRIPT_NAME}.partial"
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, target)
    except PermissionError as exc:
        raise KwafluxError(
            "no permission to write here (for --system, run as an administrator)", dest
        ) from exc
    except OSError as exc:
        raise KwafluxError(f"cannot install the script: {exc.strerror or exc}", dest) from exc
    config = rt.load_config()
    config["python"] = python
    config["roundtrip_module"] = str(ROUNDTRIP)
    rt.save_config(config)
    return target


def scripting_modules_dir(platform: str | None = None) -> Path:
    """Where Resolve keeps DaVinciResolveScript.py ($RESOLVE_SCRIPT_API/Modules first)."""
    env = os.environ.get("RESOLVE_SCRIPT_API")
    if env:
        return Path(env) / "Modules"
    platform = platform or sys.platform
    if platform.startswith("win"):
        base = Path(os.environ.get("PROGRAMDATA", r"C:\ProgramData"))
        return (
            base
            / "Blackmagic Design"
            / "DaVinci Resolve"
            / "Support"
            / "Developer"
            / "Scripting"
            / "Modules"
        )
    if platform == "darwin":
        return Path(
            "/Library/Application Support/Blackmagic Design/DaVinci Resolve/Developer/"
            "Scripting/Modules"
        )
    return Path("/opt/resolve/Developer/Scripting/Modules")


def connect_resolve():
    """The running Resolve's scripting app, through Resolve's DaVinciResolveScript module."""
    modules = scripting_modules_dir()
    if str(modules) not in sys.path and modules.is_dir():
        sys.path.append(str(modules))
    try:
        import DaVinciResolveScript  # noqa: N813 - Resolve's own module name
    except ImportError as exc:
        raise KwafluxError(
            "Resolve's scripting module DaVinciResolveScript was not found; set "
            "RESOLVE_SCRIPT_API (see docs/resolve.md)",
            modules,
        ) from exc
    try:
        app = DaVinciResolveScript.scriptapp("Resolve")
    except Exception as exc:  # noqa: BLE001 - fusionscript raises anything when it cannot load
        raise KwafluxError(f"cannot load Resolve's scripting library: {exc}") from exc
    if not app:
        raise KwafluxError(
            "no running Resolve accepted the connection: start DaVinci Resolve "
            "Studio and set Preferences > System > General > External scripting "
            "using: Local (the free Resolve runs scripts only from its Workspace "
            "> Scripts menu)"
        )
    return app
