"""Resolve scripting API helpers for the round trip, and its error type.

Runs in Resolve's own Python like roundtrip.py (standard library only, loaded by its path).
"""

import os
import re
from typing import Any


class RoundTripError(Exception):
    """A step of the round trip that failed; the message is one line saying which and why.
    `report` holds the conform report when the conform got that far."""

    def __init__(self, message: str, report: "dict | None" = None):
        super().__init__(message)
        self.report = report


# -- Resolve calls --------------------------------------------------------------------------------
def need(value: Any, what: str) -> Any:
    """Resolve answers a failed call with None or False: turn that into an error."""
    if value is None or value is False:
        raise RoundTripError(f"Resolve: {what} failed")
    return value


def sub_folder(media_pool: Any, parent: Any, name: str) -> Any:
    """The bin called `name` under `parent`, reused when it exists (a rerun adds to it)."""
    for folder in parent.GetSubFolderList() or []:
        if folder.GetName() == name:
            return folder
    return need(media_pool.AddSubFolder(parent, name), f"AddSubFolder({name!r})")


def timeline_names(project: Any) -> "set[str]":
    names = set()
    for i in range(1, int(project.GetTimelineCount() or 0) + 1):
        tl = project.GetTimelineByIndex(i)
        if tl:
            names.add(tl.GetName())
    return names


def unique(name: str, taken: "set[str]") -> str:
    if name not in taken:
        return name
    n = 2
    while f"{name} {n}" in taken:
        n += 1
    return f"{name} {n}"


def media_items(outputs: "list[str]", codec: Any) -> "list[Any]":
    """What ImportMedia takes: file paths for video files; for an image-sequence folder, the
    clipInfo form (FilePath with a %0Nd pattern, StartIndex, EndIndex) so it comes in as one
    clip, not as a folder of stills."""
    items: list[Any] = []
    ext = codec.ext if codec.is_sequence else None  # a settings.Codec
    for out in outputs:
        if ext is None:
            items.append(out)
            continue
        pat = re.compile(r"^(?P<prefix>.*?)(?P<num>\d+)" + re.escape(ext) + "$")
        frames = []
        for name in sorted(os.listdir(out)):
            m = pat.match(name)
            if m:
                frames.append((m.group("prefix"), len(m.group("num")), int(m.group("num"))))
        if not frames:
            raise RoundTripError(f"{out}: the conformed image sequence has no frames")
        prefix, pad, _ = frames[0]
        numbers = [n for p, _, n in frames if p == prefix]
        items.append(
            {
                "FilePath": os.path.join(out, f"{prefix}%0{pad}d{ext}"),
                "StartIndex": min(numbers),
                "EndIndex": max(numbers),
            }
        )
    return items


def item_path(item: Any) -> str:
    return str(item.GetClipProperty("File Path") or "")


def same_media(path: str, output: str) -> bool:
    """Whether a media pool item's File Path is this output (a sequence shows a pattern inside
    the output folder, e.g. '/out/a/a.[0086400-0086411].exr')."""
    path, output = os.path.normpath(path), os.path.normpath(output)
    return path == output or os.path.dirname(path) == output


def timeline_size(timeline: Any, project: Any) -> "tuple[int, int]":
    """The source timeline's size: its own setting, else the project's."""
    for obj in (timeline, project):
        try:
            w = int(obj.GetSetting("timelineResolutionWidth") or 0)
            h = int(obj.GetSetting("timelineResolutionHeight") or 0)
        except (TypeError, ValueError):
            continue
        if w > 0 and h > 0:
            return w, h
    return 0, 0


def offline_clips(timeline: Any, outputs: "list[str]", expected: int) -> "list[str]":
    """Names of the video items that should show conformed media but do not."""
    linked, unlinked = 0, []
    for track in range(1, int(timeline.GetTrackCount("video") or 0) + 1):
        for item in timeline.GetItemListInTrack("video", track) or []:
            mpi = item.GetMediaPoolItem()
            path = item_path(mpi) if mpi else ""
            if path and any(same_media(path, o) for o in outputs):
                linked += 1
            else:
                unlinked.append(item.GetName())
    if linked >= expected:
        return []
    return unlinked
