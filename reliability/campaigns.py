"""Reliability campaigns: malformed inputs, hostile timelines, kill -9 soaks, simulated OOM, OFX fuzzing.

Each campaign returns a list of `Case` records (what was tried, how it ended). `--short` is the CI
size (tests/test_hardening_*.py call the same functions with small counts); the default long run
writes the measured figures into docs/reliability.md.

    .venv/bin/python -m reliability.campaigns            # long version, writes docs/reliability.md
    .venv/bin/python -m reliability.campaigns --short    # CI size, prints the summary only
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import copy
import dataclasses
import hashlib
import io
import json
import logging
import os
import random
import re
import shutil
import signal
import sys
import time
import traceback
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

TIMELINES = ROOT.parent / "shared" / "timelines"
if not TIMELINES.is_dir():  # CI checks out shared/ inside the project
    TIMELINES = ROOT / "shared" / "timelines"
DOC = ROOT / "docs" / "reliability.md"

# How a case may end. The first three are fine; the others are bugs.
GOOD = ("accepted", "clear error", "clip failed", "clip clamped")
BAD = ("CRASH", "UNCLEAR", "DAMAGE", "HANG", "WRONG")


@dataclasses.dataclass
class Case:
    campaign: str
    name: str  # what was tried, e.g. "edl/cdl.edl truncate@120"
    outcome: str  # one of GOOD or BAD
    detail: str = ""  # the message the user saw, or what went wrong

    @property
    def ok(self) -> bool:
        return self.outcome in GOOD


def sha256(path: str | os.PathLike) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def tree_state(root: str | os.PathLike) -> dict[str, str]:
    """Every file (and link) under root with its checksum: before/after comparisons catch damage."""
    root = Path(root)
    out = {}
    for p in sorted(root.rglob("*")):
        rel = str(p.relative_to(root))
        if p.is_symlink():
            out[rel] = "link->" + os.readlink(p)
        elif p.is_file():
            out[rel] = sha256(p)
    return out


# -- running the CLI in-process ----------------------------------------------------------------
class _Timeout(Exception):
    pass


@dataclasses.dataclass
class CliRun:
    rc: int | None
    out: str
    err: str
    exc: str = ""  # an uncaught exception's last traceback line: a crash

    @property
    def error_lines(self) -> list[str]:
        return [ln for ln in self.err.splitlines() if ln.startswith("kwaflux: error:")]


def run_cli(argv: list[str], timeout: float = 120.0) -> CliRun:
    """`kwaflux ARGV` in this process (imports paid once), stdout/stderr captured, under a timeout."""
    from kwaflux_ofx.cli import main

    out, err = io.StringIO(), io.StringIO()
    # basicConfig binds its handler to the stderr of the first call; start fresh each time.
    for h in list(logging.root.handlers):
        logging.root.removeHandler(h)

    def alarm(signum, frame):
        raise _Timeout()

    old = signal.signal(signal.SIGALRM, alarm) if _main_thread() else None
    if old is not None:
        signal.setitimer(signal.ITIMER_REAL, timeout)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                rc = main(argv)
            except SystemExit as exc:  # argparse
                rc = exc.code if isinstance(exc.code, int) else 2
            except _Timeout:
                return CliRun(None, out.getvalue(), err.getvalue(), f"HANG after {timeout:g} s")
            except BaseException as exc:  # noqa: BLE001 - exactly what a campaign looks for
                tb = traceback.format_exception(exc)
                return CliRun(
                    None,
                    out.getvalue(),
                    err.getvalue(),
                    f"{type(exc).__name__}: {exc}".splitlines()[0]
                    + " | "
                    + "".join(tb[-3:-1]).strip().replace("\n", " "),
                )
    finally:
        if old is not None:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, old)
        for h in list(logging.root.handlers):
            logging.root.removeHandler(h)
    return CliRun(rc, out.getvalue(), err.getvalue())


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def judge_error(run: CliRun, names: list[str]) -> tuple[str, str]:
    """(outcome, detail) for a run that must fail with one line naming one of `names`."""
    if run.exc:
        return ("HANG" if run.exc.startswith("HANG") else "CRASH"), run.exc
    lines = run.error_lines
    if run.rc == 2 and len(lines) == 1 and "Traceback" not in run.err:
        if any(n in lines[0] for n in names):
            return "clear error", lines[0]
        return "UNCLEAR", "does not name the file: " + lines[0]
    return "UNCLEAR", f"exit {run.rc}: {run.err.strip()[-300:]}"


# -- 1a. malformed timelines -------------------------------------------------------------------
def real_timelines() -> list[Path]:
    return sorted(p for p in TIMELINES.rglob("*") if p.suffix in (".otio", ".edl", ".xml"))


_JUNK_VALUES = [
    None,
    -1,
    0,
    10**12,
    -(10**12),
    1e308,
    float("nan"),
    "",
    "x" * 5000,
    "../../../../etc/passwd",
    "$(touch pwned)",
    [],
    {},
    True,
    "Clip.1",
    {"OTIO_SCHEMA": "Clip.1"},
    {"OTIO_SCHEMA": "RationalTime.1", "rate": 0, "value": 1},
]


def _json_nodes(node, path=()):
    """(container, key) for every value in a JSON tree."""
    if isinstance(node, dict):
        for k, v in node.items():
            yield node, k
            yield from _json_nodes(v, path + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield node, i
            yield from _json_nodes(v, path + (i,))


def mutate_json(text: str, rng: random.Random) -> tuple[str, str]:
    tree = json.loads(text)
    nodes = list(_json_nodes(tree))
    if not nodes:
        return text[: len(text) // 2], "halve"
    how = []
    for _ in range(rng.choice((1, 1, 2, 3))):
        container, key = rng.choice(nodes)
        op = rng.random()
        try:
            if op < 0.15 and isinstance(container, dict):
                del container[key]
                how.append(f"del {key}")
            elif (
                op < 0.25
                and isinstance(container[key], (int, float))
                and not isinstance(container[key], bool)
            ):
                container[key] = -container[key] if rng.random() < 0.5 else container[key] * 1e9
                how.append(f"scale {key}")
            elif op < 0.35 and isinstance(container[key], str) and "." in container[key]:
                container[key] = re.sub(r"\.\d+$", ".99", container[key])  # a schema version
                how.append(f"version {key}")
            else:
                container[key] = copy.deepcopy(rng.choice(_JUNK_VALUES))
                how.append(f"set {key}")
        except (KeyError, IndexError):
            continue
        nodes = list(_json_nodes(tree))
        if not nodes:
            break
    return json.dumps(tree, indent=1), "json " + ",".join(map(str, how))


_XML_JUNK = [
    "",
    "-1",
    "0",
    "999999999999",
    "abc",
    "NaN",
    "1e308",
    "../../x",
    "file:///etc/passwd",
    "$(touch pwned)",
    "&amp;",
    "25/0",
]


def mutate_xml(text: str, rng: random.Random) -> tuple[str, str]:
    try:
        root = ET.fromstring(text)
    except ET.ParseError:
        return mutate_bytes_text(text, rng)
    elems = list(root.iter())
    how = []
    for _ in range(rng.choice((1, 2, 4))):
        el = rng.choice(elems)
        op = rng.random()
        parent = next((p for p in root.iter() if el in list(p)), None)
        if op < 0.35 and parent is not None:
            parent.remove(el)
            how.append(f"del <{el.tag}>")
        elif op < 0.5 and parent is not None:
            parent.append(copy.deepcopy(el))
            how.append(f"dup <{el.tag}>")
        elif op < 0.8:
            el.text = rng.choice(_XML_JUNK)
            how.append(f"text <{el.tag}>")
        elif el.attrib:
            k = rng.choice(sorted(el.attrib))
            el.attrib[k] = rng.choice(_XML_JUNK)
            how.append(f"attr <{el.tag} {k}>")
        elems = list(root.iter())
    return ET.tostring(root, encoding="unicode"), "xml " + ",".join(how)


_TC = re.compile(r"\d\d:\d\d:\d\d[:;]\d\d")


def mutate_edl(text: str, rng: random.Random) -> tuple[str, str]:
    lines = text.splitlines()
    how = []
    for _ in range(rng.choice((1, 2, 3))):
        if not lines:
            break
        i = rng.randrange(len(lines))
        op = rng.random()
        if op < 0.2:
            del lines[i]
            how.append(f"del line {i}")
        elif op < 0.35:
            lines.insert(i, lines[i])
            how.append(f"dup line {i}")
        elif op < 0.45:
            j = rng.randrange(len(lines))
            lines[i], lines[j] = lines[j], lines[i]
            how.append(f"swap {i},{j}")
        elif op < 0.8 and _TC.search(lines[i]):
            junk = rng.choice(
                [
                    "99:99:99:99",
                    "00:00:00:00",
                    "23:59:59:29",
                    "-1:00:00:00",
                    "00:00:00",
                    "aa:bb:cc:dd",
                    "00:00:00:99",
                ]
            )
            lines[i] = _TC.sub(junk, lines[i], count=1)
            how.append(f"tc line {i}")
        else:
            words = lines[i].split()
            if words:
                k = rng.randrange(len(words))
                words[k] = rng.choice(["", "X" * 300, "../../x", "$(touch pwned)", "0", "-5"])
                lines[i] = " ".join(words)
                how.append(f"word line {i}")
    return "\n".join(lines) + "\n", "edl " + ",".join(how)


def mutate_bytes_text(text: str, rng: random.Random) -> tuple[str, str]:
    data = bytearray(text.encode("utf-8", "surrogateescape"))
    if not data:
        return "\x00", "nul"
    op = rng.random()
    if op < 0.4:
        cut = rng.randrange(len(data))
        return data[:cut].decode("utf-8", "surrogateescape"), f"truncate@{cut}"
    if op < 0.7:
        for _ in range(rng.randint(1, 8)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        return data.decode("utf-8", "surrogateescape"), "flip bytes"
    if op < 0.85:
        a = rng.randrange(len(data))
        b = min(len(data), a + rng.randint(1, 200))
        return (data[:a] + data[b:]).decode("utf-8", "surrogateescape"), f"cut {a}:{b}"
    a = rng.randrange(len(data))
    junk = bytes(rng.randrange(256) for _ in range(rng.randint(1, 64)))
    return (data[:a] + junk + data[a:]).decode("utf-8", "surrogateescape"), f"insert@{a}"


def mutate_timeline(path: Path, rng: random.Random) -> tuple[bytes, str]:
    text = path.read_text(encoding="utf-8", errors="surrogateescape")
    if rng.random() < 0.4:
        new, how = mutate_bytes_text(text, rng)
    elif path.suffix == ".otio":
        new, how = mutate_json(text, rng)
    elif path.suffix == ".xml":
        new, how = mutate_xml(text, rng)
    else:
        new, how = mutate_edl(text, rng)
    return new.encode("utf-8", "surrogateescape"), how


def edl_rate(name: str) -> list[str]:
    return ["--rate", "25"] if name in ("25fps.edl", "timecode_mismatch.edl") else []


def campaign_timelines(
    work: Path, per_file: int, seed: int = 0, files: list[Path] | None = None
) -> list[Case]:
    """Mutate each real timeline `per_file` times; each must plan (`--dry-run`) or give one
    clear line naming the file, exit 2, and write nothing."""
    work.mkdir(parents=True, exist_ok=True)
    files = files or real_timelines()
    before = tree_state(TIMELINES)
    cases = []
    for src in files:
        rng = random.Random(f"{seed}:{src.name}")
        for k in range(per_file):
            data, how = mutate_timeline(src, rng)
            case_dir = work / f"{src.stem}-{k}"
            case_dir.mkdir()
            bad = case_dir / src.name
            bad.write_bytes(data)
            out = case_dir / "out.otio"
            media = case_dir / "media"
            if os.environ.get("KWAFLUX_TRACE"):
                print("case", bad, how, file=sys.__stderr__, flush=True)
            run = run_cli(
                [
                    "-q",
                    "conform",
                    str(bad),
                    "-o",
                    str(out),
                    "--media-dir",
                    str(media),
                    "--dry-run",
                    "--codec",
                    "ffv1",
                    *edl_rate(src.name),
                ],
                timeout=60,
            )
            name = f"{src.parent.name}/{src.name} {how}"
            if run.exc:
                outcome, detail = judge_error(run, [str(bad)])
            elif run.rc in (0, 1) and not run.error_lines:
                # 1: planned, with clips reported missing (their media is not on this machine)
                outcome, detail = "accepted", run.out.splitlines()[0] if run.out else ""
            else:
                outcome, detail = judge_error(run, [str(bad)])
            stray = sorted(set(os.listdir(case_dir)) - {src.name})
            if stray:
                outcome, detail = "DAMAGE", f"dry run wrote {stray}"
            cases.append(Case("timelines", name, outcome, detail))
            shutil.rmtree(case_dir)
    if tree_state(TIMELINES) != before:
        cases.append(Case("timelines", "source timelines", "DAMAGE", "the originals changed"))
    return cases


# -- 1b. broken ONNX models --------------------------------------------------------------------
_SR_META = {"kind": "sr", "scale": 2, "channels": 3, "range": "0-1", "receptive_field": 1}


def _graph_model(
    path: Path,
    nodes,
    inits,
    in_shape,
    out_shape,
    *,
    opset: int = 17,
    meta: dict | None = None,
    in_type=None,
    domain: str = "",
) -> Path:
    """A hand-built ONNX model (possibly wrong on purpose), saved without the checker."""
    import onnx
    from onnx import TensorProto, helper

    in_type = in_type or TensorProto.FLOAT
    graph = helper.make_graph(
        nodes,
        "broken",
        [helper.make_tensor_value_info("input", in_type, in_shape)],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, out_shape)],
        initializer=inits,
    )
    opsets = [helper.make_opsetid("", opset)]
    if domain:
        opsets.append(helper.make_opsetid(domain, 1))
    model = helper.make_model(graph, opset_imports=opsets)
    model.ir_version = 8  # onnxruntime 1.31 reads IR <= 13; onnx 1.23 writes 14 by default
    for k, v in (meta or {}).items():
        model.metadata_props.add(key=f"kwaflux.{k}", value=str(v))
    onnx.save(model, str(path))
    return path


def _weights_to(src: Path, dst: Path, value: float) -> Path:
    import numpy as np
    import onnx
    from onnx import numpy_helper

    m = onnx.load(str(src))
    for i, init in enumerate(m.graph.initializer):
        a = numpy_helper.to_array(init).copy()
        if a.ndim == 4 and a.shape[2] > 1:  # the 3x3 convs, not the 1x1 pixel shuffle
            a[:] = np.float32(value)
            m.graph.initializer[i].CopyFrom(numpy_helper.from_array(a, init.name))
    onnx.save(m, str(dst))
    return dst


class _Pickled:
    """Unpickling this would create a file: proof that no model path is ever unpickled."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def broken_models(d: Path) -> dict[str, Path]:
    """A model zoo of everything that can be wrong with a model file. {case name: path}."""
    import pickle

    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    from tests.support.onnx_models import conv_model, sr_model

    d.mkdir(parents=True, exist_ok=True)
    good = sr_model(d / "good-x2.onnx", 2, meta=_SR_META)
    data = good.read_bytes()
    zoo: dict[str, Path] = {}
    for frac in (0.0, 0.02, 0.25, 0.5, 0.9, 0.999):
        cut = int(len(data) * frac)
        p = d / f"truncated-{cut}.onnx"
        p.write_bytes(data[:cut])
        zoo[f"truncated at {frac:.1%} ({cut} of {len(data)} bytes)"] = p
    rng = np.random.default_rng(5)
    p = d / "garbled.onnx"
    garbled = bytearray(data)
    for i in rng.integers(0, len(data), 40):
        garbled[i] ^= 0xFF
    p.write_bytes(bytes(garbled))
    zoo["40 bytes flipped"] = p
    p = d / "random.onnx"
    p.write_bytes(rng.integers(0, 256, 4096, dtype=np.uint8).tobytes())
    zoo["random bytes"] = p
    p = d / "text.onnx"
    p.write_text("this is not a model\n")
    zoo["text file named .onnx"] = p
    p = d / "model.pkl"
    p.write_bytes(pickle.dumps(_Pickled(str(d / "UNPICKLED"))))
    zoo["a pickle (would create a file if unpickled)"] = p
    p = d / "model.pt"
    p.write_bytes(pickle.dumps(_Pickled(str(d / "UNPICKLED"))))
    zoo["a torch-style .pt pickle"] = p
    w = numpy_helper.from_array(np.full((3, 3, 3, 3), 1 / 27, np.float32), "w")
    w4 = numpy_helper.from_array(np.full((3, 4, 3, 3), 1 / 36, np.float32), "w")
    conv = helper.make_node("Conv", ["input", "w"], ["output"], pads=[1, 1, 1, 1])
    zoo["input rank 3 (CHW)"] = _graph_model(
        d / "rank3.onnx",
        [helper.make_node("Identity", ["input"], ["output"])],
        [],
        [3, "H", "W"],
        [3, "H", "W"],
        meta=_SR_META,
    )
    zoo["input rank 5"] = _graph_model(
        d / "rank5.onnx",
        [helper.make_node("Identity", ["input"], ["output"])],
        [],
        [1, 1, 3, "H", "W"],
        [1, 1, 3, "H", "W"],
    )
    zoo["4-channel input (RGBA model)"] = _graph_model(
        d / "rgba.onnx", [conv], [w4], ["N", 4, "H", "W"], ["N", 3, "H", "W"]
    )
    zoo["4-channel input, metadata says 3"] = _graph_model(
        d / "rgba-lies.onnx",
        [conv],
        [w4],
        ["N", 4, "H", "W"],
        ["N", 3, "H", "W"],
        meta={**_SR_META, "scale": 1, "kind": "denoise"},
    )
    zoo["int8 input"] = _graph_model(
        d / "int8.onnx",
        [helper.make_node("Cast", ["input"], ["output"], to=TensorProto.FLOAT)],
        [],
        ["N", 3, "H", "W"],
        ["N", 3, "H", "W"],
        in_type=TensorProto.INT8,
    )
    zoo["opset 99 (the runtime lacks it)"] = _graph_model(
        d / "opset99.onnx",
        [conv],
        [w],
        ["N", 3, "H", "W"],
        ["N", 3, "H", "W"],
        opset=99,
        meta={**_SR_META, "scale": 1, "kind": "denoise"},
    )
    zoo["opset 99, no metadata (probed)"] = _graph_model(
        d / "opset99-probe.onnx", [conv], [w], ["N", 3, "H", "W"], ["N", 3, "H", "W"], opset=99
    )
    zoo["unknown custom op domain"] = _graph_model(
        d / "custom-op.onnx",
        [helper.make_node("MagicUpscale", ["input"], ["output"], domain="com.example.magic")],
        [],
        ["N", 3, "H", "W"],
        ["N", 3, "H2", "W2"],
        domain="com.example.magic",
        meta=_SR_META,
    )
    zoo["rank-2 output"] = _graph_model(
        d / "flat.onnx",
        [helper.make_node("Flatten", ["input"], ["output"])],
        [],
        ["N", 3, "H", "W"],
        ["N", "K"],
    )
    zoo["rank-2 output, full metadata"] = _graph_model(
        d / "flat-meta.onnx",
        [helper.make_node("Flatten", ["input"], ["output"])],
        [],
        ["N", 3, "H", "W"],
        ["N", "K"],
        meta=_SR_META,
    )
    zoo["metadata says x2, model is x1"] = _graph_model(
        d / "lies-x2.onnx", [conv], [w], ["N", 3, "H", "W"], ["N", 3, "H", "W"], meta=_SR_META
    )
    zoo["output shrinks (valid conv)"] = _graph_model(
        d / "shrinks.onnx",
        [helper.make_node("Conv", ["input", "w"], ["output"])],
        [w],
        ["N", 3, "H", "W"],
        ["N", 3, "H", "W"],
        meta={**_SR_META, "scale": 1, "kind": "denoise"},
    )
    zoo["non-integer scale (Resize x1.5)"] = _graph_model(
        d / "x1.5.onnx",
        [helper.make_node("Resize", ["input", "", "scales"], ["output"], mode="nearest")],
        [numpy_helper.from_array(np.array([1, 1, 1.5, 1.5], np.float32), "scales")],
        ["N", 3, "H", "W"],
        ["N", 3, "H2", "W2"],
    )
    zoo["kind metadata 'colorize'"] = _graph_model(
        d / "kind.onnx",
        [conv],
        [w],
        ["N", 3, "H", "W"],
        ["N", 3, "H", "W"],
        meta={**_SR_META, "kind": "colorize", "scale": 1},
    )
    zoo["scale metadata 'two'"] = _graph_model(
        d / "scale-text.onnx",
        [conv],
        [w],
        ["N", 3, "H", "W"],
        ["N", 3, "H", "W"],
        meta={**_SR_META, "scale": "two"},
    )
    zoo["range metadata 'bright'"] = _graph_model(
        d / "range-text.onnx",
        [conv],
        [w],
        ["N", 3, "H", "W"],
        ["N", 3, "H", "W"],
        meta={**_SR_META, "range": "bright", "scale": 1, "kind": "denoise"},
    )
    zoo["NaN weights"] = _weights_to(good, d / "nan.onnx", float("nan"))
    zoo["Inf weights"] = _weights_to(good, d / "inf.onnx", float("inf"))
    dn = conv_model(d / "good-dn.onnx", meta={**_SR_META, "kind": "denoise", "scale": 1})
    zoo["NaN weights (denoise model)"] = _weights_to(dn, d / "nan-dn.onnx", float("nan"))
    zoo["missing model file"] = d / "does-not-exist.onnx"
    return zoo


def campaign_models(work: Path) -> list[Case]:
    """Every broken model through `kwaflux upscale` (one clear line naming the model, exit 2,
    no output, input untouched) and `kwaflux models info`."""
    import numpy as np

    from kwaflux_ofx.media.stills import write_image

    work.mkdir(parents=True, exist_ok=True)
    zoo = broken_models(work / "models")
    img = work / "in.png"
    write_image(img, np.random.default_rng(1).integers(0, 255, (24, 40, 3), dtype=np.uint8))
    cases = []
    for name, model in zoo.items():
        before = tree_state(work)
        out = work / "out.png"
        for argv in (
            [
                "-q",
                "upscale",
                str(img),
                str(out),
                "--model",
                str(model),
                "--scale",
                "2",
                "--device",
                "cpu",
            ],
            [
                "-q",
                "upscale",
                str(img),
                str(out),
                "--denoise",
                "0.5",
                "--scale",
                "1",
                "--denoise-model",
                str(model),
                "--device",
                "cpu",
            ],
            ["-q", "models", "info", str(model)],
        ):
            run = run_cli(argv, timeout=60)
            what = f"{name} [{argv[1]}{' --denoise-model' if '--denoise-model' in argv else ''}]"
            if run.rc == 0 and not run.exc:
                if argv[1] == "models":
                    continue  # info may describe a model that cannot render; rendering judges it
                outcome, detail = "WRONG", "rendered with a broken model"
            else:
                outcome, detail = judge_error(run, [str(model), model.name])
            after = tree_state(work)
            if after != before:
                changed = sorted(set(after.items()) ^ set(before.items()))
                outcome, detail = "DAMAGE", f"files changed: {changed[:3]}"
                if out.exists():
                    out.unlink()
            cases.append(Case("models", what, outcome, detail))
    if (work / "models" / "UNPICKLED").exists():
        cases.append(Case("models", "pickle", "DAMAGE", "a pickle was unpickled"))
    return cases


# -- 1c. broken media --------------------------------------------------------------------------
SEQ_FRAMES = 12
CLIP_FRAMES = 12


def _truncate(path: Path, frac: float) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * frac)])
    return path


def broken_media(src: Path) -> dict[str, tuple[Path, str]]:
    """Good and broken sources: {clip name: (media path, expectation)}, expectation "done" or
    "fail" (the clip must fail alone, naming its file). Clips use the first CLIP_FRAMES frames;
    a damaged video's clip uses all 24, so the damage lies inside what it uses."""
    import numpy as np

    from tests.support.media import make_sequence, make_video

    src.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(3)
    m: dict[str, tuple[Path, str]] = {}
    m["good video"] = (make_video(src / "good.mkv", 24, codec="ffv1"), "done")
    make_sequence(src / "goodseq", "good.", 1, SEQ_FRAMES)
    m["good sequence"] = (src / "goodseq" / "good.0001.exr", "done")
    m["mov cut in half (no moov atom)"] = (_truncate(make_video(src / "half.mov", 24), 0.5), "fail")
    # Matroska without its index: the frames before the cut decode; the clip is clamped to them.
    m["mkv cut at 40%"] = (_truncate(make_video(src / "cut.mkv", 24, codec="ffv1"), 0.4), "clamp")
    m["mp4 h264 cut at 70%"] = (
        _truncate(make_video(src / "cut70.mp4", 24, codec="libx264"), 0.7),
        "fail",
    )
    (src / "empty.mov").write_bytes(b"")
    m["zero-byte .mov"] = (src / "empty.mov", "fail")
    (src / "noise.mov").write_bytes(rng.integers(0, 256, 50_000, dtype=np.uint8).tobytes())
    m["random bytes named .mov"] = (src / "noise.mov", "fail")
    garbled = bytearray(make_video(src / "garbled.mkv", 24, codec="ffv1").read_bytes())
    for i in rng.integers(2000, len(garbled), 200):
        garbled[i] ^= 0x55
    (src / "garbled.mkv").write_bytes(bytes(garbled))
    m["ffv1 mkv with 200 flipped bytes"] = (src / "garbled.mkv", "fail")
    seq = make_sequence(src / "gap", "gap.", 1, SEQ_FRAMES)
    seq[5].unlink()
    m["image sequence with frame 6 missing"] = (seq[0], "fail")
    seq = make_sequence(src / "garbage", "garbage.", 1, SEQ_FRAMES)
    seq[4].write_bytes(rng.integers(0, 256, 3000, dtype=np.uint8).tobytes())
    m["image sequence, frame 5 is garbage"] = (seq[0], "fail")
    seq = make_sequence(src / "zero", "zero.", 1, SEQ_FRAMES)
    seq[6].write_bytes(b"")
    m["image sequence, frame 7 is empty"] = (seq[0], "fail")
    seq = make_sequence(src / "trunc", "trunc.", 1, SEQ_FRAMES)
    _truncate(seq[3], 0.5)
    m["image sequence, frame 4 truncated"] = (seq[3 - 3], "fail")
    seq = make_sequence(src / "size", "size.", 1, SEQ_FRAMES)
    import OpenImageIO as oiio

    spec = oiio.ImageSpec(32, 18, 3, "half")
    out = oiio.ImageOutput.create(str(seq[3]))
    out.open(str(seq[3]), spec)
    out.write_image(np.zeros((18, 32, 3), np.float32))
    out.close()
    m["image sequence, frame 4 has another size"] = (seq[0], "fail")
    return m


def media_timeline(
    media: dict[str, tuple[Path, str]], path: Path, frames: int = CLIP_FRAMES, rate: float = 24.0
) -> Path:
    """One clip per source, each using frames 0..frames-1, written as .otio."""
    import opentimelineio as otio

    tl = otio.schema.Timeline(name="hardening")
    track = otio.schema.Track(name="V1", kind=otio.schema.TrackKind.Video)
    tl.tracks.append(track)
    for name, (p, want) in media.items():
        # A damaged video's clip uses all its 24 frames, so the damage lies inside its range.
        n = 24 if p.suffix in (".mov", ".mkv", ".mp4") and want != "done" else frames
        ref = otio.schema.ExternalReference(target_url=otio.url_utils.url_from_filepath(str(p)))
        track.append(
            otio.schema.Clip(
                name=name,
                media_reference=ref,
                source_range=otio.opentime.TimeRange(
                    otio.opentime.RationalTime(0, rate), otio.opentime.RationalTime(n, rate)
                ),
            )
        )
    otio.adapters.write_to_file(tl, str(path))
    return path


def nearest_model(d: Path) -> Path:
    from tests.support.media import make_nearest_x2

    d.mkdir(parents=True, exist_ok=True)
    p = d / "nearest-x2.onnx"
    return p if p.exists() else make_nearest_x2(p)


def conform_argv(timeline: Path, out: Path, media_dir: Path, model: Path, *extra: str) -> list[str]:
    return [
        "-q",
        "conform",
        str(timeline),
        "-o",
        str(out),
        "--media-dir",
        str(media_dir),
        "--codec",
        "ffv1",
        "--model",
        str(model),
        "--scale",
        "2",
        "--handles",
        "0",
        "--device",
        "cpu",
        "--threads",
        "1",
        "--report",
        str(out.with_suffix(".json")),
        *extra,
    ]


def check_outputs(report: dict, media_dir: Path) -> list[str]:
    """Problems with a conform's results: every 'done' output decodes completely to the frames
    it should hold; nothing half-written is left in the output folder."""
    from tests.support.media import decode_indices

    problems = []
    for c in report["clips"]:
        if c["status"] != "done":
            continue
        out = Path(c["output"])
        try:
            if out.is_dir():
                idx = _sequence_indices(out)
            else:
                idx, _, _ = decode_indices(out)
        except Exception as exc:  # noqa: BLE001 - any decode failure is the finding
            problems.append(f"{out.name} does not decode: {exc}")
            continue
        if idx != list(range(len(idx))) or len(idx) < c["frames"]:
            problems.append(
                f"{out.name} holds frames {idx[:5]}...{idx[-3:]} ({len(idx)}), "
                f"expected 0..{c['frames'] - 1}"
            )
    left = [p.name for p in media_dir.rglob("*") if "partial" in p.name or p.name.startswith(".")]
    if left:
        problems.append(f"left in the output folder: {left}")
    return problems


def campaign_media(work: Path) -> list[Case]:
    """A small real conform of good and broken sources: broken clips fail alone (naming their
    file), good clips render exactly, sources are untouched."""
    import opentimelineio as otio

    work.mkdir(parents=True, exist_ok=True)
    media = broken_media(work / "src")
    tl = media_timeline(media, work / "in.otio")
    model = nearest_model(work / "models")
    before = tree_state(work / "src")
    out, media_dir = work / "out.otio", work / "media"
    run = run_cli(conform_argv(tl, out, media_dir, model), timeout=300)
    cases = []
    if run.exc or run.rc not in (0, 1):
        return [
            Case(
                "media",
                "conform of broken media",
                "CRASH" if run.exc else "UNCLEAR",
                run.exc or run.err[-300:],
            )
        ]
    report = json.loads(out.with_suffix(".json").read_text())
    by_name = {c["name"]: c for c in report["clips"]}
    for name, (path, want) in media.items():
        c = by_name[name]
        if want == "done":
            outcome = "accepted" if c["status"] == "done" else "WRONG"
            detail = c["reason"] or "rendered"
        elif want == "clamp":
            warned = [
                ln
                for ln in run.err.splitlines()
                if "past its media" in ln and (path.name in ln or name in ln)
            ]
            in_report = "past its media" in c["reason"]
            outcome = "clip clamped" if c["status"] == "done" and warned and in_report else "WRONG"
            detail = (warned or [f"status {c['status']}: {c['reason']}"])[0]
        elif c["status"] in ("failed", "missing"):
            names = {path.name, path.parent.name}
            ok = (
                any(n in c["reason"] for n in names)
                or c["media"]
                and any(n in c["reason"] for n in (Path(c["media"]).name,))
            )
            outcome = "clip failed" if ok else "UNCLEAR"
            detail = c["reason"]
        else:
            outcome, detail = "WRONG", f"status {c['status']}: {c['reason'] or 'rendered'}"
        cases.append(Case("media", name, outcome, detail))
    for problem in check_outputs(report, media_dir):
        cases.append(Case("media", "outputs", "WRONG", problem))
    if tree_state(work / "src") != before:
        cases.append(Case("media", "sources", "DAMAGE", "source media changed"))
    try:
        new = otio.adapters.read_from_file(str(out))
        for clip in new.find_clips():
            want = media[clip.name][1]
            url = (
                clip.media_reference.target_url
                if hasattr(clip.media_reference, "target_url")
                else ""
            )
            relinked = str(media_dir) in (url or "") or isinstance(
                clip.media_reference, otio.schema.ImageSequenceReference
            )
            if (want != "fail") != relinked:
                cases.append(
                    Case(
                        "media",
                        f"timeline: {clip.name}",
                        "WRONG",
                        "relinked" if relinked else "not relinked",
                    )
                )
    except Exception as exc:  # noqa: BLE001
        cases.append(Case("media", "output timeline", "WRONG", f"unreadable: {exc}"))
    return cases


# -- 2. security -------------------------------------------------------------------------------
HOSTILE_NAMES = [
    "$(touch pwned)",
    "`touch pwned`",
    "a;touch pwned",
    "x|touch pwned&",
    "..",
    "...",
    "-rf",
    " lead space",
    ".hidden",
    "日本語 クリップ",
    "a" * 200,
    "new\nline",
    "back\\slash",
    "percent%2F..%2F..%2Fescape",
]


def _outside_everything(root: Path) -> list[str]:
    """Files named like the shell payload anywhere they could land."""
    places = [root, Path.cwd(), Path("/tmp")]
    return [str(p / "pwned") for p in places if (p / "pwned").exists()]


def campaign_security(work: Path) -> list[Case]:
    """Hostile names and paths in a timeline, symlinks planted in the output folder: every write
    lands inside --media-dir, no shell ever runs a name, nothing outside changes."""
    import opentimelineio as otio

    from tests.support.media import make_video

    work.mkdir(parents=True, exist_ok=True)
    cases: list[Case] = []
    src, media_dir, outside = work / "src", work / "media", work / "outside"
    for d in (src, media_dir, outside):
        d.mkdir(exist_ok=True)
    model = nearest_model(work / "models")
    good = make_video(src / "good.mkv", 6, codec="ffv1")
    media: dict[str, tuple[Path, str]] = {}
    for i, name in enumerate(HOSTILE_NAMES):
        p = src / f"{name}.mkv"
        try:
            shutil.copyfile(good, p)
        except OSError:  # a name this filesystem refuses (too long with the suffix...)
            continue
        media[f"hostile name {i} {name[:20]!r}"] = (p, "done")
    # Paths the timeline spells with '..' and doubled separators: resolve, read, write inside.
    dotted = src / ".." / "src" / "." / "good.mkv"
    media["'..' in the media path"] = (Path(str(dotted)), "done")
    # A reference to a file outside the project that is not media (absolute path).
    victim = outside / "victim.mov"
    victim.write_bytes(b"precious, not media\n")
    media["absolute path to a non-media file"] = (victim, "fail")
    # Symlinks planted in the output folder where outputs and temp files will go.
    planted_file = outside / "planted-target.mkv"
    planted_file.write_bytes(b"must stay as it is\n")
    # exactly what the good.mkv unit would produce (4 frames, 128x72): must not pass as done
    good_out = make_video(outside / "complete.mkv", 4, codec="ffv1", size=(128, 72))
    os.symlink(planted_file, media_dir / ".good.kwaflux-partial.mkv")
    os.symlink(good_out, media_dir / "good.mkv")  # a complete-looking output, outside
    tl_path = work / "hostile.otio"
    tl = otio.schema.Timeline(name="$(touch pwned)")
    track = otio.schema.Track(name="`touch pwned`", kind=otio.schema.TrackKind.Video)
    tl.tracks.append(track)
    for name, (p, _) in media.items():
        track.append(
            otio.schema.Clip(
                name=name,
                media_reference=otio.schema.ExternalReference(target_url=str(p)),
                source_range=otio.opentime.TimeRange(
                    otio.opentime.RationalTime(0, 24), otio.opentime.RationalTime(4, 24)
                ),
                metadata={"cmd": "$(touch pwned)"},
            )
        )
    otio.adapters.write_to_file(tl, str(tl_path))
    before_src, before_out = tree_state(src), tree_state(outside)
    out = work / "out.otio"
    cwd = os.getcwd()
    os.chdir(work)  # a payload that ran would drop 'pwned' here
    try:
        run = run_cli(conform_argv(tl_path, out, media_dir, model), timeout=300)
    finally:
        os.chdir(cwd)
    if run.exc or run.rc not in (0, 1):
        return [
            Case(
                "security",
                "hostile timeline",
                "CRASH" if run.exc else "UNCLEAR",
                run.exc or run.err[-300:],
            )
        ]
    report = json.loads(out.with_suffix(".json").read_text())
    real_media = os.path.realpath(media_dir)
    for c in report["clips"]:
        want = media[c["name"]][1]
        outp = c["output"]
        if want == "done":
            inside = outp and os.path.realpath(outp).startswith(real_media + os.sep)
            regular = outp and os.path.isfile(outp) and not os.path.islink(outp)
            if c["status"] == "done" and inside and regular:
                cases.append(
                    Case(
                        "security", c["name"], "accepted", f"-> {os.path.relpath(outp, media_dir)}"
                    )
                )
            else:
                cases.append(
                    Case(
                        "security",
                        c["name"],
                        "WRONG",
                        f"{c['status']} {c['reason']} -> {outp} inside={inside} "
                        f"regular file={regular}",
                    )
                )
        else:
            ok = c["status"] in ("failed", "missing") and victim.name in c["reason"]
            cases.append(
                Case(
                    "security",
                    c["name"],
                    "clip failed" if ok else "WRONG",
                    c["reason"] or c["status"],
                )
            )
    for p in media_dir.rglob("*"):
        if p.is_symlink():
            cases.append(
                Case(
                    "security",
                    f"planted link {p.name}",
                    "WRONG",
                    "still a link after the conform (kept as an output?)",
                )
            )
        if not os.path.realpath(p).startswith(real_media + os.sep):
            cases.append(Case("security", f"output {p.name}", "WRONG", "resolves outside"))
    if tree_state(outside) != before_out:
        cases.append(Case("security", "files outside --media-dir", "DAMAGE", "changed"))
    else:
        cases.append(
            Case(
                "security",
                "planted symlinks (temp name, output name)",
                "accepted",
                "their targets unchanged; real files written in their place",
            )
        )
    if tree_state(src) != before_src:
        cases.append(Case("security", "sources", "DAMAGE", "changed"))
    pwned = _outside_everything(work) + [str(p) for p in work.rglob("pwned")]
    cases.append(
        Case(
            "security",
            "shell payloads in names, metadata, timeline and track names",
            "DAMAGE" if pwned else "accepted",
            f"executed: {pwned}" if pwned else "no payload ran",
        )
    )
    return cases


# -- 3. kill -9 soak ---------------------------------------------------------------------------
def kill_sources(src: Path, frames: int = 48, size: tuple[int, int] = (320, 180)) -> dict:
    """Three sources (two videos, one EXR sequence) for the soak: {clip: (path, "done")}."""
    from tests.support.media import make_sequence, make_video

    if src.exists():
        shutil.rmtree(src)
    a = make_video(src / "alpha.mkv", frames, codec="ffv1", size=size)
    b = make_video(src / "bravo.mov", frames + 6, codec="mjpeg", size=size)
    seq = make_sequence(src / "charlie", "charlie.", 1001, frames // 2)
    return {"alpha": (a, "done"), "bravo": (b, "done"), "charlie": (seq[0], "done")}


def _spawn_conform(argv: list[str], log: Path):
    import subprocess

    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    errf = open(log, "ab")  # noqa: SIM115 - closed by the caller after wait()
    proc = subprocess.Popen(
        [sys.executable, "-m", "kwaflux_ofx.cli", *argv, "--progress", "json"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=errf,
    )
    return proc, errf


def _wait_event(proc, names: set[str], deadline: float) -> dict | None:
    """Read the child's JSON progress lines until an event in `names` (None at EOF/deadline)."""
    import select

    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            return None
        line = proc.stdout.readline()
        if not line:
            return None
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if event.get("event") in names:
            return event
    return None


def verify_job(
    media_dir: Path,
    expected: dict[str, int],
    src_state: dict,
    src: Path,
    out_timeline: Path | None,
    final: bool,
) -> list[str]:
    """What is wrong with the output folder now. Every finished-looking output (a visible name)
    must decode completely to exactly its frames; after the final run all must be there, the
    timeline must be valid and relinked, and nothing partial may remain."""
    import opentimelineio as otio

    from tests.support.media import decode_indices

    problems = []
    if tree_state(src) != src_state:
        problems.append("source media changed")
    for p in sorted(media_dir.iterdir()) if media_dir.exists() else []:
        if p.name.startswith("."):
            if final:
                problems.append(f"partial file left after the final run: {p.name}")
            continue
        if p.name not in expected:
            problems.append(f"unexpected output {p.name}")
            continue
        try:
            idx = _sequence_indices(p) if p.is_dir() else decode_indices(p)[0]
        except Exception as exc:  # noqa: BLE001 - a visible output that cannot decode: the bug
            problems.append(f"{p.name} taken for finished but does not decode: {exc}")
            continue
        if idx != list(range(expected[p.name])):
            problems.append(
                f"{p.name} taken for finished but holds {len(idx)} frames "
                f"({idx[:3]}...), expected {expected[p.name]}"
            )
    if final:
        have = {p.name for p in media_dir.iterdir()} if media_dir.exists() else set()
        missing = sorted(set(expected) - have)
        if missing:
            problems.append(f"outputs missing after the final run: {missing}")
    if out_timeline is not None and out_timeline.exists():
        try:
            tl = otio.adapters.read_from_file(str(out_timeline))
            urls = [
                getattr(c.media_reference, "target_url", "")
                or getattr(c.media_reference, "target_url_base", "")
                for c in tl.find_clips()
            ]
            if final and not all(str(media_dir) in (u or "") for u in urls):
                problems.append(f"output timeline not relinked: {urls}")
        except Exception as exc:  # noqa: BLE001
            problems.append(f"output timeline unreadable: {exc}")
    elif final:
        problems.append("no output timeline after the final run")
    return problems


def _sequence_indices(folder: Path) -> list[int]:
    import OpenImageIO as oiio

    from tests.support.media import read_index

    out = []
    for f in sorted(folder.iterdir()):
        buf = oiio.ImageBuf(str(f))
        px = buf.get_pixels(oiio.FLOAT)
        if buf.has_error or px is None:
            raise ValueError(f"{f.name}: {buf.geterror()}")
        out.append(read_index(px))
    return out


def campaign_kills(
    work: Path, kills: int, seed: int = 0, frames: int = 48, codec: str = "ffv1"
) -> list[Case]:
    """kill -9 a real `kwaflux conform` process at random moments of its render, rerun each
    time; check after every kill and after the final run (see verify_job)."""
    work.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    src = work / "src"
    media = kill_sources(src, frames)
    tl = media_timeline(media, work / "soak.otio", frames=frames)
    model = nearest_model(work / "models")
    ext = ".mkv" if codec == "ffv1" else ""  # image sequence outputs are folders
    expected = {f"alpha{ext}": frames, f"bravo{ext}": frames, f"charlie{ext}": frames // 2}
    src_state = tree_state(src)
    log = work / "children.log"
    cases: list[Case] = []

    def argv(media_dir: Path, out: Path, jobs: int) -> list[str]:
        a = conform_argv(tl, out, media_dir, model, "--jobs", str(jobs))
        a[a.index("--codec") + 1] = codec
        return [x for x in a if x != "-q"]

    # A full run first: how long rendering takes (from the "start" event to the end).
    ref_dir, ref_out = work / "reference", work / "reference.otio"
    proc, errf = _spawn_conform(argv(ref_dir, ref_out, 1), log)
    t_start = None
    if _wait_event(proc, {"start"}, time.monotonic() + 120):
        t_start = time.monotonic()
    proc.wait(timeout=300)
    errf.close()
    render_s = time.monotonic() - t_start if t_start else 1.0
    problems = verify_job(ref_dir, expected, src_state, src, ref_out, final=True)
    cases.append(
        Case(
            "kills",
            "uninterrupted reference run",
            "WRONG" if problems else "accepted",
            "; ".join(problems) or f"rendered in {render_s:.2f} s",
        )
    )
    media_dir, out = work / "media", work / "soak-out.otio"
    landed = k = 0
    while landed < kills and k < 4 * kills:  # `kills` kills that land during a render
        k += 1
        jobs = 1 + k % 2
        delay = rng.uniform(0.0, render_s * 0.9)
        proc, errf = _spawn_conform(argv(media_dir, out, jobs), log)
        started = _wait_event(proc, {"start", "finish"}, time.monotonic() + 120)
        if started and started["event"] == "start":
            time.sleep(delay)
        finished = proc.poll() is not None
        if not finished:
            os.kill(proc.pid, signal.SIGKILL)  # our own child, by its id
        proc.wait(timeout=60)
        errf.close()
        state = sorted(p.name for p in media_dir.iterdir()) if media_dir.exists() else []
        # A kill after every output was in place hit the timeline/report stage, not a render.
        mid = not finished and not set(expected) <= set(state)
        landed += mid
        problems = verify_job(media_dir, expected, src_state, src, out, final=False)
        if mid:
            what = f"kill {landed} at +{delay:.2f} s (jobs {jobs}); folder then: {state}"
        elif not finished:
            what = f"late kill at +{delay:.2f} s, after the last output was in place (run {k})"
        else:
            what = f"run {k} finished before its kill at +{delay:.2f} s"
        cases.append(
            Case(
                "kills",
                what,
                "WRONG" if problems else "accepted",
                "; ".join(problems) or ("no finished-looking file was partial"),
            )
        )
        if not mid and not problems:
            shutil.rmtree(media_dir, ignore_errors=True)  # start over so later kills land
            out.unlink(missing_ok=True)
    # A finished output damaged behind our back must be redone, not kept.
    proc, errf = _spawn_conform(argv(media_dir, out, 1), log)
    proc.wait(timeout=300)
    errf.close()
    victim = media_dir / f"alpha{ext}"
    if victim.is_file():
        _truncate(victim, 0.6)
    elif victim.is_dir():
        sorted(victim.iterdir())[-1].unlink()
    proc, errf = _spawn_conform(argv(media_dir, out, 2), log)
    proc.wait(timeout=300)
    errf.close()
    problems = verify_job(media_dir, expected, src_state, src, out, final=True)
    if proc.returncode != 0:
        problems.append(f"final run exit {proc.returncode}")
    cases.append(
        Case(
            "kills",
            f"final rerun after {landed} kills (and a truncated output)",
            "WRONG" if problems else "accepted",
            "; ".join(problems) or "all outputs complete, timeline relinked",
        )
    )
    return cases


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

    real = sessions.ModelRunner.run
    seen: list[int] = []

    def limited(self, x, noise=None):
        side = max(x.shape[-2:])
        seen.append(side)
        if max_side is None or side > max_side:
            raise RuntimeError(OOM_TEXT)
        return real(self, x, noise)

    sessions.ModelRunner.run = limited
    try:
        yield seen
    finally:
        sessions.ModelRunner.run = real


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
    opts = ["--model", str(model), "--device", "cpu", "--tile", "512"]
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
    run_cli(conform_argv(tl, work / "ref.otio", work / "ref-media", model))
    engine_cache._engines.clear()
    with simulated_oom(100) as seen:
        run = run_cli(["-v", *conform_argv(tl, work / "oom.otio", work / "oom-media", model)])
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


# -- 4. OFX boundary fuzzing and the render-thread soak ----------------------------------------
FUZZ_SRC = ROOT / "reliability" / "ofx_fuzz.cpp"
SAN_ENV = {
    "ASAN_OPTIONS": "detect_leaks=0:abort_on_error=0:exitcode=99",
    "UBSAN_OPTIONS": "print_stacktrace=1",
}


def ofx_models(d: Path) -> Path:
    from tests.support.ofx import denoise_model, failing_model, sr_x2_model

    d.mkdir(parents=True, exist_ok=True)
    from tests.support.onnx_models import sr_model

    for name, make in (
        ("sr.onnx", sr_x2_model),
        ("dn.onnx", denoise_model),
        ("fail.onnx", failing_model),
    ):
        if not (d / name).exists():
            make(d / name)
    # Small stand-ins for the built-in names, so an empty model parameter (the defaults, x4 and
    # denoise-before-SR included) renders quickly too: KWAFLUX_MODELS_DIR points here.
    reg = d / "registry"
    reg.mkdir(exist_ok=True)
    if not (reg / "kwaflux-sr-x4.onnx").exists():
        shutil.copyfile(d / "sr.onnx", reg / "kwaflux-sr-x2.onnx")
        shutil.copyfile(d / "dn.onnx", reg / "kwaflux-denoise.onnx")
        sr_model(reg / "kwaflux-sr-x4.onnx", 4, meta={**_SR_META, "scale": 4})
    return d


def build_fuzzer(out_dir: Path, sanitize: bool) -> Path:
    """Compile the fuzz driver (the test host's source plus the random loop)."""
    import subprocess

    out_dir.mkdir(parents=True, exist_ok=True)
    exe = out_dir / "ofx-fuzz"
    srcs = [
        FUZZ_SRC,
        ROOT / "bridge" / "test_host" / "host.cpp",
        ROOT / "bridge" / "test_host" / "npy.h",
    ]
    if exe.exists() and exe.stat().st_mtime > max(p.stat().st_mtime for p in srcs):
        return exe
    flags = ["-O1", "-g"]
    if sanitize:
        flags += ["-fsanitize=address,undefined", "-fno-omit-frame-pointer"]
    cmd = [
        "g++",
        "-std=c++17",
        *flags,
        f"-I{ROOT / 'bridge'}",
        str(FUZZ_SRC),
        "-o",
        str(exe),
        "-ldl",
        "-lpthread",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        raise RuntimeError(f"building the fuzzer failed: {proc.stderr[-2000:]}")
    return exe


def build_sanitized_bundle(build: Path, undefined: bool) -> Path:
    """The plugin built with AddressSanitizer (and UBSan) through the project's own CMake option,
    in a build folder of its own."""
    import subprocess

    if not (build / "CMakeCache.txt").is_file():
        cmd = [
            "cmake",
            "-S",
            str(ROOT),
            "-B",
            str(build),
            "-DCMAKE_BUILD_TYPE=Debug",
            "-DKWAFLUX_ASAN=ON",
            f"-DPython_EXECUTABLE={sys.executable}",
        ]
        if shutil.which("ninja"):
            cmd += ["-G", "Ninja"]
        if undefined:
            cmd.append("-DCMAKE_CXX_FLAGS=-fsanitize=undefined -fno-omit-frame-pointer")
        subprocess.run(cmd, check=True, capture_output=True, timeout=300)
    proc = subprocess.run(
        ["cmake", "--build", str(build), "-j", "2"], capture_output=True, text=True, timeout=1800
    )
    if proc.returncode != 0:
        raise RuntimeError(f"building the sanitized plugin failed: {proc.stdout[-2000:]}")
    return build / "Kwaflux.ofx.bundle"


def default_bundle() -> Path:
    from kwaflux_ofx.hosts.ofx import install as ofx_tools

    b = ofx_tools.installed_bundle()
    return b if b.exists() else ROOT / "build" / "cp311-cp311-linux_x86_64" / "Kwaflux.ofx.bundle"


_RAW_EXC = re.compile(r"Kwaflux: [A-Z][A-Za-z]*(Error|Exception): ")


def run_fuzz(
    exe: Path,
    bundle: Path,
    work: Path,
    count: int,
    seed: int = 1,
    max_side: int = 512,
    sanitize: bool = False,
    timeout: float = 1800,
) -> tuple[list[Case], dict]:
    """Run `count` random configurations; a process that dies is restarted after the case that
    killed it. Returns (cases, figures)."""

    work.mkdir(parents=True, exist_ok=True)
    models = ofx_models(work / "models")
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "KWAFLUX_LOG_DIR": str(work / "logs"),
        "KWAFLUX_MODELS_DIR": str(models / "registry"),
        **(SAN_ENV if sanitize else {}),
    }
    figures = collections.Counter()
    cases: list[Case] = []
    deadline = time.monotonic() + timeout
    # One host flavour per process (a host's capabilities never change under a plugin): the
    # cases are split between a Natron-like host, one without multi-resolution, and Resolve.
    for k, flavour in enumerate(("multires", "nomultires", "resolve")):
        first, last = count * k // 3, count * (k + 1) // 3
        _fuzz_flavour(
            exe,
            bundle,
            models,
            work,
            env,
            seed,
            first,
            last,
            max_side,
            flavour,
            deadline,
            cases,
            figures,
        )
    figures["configurations"] = len(cases)
    return cases, dict(figures)


def _fuzz_flavour(
    exe, bundle, models, work, env, seed, first, last, max_side, flavour, deadline, cases, figures
) -> None:
    import subprocess

    start, count = first, last
    while start < count and time.monotonic() < deadline:
        try:
            proc = _run_fuzz_process(
                [
                    str(exe),
                    "--bundle",
                    str(bundle),
                    "--models",
                    str(models),
                    "--work",
                    str(work),
                    "--seed",
                    str(seed),
                    "--start",
                    str(start),
                    "--count",
                    str(count - start),
                    "--max-side",
                    str(max_side),
                    "--host",
                    flavour,
                ],
                env,
                max(1.0, deadline - time.monotonic()),
            )
        except subprocess.TimeoutExpired:
            cases.append(
                Case(
                    "ofx-fuzz",
                    f"cases from {start} [{flavour}]",
                    "HANG",
                    "the fuzz process did not finish before the deadline",
                )
            )
            return
        cur, config, block, last_done = None, "", [], start - 1
        recheck = False
        for line in proc.stdout.splitlines():
            m = re.match(r"fuzz (\d+) config (.*)", line)
            if m:
                cur, config, block, recheck = int(m.group(1)), m.group(2), [], False
                continue
            if re.match(r"fuzz \d+ recheck", line):
                recheck = True
                continue
            m = re.match(r"fuzz (\d+) rc=(-?\d+)", line)
            if m and cur is not None:
                rc = int(m.group(2))
                cases.append(_fuzz_case(cur, f"[{flavour}] {config}", rc, block, figures))
                last_done, cur = cur, None
                continue
            block.append(line)
            if "runtime error:" in line or "AddressSanitizer" in line:
                figures["sanitizer reports"] += 1
            if line.startswith("render t=") and recheck:
                figures["frames re-rendered in the plain layout"] += 1
            elif line.startswith("render t="):
                figures["frames"] += 1
                figures["frames ok" if " status=0 " in line else "frames failed"] += 1
        if cur is not None:  # died inside case `cur`
            san = [ln for ln in block if "AddressSanitizer" in ln or "runtime error:" in ln]
            kind = "SANITIZER" if san else "CRASH"
            figures["crashes"] += 1
            cases.append(
                Case(
                    "ofx-fuzz",
                    f"case {cur} [{flavour}]: {_short(config)}",
                    "CRASH",
                    f"{kind}: process exit {proc.returncode}; "
                    + (san[0] if san else (block[-1] if block else "")),
                )
            )
            start = cur + 1
        elif "fuzz done" in proc.stdout:
            start = count
        else:
            cases.append(
                Case(
                    "ofx-fuzz",
                    f"after case {last_done}",
                    "CRASH",
                    f"process exit {proc.returncode} between cases",
                )
            )
            start = last_done + 2


def _run_fuzz_process(cmd: list[str], env: dict, timeout: float):
    import subprocess

    return subprocess.run(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
        timeout=timeout,
        errors="replace",
        text=True,
    )


def _short(config: str) -> str:
    return re.sub(r"--bundle \S+ |--input \S+ |/\S+/(?=\w+\.onnx)", "", config).replace(
        "org.kwaflux.", ""
    )


def _fuzz_case(i: int, config: str, rc: int, block: list[str], figures) -> Case:
    msgs = [
        ln.split("persistent message: ", 1)[1]
        for ln in block
        if ln.startswith("persistent message: ")
    ]
    san = [ln for ln in block if "runtime error:" in ln or "AddressSanitizer" in ln]
    name = f"case {i}: {_short(config)}"
    if san:
        return Case("ofx-fuzz", name, "CRASH", "sanitizer: " + san[0])
    layout = [ln for ln in block if re.match(r"fuzz \d+ layout ", ln)]
    if layout:
        figures["layout comparisons"] += 1
        if " DIFF " in layout[0]:
            return Case(
                "ofx-fuzz",
                name,
                "WRONG",
                "pixels depend on rowBytes/padding/offset/threads: " + layout[0],
            )
    if rc == 0:
        return Case("ofx-fuzz", name, "accepted", "rendered")
    if rc == 3 and msgs:
        raw = _RAW_EXC.search(msgs[-1])
        figures["failures with a message"] += 1
        return Case("ofx-fuzz", name, "UNCLEAR" if raw else "clear error", msgs[-1][:300])
    if rc == 4:
        return Case("ofx-fuzz", name, "DAMAGE", "plugin wrote outside an image buffer")
    return Case(
        "ofx-fuzz", name, "UNCLEAR", f"host rc {rc} without a message: " + " | ".join(block[-3:])
    )


def campaign_ofx_threads(
    work: Path,
    frames: int,
    threads: int = 8,
    instances: int = 1,
    size: tuple[int, int] = (48, 32),
    timeout: float = 600,
) -> list[Case]:
    """`threads` render threads x `frames` frames on one instance (and `instances` host
    processes at once): every frame identical to the single-threaded render and to the Engine,
    all under a timeout (a deadlock fails it)."""
    import subprocess

    import numpy as np

    from kwaflux_ofx import Engine
    from kwaflux_ofx.hosts.ofx import install as ofx_tools

    work.mkdir(parents=True, exist_ok=True)
    models = ofx_models(work / "models")
    pic = np.random.default_rng(8).random((size[1], size[0], 4), dtype=np.float32)
    np.save(work / "in.npy", pic)
    host = ofx_tools.test_host_path()
    if not host.exists():
        host = ROOT / "build" / "cp311-cp311-linux_x86_64" / "bin" / "kwaflux-ofx-test-host"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "KWAFLUX_LOG_DIR": str(work / "logs")}

    def start(tag: str, n_threads: int):
        out = work / tag
        out.mkdir(exist_ok=True)
        cmd = [
            str(host),
            "--bundle",
            str(default_bundle()),
            "--plugin",
            "org.kwaflux.SuperResolution",
            "--input",
            str(work / "in.npy"),
            "--output",
            str(out / "o.npy"),
            "--param",
            f"model={models / 'sr.onnx'}",
            "--threads",
            str(n_threads),
            "--frames",
            str(frames),
            "--negative-rowbytes",
            "--row-pad",
            "12",
        ]
        return subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True
        ), out

    cases = []
    t0 = time.monotonic()
    runs = [start(f"mt{k}", threads) for k in range(instances)] + [start("st", 1)]
    outs = []
    for proc, out in runs:
        try:
            text, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()  # our own child
            proc.communicate()
            return [Case("ofx-threads", out.name, "HANG", f"no end after {timeout:g} s")]
        outs.append((proc.returncode, text, out))
    seconds = time.monotonic() - t0
    ref_dir = outs[-1][2]
    single = {p.name: np.load(p) for p in ref_dir.glob("*.npy")}
    engine = Engine(device="cpu")
    for k in (0, frames - 1):
        want = engine.process(np.roll(pic, k, axis=1), scale=2, sr_model=models / "sr.onnx")
        got = single.get(f"o.{k}.npy" if frames > 1 else "o.npy")
        if got is None or not np.array_equal(got, want):
            cases.append(Case("ofx-threads", f"frame {k} vs Engine", "WRONG", "pixels differ"))
    for rc, text, out in outs[:-1]:
        rendered = text.count("render t=")
        ok_frames = text.count(" status=0 ")
        diff = [
            p.name for p in out.glob("*.npy") if not np.array_equal(np.load(p), single.get(p.name))
        ]
        good = rc == 0 and rendered == frames == ok_frames and not diff and len(single) == frames
        cases.append(
            Case(
                "ofx-threads",
                f"{threads} threads x {frames} frames ({out.name})",
                "accepted" if good else "WRONG",
                f"{ok_frames}/{frames} frames ok, {len(diff)} differ from 1 thread, "
                f"{instances} instance(s) at once, {seconds:.1f} s",
            )
        )
    return cases


# -- running the campaigns, writing docs/reliability.md ----------------------------------------
SIZES = {
    # name: (short, long) keyword arguments
    "timelines": ({"per_file": 4}, {"per_file": 60}),
    "models": ({}, {}),
    "media": ({}, {}),
    "security": ({}, {}),
    "kills": ({"kills": 5}, {"kills": 20}),
    "kills-exr": ({"kills": 2, "frames": 24}, {"kills": 6, "frames": 24}),
    "oom": ({}, {}),
    "ofx-fuzz": ({"count": 200, "max_side": 256}, {"count": 6000, "max_side": 4096}),
    "ofx-fuzz-sanitized": ({"count": 40, "max_side": 64}, {"count": 5000, "max_side": 512}),
    "ofx-threads": ({"frames": 64}, {"frames": 1000, "instances": 2}),
}

# Bugs these campaigns found in this project, fixed where they were (kept here so the report
# says what the figures mean).
FIXED = [
    'OTIO 0.18.1 segfaults on a timeline whose "tracks" is null: read_timeline now refuses it '
    "in one line (timelines campaign, mutation 'set tracks').",
    "Models whose kwaflux metadata is not a number, whose graph disagrees with their metadata, "
    "or that give a non-NCHW output raised ValueError/InvalidArgument/IndexError tracebacks: "
    "now one ModelError line naming the model.",
    "A model with NaN/Inf weights rendered silent black (8/16-bit) or NaN (float) frames: the "
    "engine now refuses non-finite model output. NaN/inf pixels of a float source frame render "
    "as black/full scale instead of spreading over the model's receptive field.",
    "An image sequence with a missing frame number was silently collapsed: every later frame "
    "shifted by one in the conformed media. A gap is now a missing frame that fails its clip.",
    "An image sequence with one frame of another size was encoded anyway; now that clip fails "
    "naming the frame. Damaged video that fails mid-decode now names the file.",
    "A symlink planted at an output name passed for a finished output (relinking the clip to "
    "a file outside --media-dir); links are never taken for finished outputs now.",
    "Out of memory at the smallest tile escaped as an onnxruntime traceback; now one line.",
    "OFX: a sourceScale of inf or 1e300 (a script can send one) failed with a bare "
    "OverflowError/ValueError; now a clear message.",
]


def run_campaign(name: str, work: Path, short: bool) -> tuple[list[Case], dict, float]:
    kw = SIZES[name][0 if short else 1]
    t0 = time.monotonic()
    figures: dict = {}
    if name == "timelines":
        cases = campaign_timelines(work, seed=0, **kw)
    elif name == "models":
        cases = campaign_models(work)
    elif name == "media":
        cases = campaign_media(work)
    elif name == "security":
        cases = campaign_security(work)
    elif name == "kills":
        cases = campaign_kills(work, seed=1, **kw)
    elif name == "kills-exr":
        cases = campaign_kills(work, seed=2, codec="exr", **kw)
    elif name == "oom":
        cases = campaign_oom(work)
    elif name == "ofx-fuzz":
        exe = build_fuzzer(ROOT / "build" / "fuzz", sanitize=False)
        cases, figures = run_fuzz(exe, default_bundle(), work, seed=20261125, **kw)
    elif name == "ofx-fuzz-sanitized":
        bundle = build_sanitized_bundle(ROOT / "build" / "fuzz-san", undefined=True)
        exe = build_fuzzer(ROOT / "build" / "fuzz-san", sanitize=True)
        cases, figures = run_fuzz(exe, bundle, work, seed=77, sanitize=True, **kw)
    elif name == "ofx-threads":
        cases = campaign_ofx_threads(work, threads=8, timeout=1800, **kw)
    else:
        raise ValueError(name)
    for c in cases:
        c.campaign = name
    return cases, figures, time.monotonic() - t0


def _isolated(name: str, work: Path, short: bool) -> tuple[list[Case], dict, float]:
    """One campaign in a child process: a segfault there is a finding, not the end of the run."""
    import subprocess

    out = work / f"{name}.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "KWAFLUX_TRACE": "1", "OMP_NUM_THREADS": "1"}
    t0 = time.monotonic()
    proc = subprocess.run(
        [
            sys.executable,
            "-X",
            "faulthandler",
            __file__,
            "--worker",
            name,
            "--work",
            str(work / name),
            "--out",
            str(out),
        ]
        + (["--short"] if short else []),
        capture_output=True,
        text=True,
        env=env,
    )
    if proc.returncode == 0 and out.exists():
        data = json.loads(out.read_text())
        return [Case(**c) for c in data["cases"]], data["figures"], data["seconds"]
    last = [ln for ln in proc.stderr.splitlines() if ln.startswith("case ")][-1:]
    tail = proc.stderr.strip().splitlines()[-3:]
    return (
        [
            Case(
                name,
                "the campaign process",
                "CRASH",
                f"exit {proc.returncode} at {last[0] if last else '?'}: {' | '.join(tail)}",
            )
        ],
        {"crashes": 1},
        time.monotonic() - t0,
    )


def summarize(results: dict[str, tuple[list[Case], dict, float]]) -> dict:
    total = collections.Counter()
    for name, (cases, figures, _) in results.items():
        total["cases"] += len(cases)
        total["bad"] += sum(not c.ok for c in cases)
        if name.startswith("ofx-fuzz"):
            total["frames fuzzed"] += figures.get("frames", 0)
            total["sanitizer reports"] += figures.get("sanitizer reports", 0)
            total["layout re-renders"] += figures.get("frames re-rendered in the plain layout", 0)
        total["crashes"] += sum(c.outcome in ("CRASH", "HANG") for c in cases)
        if name.startswith("kills"):
            total["kills survived"] += sum(c.name.startswith("kill ") and c.ok for c in cases)
        if name in ("timelines", "models", "media"):
            total["malformed inputs tried"] += len(cases)
    return dict(total)


def _table(rows: list[list[str]]) -> str:
    head, *body = rows
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(r) + " |" for r in body]
    return "\n".join(lines)


def _cell(text: str, n: int = 160) -> str:
    text = text.replace("|", "\\|").replace("\n", " ")
    text = re.sub(r"/tmp/\S*?/(?=[^/\s]+(\s|$|:))", "…/", text)
    return text if len(text) <= n else text[: n - 1] + "…"


def write_doc(results: dict, total: dict, short: bool, seconds: float) -> str:
    import platform

    out = [
        "# Reliability: what the campaigns tried and how each case ended",
        "",
        "Written by `reliability/campaigns.py` (the long version; `--short` is what CI runs "
        "through `tests/test_hardening_*.py`). Regenerate with "
        "`.venv/bin/python -m reliability.campaigns`.",
        "",
        f"Run: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
        f"{'short' if short else 'long'} version, {seconds / 60:.1f} min on "
        f"{os.cpu_count()} CPU cores ({platform.machine()}), CPU only.",
        "",
        "## Figures",
        "",
        _table(
            [
                ["figure", "value"],
                [
                    "OFX frames fuzzed (both effects, plain + ASan/UBSan builds)",
                    str(total.get("frames fuzzed", 0)),
                ],
                [
                    "OFX frames rendered again in the plainest layout (all identical unless "
                    "listed below)",
                    str(total.get("layout re-renders", 0)),
                ],
                ["crashes (any campaign)", str(total.get("crashes", 0))],
                ["sanitizer reports", str(total.get("sanitizer reports", 0))],
                [
                    "kill -9 survived (landed mid-render, then rerun)",
                    str(total.get("kills survived", 0)),
                ],
                [
                    "malformed inputs tried (timelines, models, media)",
                    str(total.get("malformed inputs tried", 0)),
                ],
                [
                    "cases that ended badly (crash, unclear, damage, hang, wrong)",
                    str(total.get("bad", 0)),
                ],
            ]
        ),
        "",
        "How a case may end: **accepted** (worked), **clear error** (exit 2, one line naming "
        "the file; or an OFX failed status plus a host message), **clip failed** (that clip "
        "alone failed in the conform report, naming its file), **clip clamped** (a clip "
        "past its media's end rendered the frames there, with a warning naming the file). "
        "Anything else (CRASH, UNCLEAR, DAMAGE, HANG, WRONG) is a bug.",
        "",
        "## Campaigns",
        "",
        _table(
            [["campaign", "cases", "how they ended", "seconds"]]
            + [
                [
                    name,
                    str(len(cases)),
                    ", ".join(
                        f"{k} {v}"
                        for k, v in collections.Counter(c.outcome for c in cases).most_common()
                    ),
                    f"{secs:.0f}",
                ]
                for name, (cases, _, secs) in results.items()
            ]
        ),
        "",
    ]
    for name, (cases, figures, _) in results.items():
        out += [f"### {name}", ""]
        if figures:
            out += ["Figures: " + ", ".join(f"{k} {v}" for k, v in sorted(figures.items())), ""]
        bad = [c for c in cases if not c.ok]
        if name in ("timelines", "ofx-fuzz", "ofx-fuzz-sanitized"):
            # Too many to list: how they ended, by message.
            groups = collections.Counter()
            for c in cases:
                msg = re.sub(r"\d+(\.\d+)?(e[+-]?\d+)?", "N", c.detail)
                msg = re.sub(r"^kwaflux: error: \S+: ", "", msg)
                msg = re.sub(r"\(log: [^)]*\)", "", msg).replace("Kwaflux: ", "")
                groups[(c.outcome, _cell(msg, 110))] += 1
            out += [
                _table(
                    [["ended", "message (numbers as N)", "cases"]]
                    + [[o, m, str(n)] for (o, m), n in groups.most_common(25)]
                ),
                "",
            ]
            if len(groups) > 25:
                out += [f"(and {len(groups) - 25} rarer messages)", ""]
        else:
            out += [
                _table(
                    [["case", "ended", "what the user saw / what was checked"]]
                    + [[_cell(c.name, 90), c.outcome, _cell(c.detail)] for c in cases]
                ),
                "",
            ]
        if bad and name in ("timelines", "ofx-fuzz", "ofx-fuzz-sanitized"):
            out += (
                ["Bad cases:", ""]
                + [f"- {_cell(c.name, 200)}: {c.outcome}: {_cell(c.detail)}" for c in bad[:30]]
                + [""]
            )
    out += ["## Bugs these campaigns found (fixed)", ""] + [f"- {f}" for f in FIXED] + [""]
    out += [
        "## How the OFX fuzz works, and its limits",
        "",
        "- `reliability/ofx_fuzz.cpp` includes the test host's source and calls its main() "
        "in a loop: each case is the full action sequence (load, describe, create instance, "
        "clip preferences, RoD, RoI, render on 1-4 threads, destroy, unload) with a random "
        "image (1x1 up to 4K; 8/16-bit, half, float; RGB/RGBA; NaN/inf/negative values in "
        "some float images), rowBytes (negative, padded by 1..4096 bytes), bounds offset, "
        "render scale, context, premultiplication, source connected or not, and parameter "
        "values (out-of-range, NaN, inf, huge; missing, failing and wrong-kind models).",
        "- Every case that renders is rendered again in the plainest layout (positive "
        "rowBytes, no padding, no offset, one thread): the pixels must be identical. An "
        "offset that is not a whole pixel at the render scale moves the image by a fraction "
        "of a pixel, so it is kept in both renders.",
        "- A host's capabilities (multi-resolution, name) are read by the plugin once, as in "
        "any real host; each fuzz process is one host flavour (Natron-like, no "
        "multi-resolution, Resolve), a third of the cases each.",
        "- The buffers carry guard bytes: a write outside them fails the case (DAMAGE).",
        "",
        "## Not covered",
        "",
        "- Several OFX instances inside one host process at once: the test host makes one "
        "instance per process, so 'several instances' runs as several host processes.",
        "- A real GPU: out-of-memory is simulated on CPU (the allocation failure onnxruntime "
        "raises); the fuzz and soaks run on the CPU provider.",
        "",
    ]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--short", action="store_true", help="CI size; prints, does not write docs")
    ap.add_argument("--only", action="append", choices=tuple(SIZES), help="run only these")
    ap.add_argument("--work", default=None, help="scratch folder (default: a temp folder)")
    ap.add_argument(
        "--write", action="store_true", help="write docs/reliability.md even if --short"
    )
    ap.add_argument(
        "--report-only",
        action="store_true",
        help="rewrite docs/reliability.md from the results saved in --work",
    )
    ap.add_argument("--worker", choices=tuple(SIZES), help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    import tempfile

    if args.worker:
        cases, figures, secs = run_campaign(args.worker, Path(args.work), args.short)
        Path(args.out).write_text(
            json.dumps(
                {
                    "cases": [dataclasses.asdict(c) for c in cases],
                    "figures": figures,
                    "seconds": secs,
                }
            )
        )
        return 0
    work = Path(args.work or tempfile.mkdtemp(prefix="kwaflux-reliability-"))
    results = {}
    if args.report_only:
        seconds = 0.0
        for name in args.only or SIZES:
            data = json.loads((work / f"{name}.json").read_text())
            results[name] = ([Case(**c) for c in data["cases"]], data["figures"], data["seconds"])
            seconds += data["seconds"]
        DOC.write_text(write_doc(results, summarize(results), args.short, seconds))
        print(f"wrote {DOC}")
        return 0
    t0 = time.monotonic()
    for name in args.only or SIZES:
        print(f"== {name}", flush=True)
        results[name] = _isolated(name, work, args.short)
        cases, figures, secs = results[name]
        print(
            f"   {len(cases)} cases in {secs:.0f} s: "
            + ", ".join(
                f"{k} {v}" for k, v in collections.Counter(c.outcome for c in cases).items()
            )
            + (f"; {figures}" if figures else ""),
            flush=True,
        )
        for c in cases:
            if not c.ok:
                print(f"   BAD {c.outcome}: {c.name}: {c.detail}", flush=True)
    total = summarize(results)
    print("total:", total)
    if not args.short or args.write:
        DOC.parent.mkdir(exist_ok=True)
        DOC.write_text(write_doc(results, total, args.short, time.monotonic() - t0))
        print(f"wrote {DOC}")
    if not args.work:
        shutil.rmtree(work, ignore_errors=True)
    return 1 if total.get("bad") else 0


if __name__ == "__main__":
    sys.exit(main())
