"""`kwaflux resolve install|conform`: the Scripts-menu script, and the round trip from a terminal."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from kwaflux_ofx.cli import options
from kwaflux_ofx.errors import KwafluxError
from kwaflux_ofx.hosts.resolve.install import connect_resolve, install, scripts_dir


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "resolve",
        help="DaVinci Resolve integration",
        description="DaVinci Resolve integration: the conform round trip.",
    )
    sub = p.add_subparsers(dest="resolve_command", metavar="ACTION", required=True)
    i = sub.add_parser(
        "install",
        help="add Kwaflux Conform to Workspace > Scripts",
        description="Install the Kwaflux Conform script into Resolve's Scripts "
        "menu (Edit page) for this user, for all users (--system), or into DIR.",
    )
    where = i.add_mutually_exclusive_group()
    where.add_argument(
        "--dest", type=Path, default=None, metavar="DIR", help="install into this folder instead"
    )
    where.add_argument(
        "--system", action="store_true", help="install for all users (needs administrator rights)"
    )
    i.set_defaults(func=_install_cmd)
    c = sub.add_parser(
        "conform",
        help="round trip of the current timeline of a running Resolve",
        description="Run the round trip (export, conform, import media and "
        "timeline) on the current timeline of a running DaVinci Resolve Studio "
        "with external scripting enabled. Defaults: the settings last used.",
    )
    options.add_scale(c, None, "upscaling factor (default: the last used)")
    options.add_denoise(c, None, "denoise strength before upscaling (default: the last used)")
    options.add_codec(c, None, "codec of the new media (default: the last used)")
    c.add_argument("--media-dir", default=None, metavar="DIR", help="folder for the new media")
    c.set_defaults(func=_conform_cmd)


def _install_cmd(args: argparse.Namespace) -> int:
    from kwaflux_ofx.hosts.resolve import roundtrip as rt

    dest = args.dest if args.dest is not None else scripts_dir(system=args.system)
    target = install(dest)
    print(f"installed {target}")
    print(f"kwaflux Python recorded in {rt.config_path()}: {sys.executable}")
    print("restart Resolve, then: Workspace > Scripts > Kwaflux Conform (on the Edit page)")
    return 0


def _conform_cmd(args: argparse.Namespace) -> int:
    from kwaflux_ofx.hosts.resolve import roundtrip as rt

    settings = rt.load_settings()
    for key in ("scale", "denoise", "codec", "media_dir"):
        if getattr(args, key) is not None:
            settings[key] = getattr(args, key)
    try:
        settings.update(
            rt.check_settings(settings["scale"], settings["denoise"], settings["codec"])
        )
        resolve = connect_resolve()
        report = rt.run(
            resolve,
            scale=settings["scale"],
            denoise=settings["denoise"],
            codec=settings["codec"],
            media_dir=settings["media_dir"],
            python=sys.executable,
        )
    except rt.RoundTripError as exc:
        raise KwafluxError(str(exc)) from None
    rt.save_settings(settings)
    r, s = report["resolve"], report["summary"]
    size = "x".join(map(str, r["resolution"])) if r["resolution"] else "unchanged"
    print(
        f"{s['done']} clips conformed, {s['skipped']} skipped; timeline {r['timeline']!r} "
        f"({size}) in bin {r['bin']!r}"
    )
    for w in r["warnings"]:
        print(f"warning: {w}")
    return 0
