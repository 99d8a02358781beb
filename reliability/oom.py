"""Campaign: a device that runs out of memory above a tile size; tiles halve and the frame still matches."""

from __future__ import annotations

import contextlib
from pathlib import Path

from reliability.cases import GOOD, Case, judge_error, run_cli
from reliability.media_files import conform_argv, media_timeline, nearest_model

# -- 5. GPU out-of-memory, simulated on CPU ----------------------------------------------------
OOM_TEXT = (
    "[ONNXRuntimeError] : 6 : RUNTIME_EXCEPTION : Failed to allocate memory for requested "
    "buffer of size 123456789 (simulated CUDA out of memory)"
)


@contextlib.contextmanager
def simulated_oom(max_side: int | None):
    """Every inference on a tile wider or taller than `max_side` fails as a GPU allocation
    does (None: every inference fails). Yields the list of tile sides tried."""
    from kwaflux_ofx.engine import sessions

    real, real_into = sessions.ModelRunner.run, sessions.GraphRunner.run_into
    seen: list[int] = []

    def check(side: int) -> None:
        seen.append(side)
        if max_side is None or side > max_side:
            raise RuntimeError(OOM_TEXT)

    def limited(self, x, noise=None):  # the numpy path: N×C×H×W
        check(max(x.shape[-2:]))
        return real(self, x, noise)

    def limited_into(self, pixels, out, strength):  # the wrapped path: H×W×C host pixels
        check(max(pixels.shape[:2]))
        return real_into(self, pixels, out, strength)

    sessions.ModelRunner.run = limited
    sessions.GraphRunner.run_into = limited_into
    try:
        yield seen
    finally:
        sessions.ModelRunner.run = real
        sessions.GraphRunner.run_into = real_into


def campaign_oom(work: Path) -> list[Case]:
    """`kwaflux upscale` and `kwaflux conform` on a device that runs out of memory above a tile
    size: the tile halves, the frame still renders, identical to an unconstrained render."""
    import numpy as np

    from kwaflux_ofx.engine import cache as engine_cache
    from kwaflux_ofx.media.stills import read_image, write_image

    work.mkdir(parents=True, exist_ok=True)
    cases = []
    model = nearest_model(work / "models")
    img = work / "in.png"
    write_image(img, np.random.default_rng(2).integers(0, 65535, (150, 260, 3), dtype=np.uint16))
    ref, got = work / "ref.png", work / "oom.png"
    base = ["-q", "upscale", str(img)]
    # SR only: with the denoiser's wide margin (auto would switch it on for this noise) a tile's
    # read window never gets under the simulated limit.
    opts = ["--model", str(model), "--device", "cpu", "--tile", "512", "--denoise", "0"]
    run = run_cli([*base, str(ref), *opts])
    with simulated_oom(90) as seen:
        run = run_cli(["-v", *base[1:], str(got), *opts])
    if run.rc == 0 and got.exists():
        same = np.array_equal(read_image(ref)[0], read_image(got)[0])
        warned = "out of memory" in run.err
        ok = same and warned and max(seen) > 90 and min(seen) <= 90
        cases.append(
            Case(
                "oom",
                "upscale 260x150, device fails above 90 px tiles",
                "accepted" if ok else "WRONG",
                f"tiles tried {sorted(set(seen), reverse=True)}; identical={same}; warned={warned}",
            )
        )
    else:
        outcome, detail = judge_error(run, [str(img)])
        cases.append(
            Case(
                "oom", "upscale with simulated OOM", "WRONG" if outcome in GOOD else outcome, detail
            )
        )
    # A device that cannot run even the smallest tile: a clear error, not a traceback.
    with simulated_oom(None):
        run = run_cli([*base, str(work / "never.png"), *opts])
    outcome, detail = judge_error(run, ["memory"])
    cases.append(Case("oom", "upscale, device fails at every tile size", outcome, detail))

    # The same at the conform level: outputs decode to exactly the unconstrained render.
    from tests.support.media import decode_indices, make_video

    src = work / "src"
    media = {"oom clip": (make_video(src / "big.mkv", 6, codec="ffv1", size=(320, 180)), "done")}
    tl = media_timeline(media, work / "oom-in.otio", frames=6)
    engine_cache._engines.clear()  # a fresh engine: no tile size remembered from other runs
    sr_only = ("--denoise", "0")  # as for upscale above: the denoiser's margin would not fit
    run_cli(conform_argv(tl, work / "ref.otio", work / "ref-media", model, *sr_only))
    engine_cache._engines.clear()
    with simulated_oom(100) as seen:
        argv = conform_argv(tl, work / "oom.otio", work / "oom-media", model, *sr_only)
        run = run_cli(["-v", *argv])
    engine_cache._engines.clear()
    a, b = work / "ref-media" / "big.mkv", work / "oom-media" / "big.mkv"
    if run.rc == 0 and b.exists():
        import av

        def frames(p):
            with av.open(str(p)) as c:
                return [f.to_ndarray(format="rgb48le") for f in c.decode(c.streams.video[0])]

        same = all(np.array_equal(x, y) for x, y in zip(frames(a), frames(b), strict=True))
        idx = decode_indices(b)[0]
        ok = same and idx == list(range(6)) and min(seen) <= 100 < max(seen)
        cases.append(
            Case(
                "oom",
                "conform 320x180 x2, device fails above 100 px tiles",
                "accepted" if ok else "WRONG",
                f"tiles tried {sorted(set(seen), reverse=True)}; identical={same}",
            )
        )
    else:
        cases.append(
            Case("oom", "conform with simulated OOM", "WRONG", run.exc or run.err.strip()[-300:])
        )
    return cases
