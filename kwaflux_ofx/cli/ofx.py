"""`kwaflux ofx install|doctor`: the command line of the OFX plugin's set-up."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from kwaflux_ofx.errors import KwafluxError
from kwaflux_ofx.hosts.ofx.install import CONFIG_NAME, DEFAULT_PLUGIN_DIR, doctor, install


def _cmd_install(args: argparse.Namespace) -> int:
    target = install(args.dest, isolated=args.isolated)
    print(
        f"installed {target}"
        + (" (isolated: frames render in a worker process)" if args.isolated else "")
    )
    print(f"plugin Python: {sys.executable} (in {target / 'Contents/Resources' / CONFIG_NAME})")
    return 0


def _cmd_doctor(args: argparse.Namespace) -> int:
    ok, report = doctor(args.bundle)
    print(report)
    if not ok:
        raise KwafluxError("the OFX plugin does not work yet (see above)", args.bundle)
    return 0


def register(sub) -> None:
    p = sub.add_parser("ofx", help="install and check the OpenFX plugin")
    ofx_sub = p.add_subparsers(dest="ofx_command", metavar="ACTION", required=True)
    i = ofx_sub.add_parser("install", help="copy the plugin bundle where OFX hosts find it")
    i.add_argument(
        "--dest",
        type=Path,
        default=None,
        help=f"plugin folder (default {DEFAULT_PLUGIN_DIR}; or one in OFX_PLUGIN_PATH)",
    )
    i.add_argument(
        "--isolated",
        action="store_true",
        help="render in a separate worker process in every host (a crash costs a frame, not the "
        "host); hosts that run another Python get it anyway",
    )
    i.set_defaults(func=_cmd_install)
    d = ofx_sub.add_parser("doctor", help="load the installed plugin in a test host, report")
    d.add_argument("--bundle", type=Path, default=None, help="bundle to check")
    d.set_defaults(func=_cmd_doctor)
