"""Find each clip's media on this machine: its own path, or a file of the same name under search paths."""

from __future__ import annotations

import logging
import os
import re
import urllib.parse
from pathlib import Path, PureWindowsPath

import opentimelineio as otio

from kwaflux_ofx.media.probe import IMAGE_EXTS

log = logging.getLogger(__name__)

_FRAME_TAIL = re.compile(r"[._-]?\d+$")
_WINDOWS_DRIVE = re.compile(r"^/?[A-Za-z]:[\\/]")
# Reel names that say nothing about the file (auxiliary source, black).
_GENERIC_REELS = {"AX", "BL", "BLACK", "TST"}


def url_to_path(url: str) -> str:
    """A media URL or path as written by any NLE, as a path string (maybe of another machine).

    Handles file:///a/b, file://localhost/D%3a/x (Premiere), plain POSIX and Windows paths.
    """
    url = url.strip()
    if url.lower().startswith("file:"):
        parsed = urllib.parse.urlparse(url)
        path = urllib.parse.unquote(parsed.path)
        if parsed.netloc and parsed.netloc.lower() != "localhost":
            path = f"//{parsed.netloc}{path}"  # a UNC share
        if _WINDOWS_DRIVE.match(path):
            path = path.lstrip("/")
        return path
    return url


def base_name(path: str) -> str:
    """The file name of a path from any OS (Windows separators included)."""
    if "\\" in path or _WINDOWS_DRIVE.match(path):
        return PureWindowsPath(path).name
    return os.path.basename(path.rstrip("/"))


def _stem(name: str) -> str:
    p = Path(name)
    return p.stem if p.suffix and len(p.suffix) <= 6 else name


def _sequence_key(name: str) -> str | None:
    """'shot.0101.exr' -> 'shot': the name of the sequence a numbered frame belongs to."""
    p = Path(name)
    if p.suffix.lower() not in IMAGE_EXTS:
        return None
    tail = _FRAME_TAIL.search(p.stem)
    if not tail or tail.start() == 0:
        return None
    return p.stem[: tail.start()].lower()


class MediaIndex:
    """The files under the search paths, by name; built once per conform."""

    def __init__(
        self, search_paths: list[str | os.PathLike], exclude: list[str | os.PathLike] = ()
    ):
        self.by_name: dict[str, list[str]] = {}
        self.by_stem: dict[str, list[str]] = {}
        self.by_sequence: dict[str, list[str]] = {}
        # The output folder is never searched: an earlier run's outputs are not sources.
        skip = {os.path.realpath(os.fspath(p)) for p in exclude}
        for root in search_paths:
            root = os.fspath(root)
            if not os.path.isdir(root):
                log.warning("search path %s is not a folder; ignored", root)
                continue
            if os.path.realpath(root) in skip:
                continue
            for dirpath, dirnames, filenames in os.walk(root):
                dirnames[:] = sorted(
                    d
                    for d in dirnames
                    if not d.startswith(".")
                    and os.path.realpath(os.path.join(dirpath, d)) not in skip
                )
                for name in sorted(filenames):
                    # macOS resource forks and our own unfinished outputs are never media
                    if name.startswith("._") or name == ".DS_Store" or "kwaflux-partial" in name:
                        continue
                    full = os.path.join(dirpath, name)
                    self.by_name.setdefault(name.lower(), []).append(full)
                    self.by_stem.setdefault(_stem(name).lower(), []).append(full)
                    key = _sequence_key(name)
                    if key:
                        self.by_sequence.setdefault(key, []).append(full)

    def find(self, names: list[str]) -> str | None:
        """The first file matching a candidate name: exact file name, then name without
        extension, then the name of an image sequence (its lowest-numbered frame)."""
        for table, keyfn in (
            (self.by_name, str.lower),
            (self.by_stem, lambda n: _stem(n).lower()),
            (self.by_stem, str.lower),
            (self.by_sequence, str.lower),
        ):
            for name in names:
                if not name:
                    continue
                hits = table.get(keyfn(name))
                if hits:
                    if (
                        len({os.path.dirname(h) for h in hits}) > 1
                        and table is not self.by_sequence
                    ):
                        log.warning("%d files named like %r; using %s", len(hits), name, hits[0])
                    return sorted(hits)[0] if table is self.by_sequence else hits[0]
        return None


def reference_path(ref: otio.core.MediaReference) -> str | None:
    """The path a reference names (first frame for image sequences), untouched by search."""
    if isinstance(ref, otio.schema.ImageSequenceReference):
        try:
            return url_to_path(ref.target_url_for_image_number(0))
        except otio.exceptions.OTIOError:
            return None
    if isinstance(ref, otio.schema.ExternalReference) and ref.target_url:
        return url_to_path(ref.target_url)
    return None


def candidate_names(clip: otio.schema.Clip) -> list[str]:
    """Names to look for when the exported path does not exist here, best first."""
    names: list[str] = []
    ref = clip.media_reference
    path = reference_path(ref) if ref is not None else None
    if path:
        names.append(base_name(path))
    if ref is not None and ref.name and not isinstance(ref, otio.schema.MissingReference):
        names.append(base_name(ref.name))
    cmx = clip.metadata.get("cmx_3600", {}) if isinstance(clip.metadata, dict) else {}
    for comment in cmx.get("comments", []) or []:
        m = re.match(r"\s*(SOURCE FILE|FROM CLIP)\s*:\s*(.+)$", str(comment), re.I)
        if m:
            names.append(base_name(m.group(2).strip()))
    if clip.name:
        names.append(base_name(clip.name))
        bare = re.sub(r"\s*\(.*\)\s*$", "", clip.name).strip()
        if bare and bare != clip.name:
            names.append(base_name(bare))
    reel = str(cmx.get("reel", "") or "").strip().rstrip(".")
    if reel and reel.upper() not in _GENERIC_REELS:
        names.append(reel)
    seen, out = set(), []
    for n in names:
        # Only a bare file name is ever looked up, so a name like '../../x' cannot reach
        # anywhere the index does not already list.
        if n and n not in seen and n not in (".", ".."):
            seen.add(n)
            out.append(n)
    return out


def locate(
    clip: otio.schema.Clip, index: MediaIndex | None, base_dir: str | None = None
) -> tuple[str | None, list[str]]:
    """(local path or None, the names tried) for a clip's media. A relative path is taken
    relative to the timeline's folder (`base_dir`), as OTIO files write them."""
    ref = clip.media_reference
    path = reference_path(ref) if ref is not None else None
    tried = []
    if path:
        tried.append(path)
        if not os.path.isabs(path) and base_dir and not _WINDOWS_DRIVE.match(path):
            path = os.path.join(base_dir, path)
        if os.path.isabs(path) and os.path.isfile(path):
            return path, tried
    names = candidate_names(clip)
    tried.extend(n for n in names if n not in tried)
    if index is not None:
        found = index.find(names)
        if found:
            return found, tried
    return None, tried
