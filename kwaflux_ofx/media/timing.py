"""Which decoded video frame is which: frame identity from timestamps or from decoder order."""

from __future__ import annotations

import dataclasses
import enum
import fractions

# Containers that store no presentation times: the demuxer derives them from decode order, and
# B-frames scramble them (an H.264 AVI reads 1, 4, 3, 5, 2, ...). The decoder's output order is
# display order, so a frame's place in that order is its identity.
ORDER_FORMATS = frozenset({"avi", "h264", "hevc", "m4v", "mpegvideo", "rawvideo", "flv"})

# Packet durations further apart than this (as a ratio) mean the rate varies.
VFR_TOLERANCE = 1.5


class Timing(enum.Enum):
    """How frame numbers are found in a video stream."""

    TIMESTAMPS = "timestamps"  # presentation times the container stores (MP4, MOV, MKV, MXF)
    ORDER = "order"  # the decoder's output order (AVI, raw streams)


class VfrMode(enum.Enum):
    """What to do with a variable-frame-rate source."""

    CFR = "cfr"  # one frame per slot of the constant rate: gaps repeat the frame before
    KEEP = "keep"  # every decoded frame once, written at its own timestamp


@dataclasses.dataclass(frozen=True)
class StreamTiming:
    """What one scan of a video stream's packets says about its frames."""

    timing: Timing
    time_base: fractions.Fraction
    first_pts: int  # presentation time of the first shown frame (edit lists applied)
    packets: int  # frames that are shown (packets an edit list discards are not)
    slots: int  # frames at the constant rate from the first to the last timestamp
    vfr: bool
    times: tuple[float, ...] = ()  # seconds from the first frame, one per shown frame (VFR only)
    # ORDER streams whose index holds a slot per picture (an AVI capture that wrote a frame only
    # when the picture changed): the slot of each shown frame, in display order (VFR only).
    order_slots: tuple[int, ...] = ()


def scan(container, stream, rate: float, limit: int | None = None) -> StreamTiming:
    """Read the packets (no decoding) to count the shown frames and see whether the rate varies.

    With `limit`, only that many packets are read (a huge file is not read whole to be probed)
    and the count comes from the container's header.
    """
    timing = Timing.ORDER if container.format.name in ORDER_FORMATS else Timing.TIMESTAMPS
    tb = stream.time_base or fractions.Fraction(1, 1000)
    pts: list[int] = []
    shown = 0
    cut = False
    for packet in container.demux(stream):
        if not packet.size or packet.is_discard:
            continue
        shown += 1
        if packet.pts is not None:
            pts.append(packet.pts)
        if limit is not None and shown >= limit:
            shown, cut = max(shown, int(stream.frames or 0)), True
            break
    if timing is Timing.ORDER and not cut and len(pts) == shown >= 2:
        return _order_timing(tb, pts, rate)
    if timing is Timing.ORDER or len(pts) < 2 or cut:
        first = min(pts) if pts else 0
        return StreamTiming(timing, tb, first, shown, shown, False)
    pts = sorted(set(pts))
    steps = [b - a for a, b in zip(pts, pts[1:], strict=False)]
    vfr = max(steps) > VFR_TOLERANCE * min(steps)
    slots = round(float((pts[-1] - pts[0]) * tb) * rate) + 1
    times = tuple(float((p - pts[0]) * tb) for p in pts) if vfr else ()
    return StreamTiming(timing, tb, pts[0], shown, slots if vfr else shown, vfr, times)


def _order_timing(tb, pts: list[int], rate: float) -> StreamTiming:
    """An ORDER stream whose packets all carry a time: in an AVI that is the picture's slot in
    the index. B-frames scramble the order the packets come in but not the set, so sorted they
    are the slots of the frames the decoder gives out, in its (display) order. Gaps between them
    are held pictures."""
    first = min(pts)
    slots = sorted({round(float((p - first) * tb) * rate) for p in pts})
    if len(slots) != len(pts) or slots[-1] == len(slots) - 1:
        # Every slot filled (or two packets on one slot: no index to trust): count frames.
        return StreamTiming(Timing.ORDER, tb, first, len(pts), len(pts), False)
    times = tuple(n / rate for n in slots)
    return StreamTiming(Timing.ORDER, tb, first, len(pts), slots[-1] + 1, True, times, tuple(slots))


class FrameNumbers:
    """Numbers decoded frames in display order: from their timestamps where the container has
    them (a missing or repeated one follows the frame before), else by counting."""

    def __init__(
        self,
        timing: Timing,
        time_base,
        first_pts: int,
        rate: float,
        counted: bool,
        slots: tuple[int, ...] = (),
    ):
        self.by_time = timing is Timing.TIMESTAMPS and not counted
        self.tb = time_base
        self.first = first_pts
        self.rate = rate
        self.last = -1
        self.slots = slots  # counted frames placed on these slots, in order (held pictures)
        self.count = 0

    def number(self, pts: int | None) -> int:
        if self.slots:
            k, self.count = self.count, self.count + 1
            idx = self.slots[k] if k < len(self.slots) else self.last + 1
            idx = max(idx, self.last + 1)
        elif self.by_time and pts is not None:
            idx = round(float((pts - self.first) * self.tb) * self.rate)
            idx = max(idx, self.last + 1)
        else:
            idx = self.last + 1
        self.last = idx
        return idx

    def lost(self, pts: int | None, intra_only: bool) -> int | None:
        """The number of a frame whose packet the decoder rejected. Counted frames: the next
        number, taken (exact for intra-only codecs; with B-frames within the reorder depth).
        Timestamps: the packet's own, where packets come in display order (intra-only); for
        others the gap shows where the next frame lands, so nothing is placed here."""
        if not self.by_time:
            return self.number(None)
        if intra_only and pts is not None:
            return round(float((pts - self.first) * self.tb) * self.rate)
        return None

    def pts_for(self, index: int) -> int:
        """The timestamp frame `index` would have (where to seek)."""
        return self.first + int(fractions.Fraction(index) / fractions.Fraction(self.rate) / self.tb)
