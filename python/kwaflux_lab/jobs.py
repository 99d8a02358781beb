"""The command line every job shares: its docstring as the description, defaults in --help."""

from __future__ import annotations

import argparse
import copy
from argparse import SUPPRESS


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """The description as written; every option's default shown, with or without a help text."""

    def _format_action(self, action: argparse.Action) -> str:
        if action.help is None and not any(action.default is v for v in (None, False, SUPPRESS)):
            action = copy.copy(action)  # argparse writes no default for an option without help
            action.help = "(default: %(default)s)"
        return super()._format_action(action)


def parser(description: str | None) -> argparse.ArgumentParser:
    return argparse.ArgumentParser(description=description, formatter_class=HelpFormatter)
