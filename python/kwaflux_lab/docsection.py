"""Writes a script's figures into a doc between its own markers, leaving the rest as it is."""

from __future__ import annotations

import os
from pathlib import Path


def write_section(
    path: Path, name: str, body: str, heading: str | None = None, title: str = ""
) -> None:
    """Put `body` between `<!-- name -->` and `<!-- /name -->` in `path`. Where the markers are
    missing they are appended (under `heading` when given, e.g. "## Evaluation"); a missing doc
    starts with `title`. Written through a temporary file, so a failed write leaves the doc."""
    begin, end = f"<!-- {name} -->", f"<!-- /{name} -->"
    block = f"{begin}\n{body.rstrip()}\n{end}"
    text = path.read_text(encoding="utf-8") if path.exists() else title
    if begin in text and end in text:
        pre, rest = text.split(begin, 1)
        text = pre + block + rest.split(end, 1)[1]
    else:
        lead = f"{heading}\n\n" if heading else ""
        text = text.rstrip() + "\n\n" + lead + block + "\n"
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
