"""`kwaflux resolve install|conform`: the Scripts-menu script, and the round trip from a terminal."""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path

from kwaflux_ofx.errors import KwafluxError

SCRIPT_NAME = "Kwaflux Conform.py"
# A source checkout keeps the menu script beside the package.
SCRIPT_SOURCE = Path(__file__).resolve().parent.parent / "resolve_scripts" / SCRIPT_NAME
ROUNDTRIP = Path(__file__).resolve().parent / "resolve_roundtrip.py"


def scripts_dir(system: bool = False, platform: str | None = None) -> Path:
    """Resolve's Scripts/Edit folder (the Edit page's menu) for this user or for all users."""
    platform = platform or sys.platform
    if platform.startswith("win"):
        if system:
            base = Path(os.environ.get("PROGRAMDATA", r"C:\ProgramData"))
            return base / "Blackmagic Design" / "DaVinci Resolve" / "Fusion" / "Scripts" / "Edit"
        base = Path(os.environ.get("APPDATA", Path.home() / "AppData" / "Roaming"))
        return (base / "Blackmagic Design" / "DaVinci Resolve" / "Support" / "Fusion" / "Scripts"
                / "Edit")
    if platform == "darwin":
        base = Path("/") if system else Path.home()
        return (base / "Library" / "Application Support" / "Blackmagic Design" / "DaVinci Resolve"
                / "Fusion" / "Scripts" / "Edit")
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
    out, n2 = re.subn(r"^ROUNDTRIP_MODULE = None$", f"ROUNDTRIP_MODULE = {roundtrip!r}", out,
                      flags=re.M)
    if n1 != 1 or n2 != 1:
        raise KwafluxError("the menu script template has no VENV_PYTHON/ROUNDTRIP_MODULE lines",
                           SCRIPT_SOURCE)
    return out


def install(dest: Path, python: str | None = None) -> Path:
    """Write the filled-in script into `dest` (atomically) and record the venv's Python in the
    config file the round trip reads; returns the script's path."""
    from kwaflux_ofx import resolve_roundtrip as rt

    if not SCRIPT_SOURCE.is_file():
        raise KwafluxError("menu script not found; install kwaflux from a source checkout "
                           "(pip install -e .)", SCRIPT_SOURCE)
    python = python or sys.executable
    text = render_script(python, str(ROUNDTRIP))
    try:
        dest.mkdir(parents=True, exist_ok=True)
        target = dest / SCRIPT_NAME
        tmp = dest / f".{SCRIPT_NAME}.partial"
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, target)
    except PermissionError as exc:
        raise KwafluxError("no permission to write here (for --system, run as an administrator)",
                           dest) from exc
    except OSError as exc:
        raise KwafluxError(f"cannot install the script: {exc.strerror or exc}", dest) from exc
    config = rt.load_config()
    config["python"] = python
    config["roundtrip_module"] = str(ROUNDTRIP)
    rt.save_config(config)
    return target


def register(subparsers) -> None:
    p = subparsers.add_parser("resolve", help="DaVinci Resolve integration",
                              description="DaVinci Resolve integration: the conform round trip.")
    sub = p.add_subparsers(dest="resolve_command", metavar="ACTION", required=True)
    i = sub.add_parser("install", help="add Kwaflux Conform to Workspace > Scripts",
                       description="Install the Kwaflux Conform script into Resolve's Scripts "
                       "menu (Edit page) for this user, for all users (--system), or into DIR.")
    where = i.add_mutually_exclusive_group()
    where.add_argument("--dest", type=Path, default=None, metavar="DIR",
                       help="install into this folder instead")
    where.add_argument("--system", action="store_true",
                       help="install for all users (needs administrator rights)")
    i.set_defaults(func=_install_cmd)
    c = sub.add_parser("conform", help="round trip of the current timeline of a running Resolve",
                       description="Run the round trip (export, conform, import media and "
                       "timeline) on the current timeline of a running DaVinci Resolve Studio "
                       "with external scripting enabled. Defaults: the settings last used.")
    c.add_argument("--scale", type=int, choices=(1, 2, 4), default=None)
    c.add_argument("--denoise", type=float, default=None, metavar="0..1")
    c.add_argument("--codec", default=None, help="prores_422hq (default), dnxhr_hqx, exr, ...")
    c.add_argument("--media-dir", default=None, metavar="DIR", help="folder for the new media")
    c.set_defaults(func=_conform_cmd)


def scripting_modules_dir(platform: str | None = None) -> Path:
    """Where Resolve keeps DaVinciResolveScript.py ($RESOLVE_SCRIPT_API/Modules first)."""
    env = os.environ.get("RESOLVE_SCRIPT_API")
    if env:
        return Path(env) / "Modules"
    platform = platform or sys.platform
    if platform.startswith("win"):
        base = Path(os.environ.get("PROGRAMDATA", r"C:\ProgramData"))
        return (base / "Blackmagic Design" / "DaVinci Resolve" / "Support" / "Developer"
                / "Scripting" / "Modules")
    if platform == "darwin":
        return Path("/Library/Application Support/Blackmagic Design/DaVinci Resolve/Developer/"
                    "Scripting/Modules")
    return Path("/opt/resolve/Developer/Scripting/Modules")


def connect_resolve():
    """The running Resolve's scripting app, through Resolve's DaVinciResolveScript module."""
    modules = scripting_modules_dir()
    if str(modules) not in sys.path and modules.is_dir():
        sys.path.append(str(modules))
    try:
        import DaVinciResolveScript  # noqa: N813 - Resolve's own module name
    except ImportError as exc:
        raise KwafluxError("Resolve's scripting module DaVinciResolveScript was not found; set "
                           "RESOLVE_SCRIPT_API (see docs/resolve.md)", modules) from exc
    try:
        app = DaVinciResolveScript.scriptapp("Resolve")
    except Exception as exc:  # noqa: BLE001 - fusionscript raises anything when it cannot load
        raise KwafluxError(f"cannot load Resolve's scripting library: {exc}") from exc
    if not app:
        raise KwafluxError("no running Resolve accepted the connection: start DaVinci Resolve "
                           "Studio and set Preferences > System > General > External scripting "
                           "using: Local (the free Resolve runs scripts only from its Workspace "
                           "> Scripts menu)")
    return app


def _install_cmd(args: argparse.Namespace) -> int:
    from kwaflux_ofx import resolve_roundtrip as rt

    dest = args.dest if args.dest is not None else scripts_dir(system=args.system)
    target = install(dest)
    print(f"installed {target}")
    print(f"kwaflux Python recorded in {rt.config_path()}: {sys.executable}")
    print("restart Resolve, then: Workspace > Scripts > Kwaflux Conform (on the Edit page)")
    return 0


def _conform_cmd(args: argparse.Namespace) -> int:
    from kwaflux_ofx import resolve_roundtrip as rt

    settings = rt.load_settings()
    for key in ("scale", "denoise", "codec", "media_dir"):
        if getattr(args, key) is not None:
            settings[key] = getattr(args, key)
    try:
        settings.update(rt.check_settings(settings["scale"], settings["denoise"],
                                          settings["codec"]))
        resolve = connect_resolve()
        report = rt.run(resolve, scale=settings["scale"], denoise=settings["denoise"],
                        codec=settings["codec"], media_dir=settings["media_dir"],
                        python=sys.executable)
    except rt.RoundTripError as exc:
        raise KwafluxError(str(exc)) from None
    rt.save_settings(settings)
    r, s = report["resolve"], report["summary"]
    size = "x".join(map(str, r["resolution"])) if r["resolution"] else "unchanged"
    print(f"{s['done']} clips conformed, {s['skipped']} skipped; timeline {r['timeline']!r} "
          f"({size}) in bin {r['bin']!r}")
    for w in r["warnings"]:
        print(f"warning: {w}")
    return 0
