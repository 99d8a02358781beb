"""`kwaflux` console entry point: one sub-command per job, errors as one line and exit code 2."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

import kwaflux_ofx

# Each module defines register(subparsers); its parsers set `func` to the handler,
# which returns an exit code. Add a module here to add commands.
COMMAND_MODULES = (
    "kwaflux_ofx.cli.process",  # upscale, preview
    "kwaflux_ofx.cli.models",  # models list|info|import-ncnn
    "kwaflux_ofx.cli.conform",  # conform
    "kwaflux_ofx.cli.ofx",  # ofx install, ofx doctor
    "kwaflux_ofx.cli.resolve",  # resolve install
)

EXIT_USER_ERROR = 2


class _DefaultsFormatter(argparse.HelpFormatter):
    """Adds "(default: X)" to an option's help where there is a default to show, and keeps an
    "examples:" epilog's lines as written."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if text.startswith("examples:"):
            return text
        return super()._fill_text(text, width, indent)

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        hidden = any(action.default is v for v in (None, False, argparse.SUPPRESS))  # 0 shows
        shown = not hidden and not action.required
        if shown and action.option_strings and "%(default)" not in text:
            text += " (default: %(default)s)"
        return text


class _Parser(argparse.ArgumentParser):
    """Every (sub)command's --help shows the defaults; sub-parsers inherit this class."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", _DefaultsFormatter)
        super().__init__(*args, **kwargs)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="kwaflux", description="AI denoise and super-resolution for video editors."
    )
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="more logging (-vv for debug)"
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    parser.add_argument(
        "--version", action="version", version=f"%(prog)s {kwaflux_ofx.__version__}"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    for command in set(sub.choices.values()):
        _verbosity(command)
    return parser


def _verbosity(p: argparse.ArgumentParser) -> None:
    """-v/-q after the sub-command as well as before it (SUPPRESS: given only when typed, so
    a sub-command never resets what was said before it)."""
    for action in p._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in set(action.choices.values()):
                _verbosity(child)
    if "-q" in p._option_string_actions:
        return
    p.add_argument(
        "-v", "--verbose", action="count", default=argparse.SUPPRESS, help="more logging"
    )
    p.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS, help="quiet")


def main(argv: list[str] | None = None) -> int:
    from kwaflux_ofx.errors import KwafluxError

    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.WARNING - 10 * min(args.verbose, 2)
    logging.basicConfig(level=level, format="kwaflux: %(levelname)s: %(message)s")
    try:
        return int(args.func(args) or 0)
    except KwafluxError as exc:
        print(f"kwaflux: error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("kwaflux: interrupted", file=sys.stderr)
        return 130
