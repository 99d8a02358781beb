"""Campaign: real exported timelines, mutated (JSON, XML, EDL and byte level), fed to `kwaflux conform`."""

from __future__ import annotations

import copy
import json
import os
import random
import re
import shutil
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

from reliability.cases import TIMELINES, Case, judge_error, run_cli, tree_state


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
