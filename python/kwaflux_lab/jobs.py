"""The command line every job shares: its docstring as the description, defaults in --help."""

from __future__ import annotations

import argparse
import copy


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """The description as written; every option's default shown, with or without a help text."""

    def _format_action(self, action: argparse.Action) -> str:
        if action.help is None and action.default not in (None, False, argparse.SUPPRESS):
            action = copy.copy(action)
            action.help = " "  # argparse writes no default for an option without help
        return super()._format_action(action)


def parser(description: str | None) -> argparse.ArgumentParser:
    return argparse.ArgumentParser(description=description, formatter_class=HelpFormatter)
