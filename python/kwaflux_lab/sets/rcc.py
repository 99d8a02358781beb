"""Reads Qt .rcc resource bundles (GCompris keeps its photos in them) without Qt.

The layout, as Qt's rcc tool writes it (all integers big-endian):

    header:  b"qres", u32 version, u32 tree offset, u32 data offset, u32 names offset
             (version 3 and later: u32 overall flags)
    tree:    fixed-size nodes; node 0 is the root directory. Each node is
             u32 name offset, u16 flags, then
               directory: u32 child count, u32 index of the first child node
               file:      u16 territory, u16 language, u32 data offset
             and, from version 2 on, a u64 modification time (ms since the epoch).
    names:   u16 length in UTF-16 units, u32 hash, the name in UTF-16 BE
    data:    u32 length, the bytes; a compressed file's bytes are a u32 uncompressed length
             followed by a zlib stream (qCompress's format), or a zstd frame (flag 4).

    python -m kwaflux_lab.sets.rcc BUNDLE.rcc     # list the files
    python -m kwaflux_lab.sets.rcc --self-check   # build a bundle in memory and read it back
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from kwaflux_lab import jobs

MAGIC = b"qres"
FLAG_COMPRESSED = 0x01
FLAG_DIRECTORY = 0x02
FLAG_ZSTD = 0x04


@dataclass(frozen=True)
class Entry:
    path: str  # "/"-separated, relative to the bundle's root
    offset: int  # of the file's u32 length in the bundle
    flags: int


def qt_hash(name: str) -> int:
    """Qt's qt_hash over UTF-16 code units: the tree keeps children sorted by it."""
    h = 0
    for unit in struct.unpack(f">{len(name.encode('utf-16-be')) // 2}H", name.encode("utf-16-be")):
        h = ((h << 4) + unit) & 0xFFFFFFFF
        h ^= (h & 0xF0000000) >> 23
        h &= 0x0FFFFFFF
    return h


class Bundle:
    """One .rcc file read into memory; `entries()` walks its tree, `read(path)` gives a file."""

    def __init__(self, blob: bytes) -> None:
        if blob[:4] != MAGIC:
            raise ValueError("not a Qt resource bundle (no 'qres' magic)")
        self.blob = blob
        self.version, self.tree, self.data, self.names = struct.unpack_from(">4I", blob, 4)
        if self.version not in (1, 2, 3):
            raise ValueError(f"unknown rcc version {self.version}")
        # Version 1 nodes are 14 bytes; later ones carry the 8-byte modification time.
        self.node_size = 14 if self.version == 1 else 22
        self._by_path = {e.path: e for e in self.entries()}

    @classmethod
    def open(cls, path: Path | str) -> Bundle:
        return cls(Path(path).read_bytes())

    def _name(self, offset: int) -> str:
        at = self.names + offset
        (length,) = struct.unpack_from(">H", self.blob, at)
        return self.blob[at + 6 : at + 6 + 2 * length].decode("utf-16-be")

    def _node(self, index: int) -> tuple[str, int, int, int]:
        at = self.tree + index * self.node_size
        name_off, flags = struct.unpack_from(">IH", self.blob, at)
        a, b = struct.unpack_from(">II", self.blob, at + 6)
        # The root's name offset means nothing (it has no name).
        name = self._name(name_off) if index else ""
        return name, flags, a, b

    def entries(self) -> Iterator[Entry]:
        """Every file in the bundle, depth first."""
        stack: list[tuple[int, str]] = [(0, "")]
        seen: set[int] = set()
        while stack:
            index, prefix = stack.pop()
            if index in seen:  # a damaged tree must not loop forever
                continue
            seen.add(index)
            name, flags, a, b = self._node(index)
            path = f"{prefix}/{name}" if prefix else name
            if flags & FLAG_DIRECTORY:
                count, first = a, b
                stack.extend((first + i, path) for i in reversed(range(count)))
            else:
                # a is territory << 16 | language; b is the data offset.
                yield Entry(path, self.data + b, flags)

    def paths(self) -> list[str]:
        return list(self._by_path)

    def read(self, path: str) -> bytes:
        e = self._by_path[path.lstrip("/")]
        (length,) = struct.unpack_from(">I", self.blob, e.offset)
        raw = self.blob[e.offset + 4 : e.offset + 4 + length]
        if e.flags & FLAG_ZSTD:
            raise ValueError(f"{path}: zstd-compressed resources are not supported")
        if e.flags & FLAG_COMPRESSED:
            (size,) = struct.unpack_from(">I", raw, 0)
            out = zlib.decompress(raw[4:])
            if len(out) != size:
                raise ValueError(f"{path}: {len(out)} bytes inflated, header says {size}")
            return out
        return raw


def build(files: dict[str, bytes], version: int = 3, compress: bool = True) -> bytes:
    """A minimal bundle holding `files` (path -> bytes), for the self-check only: one level of
    directories per path component, children sorted by hash as Qt's lookup expects."""
    tree: dict = {}
    for path, content in files.items():
        node = tree
        parts = path.split("/")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = content
    names, name_at = b"", {}
    data = b""
    nodes: list[bytes] = []
    node_size = 14 if version == 1 else 22
    mtime = struct.pack(">Q", 1_700_000_000_000) if version > 1 else b""

    def name_offset(name: str) -> int:
        nonlocal names
        if name not in name_at:
            enc = name.encode("utf-16-be")
            name_at[name] = len(names)
            names += struct.pack(">HI", len(enc) // 2, qt_hash(name)) + enc
        return name_at[name]

    # Breadth first, so each directory's children are consecutive nodes.
    nodes.append(b"")
    queue = [(0, "", tree)]
    while queue:
        index, name, content = queue.pop(0)
        if isinstance(content, dict):
            kids = sorted(content.items(), key=lambda kv: qt_hash(kv[0]))
            first = len(nodes)
            nodes.extend(b"" for _ in kids)
            off = name_offset(name) if index else 0
            nodes[index] = struct.pack(">IHII", off, FLAG_DIRECTORY, len(kids), first) + mtime
            queue.extend((first + i, k, v) for i, (k, v) in enumerate(kids))
        else:
            payload = content
            flags = 0
            if compress:
                payload = struct.pack(">I", len(content)) + zlib.compress(content)
                flags = FLAG_COMPRESSED
            nodes[index] = struct.pack(">IHHHI", name_offset(name), flags, 0, 1, len(data)) + mtime
            data += struct.pack(">I", len(payload)) + payload
    assert all(len(n) == node_size for n in nodes)
    header_len = 20 + (4 if version >= 3 else 0)
    tree_off = header_len
    data_off = tree_off + len(nodes) * node_size
    names_off = data_off + len(data)
    header = MAGIC + struct.pack(">4I", version, tree_off, data_off, names_off)
    if version >= 3:
        header += struct.pack(">I", 0)
    return header + b"".join(nodes) + data + names


def self_check() -> None:
    """Round trips through `build` for every version, compressed or not, and a known hash."""
    # qt_hash("a") is the code unit itself; "ab" = (0x61 << 4) + 0x62.
    assert qt_hash("a") == 0x61 and qt_hash("ab") == (0x61 << 4) + 0x62
    files = {
        "gcompris/src/activities/erase/resource/bee.webp": b"RIFF....WEBPVP8 " + bytes(range(200)),
        "gcompris/src/activities/erase/resource/calf.webp": b"calf" * 300,
        "gcompris/src/top.txt": "h\u00e9llo".encode(),
        "readme": b"",
    }
    for version in (1, 2, 3):
        for compress in (False, True):
            b = Bundle(build(files, version, compress))
            assert sorted(b.paths()) == sorted(files), (version, b.paths())
            for path, content in files.items():
                assert b.read(path) == content, (version, compress, path)
    try:
        Bundle(b"nope" + bytes(20))
    except ValueError:
        pass
    else:
        raise AssertionError("a bundle without the magic was accepted")
    # On real bundles where they are unpacked: every stored name hash is qt_hash of the name.
    from kwaflux_lab.sets import sources

    real = sorted(
        (sources.PKGS_DIR / "gcompris-qt-data" / sources.RCC_DIR.lstrip("/")).glob("*.rcc")
    )
    for path in real[:20]:
        b = Bundle.open(path)
        for e in b.entries():
            b.read(e.path)
        assert check_hashes(b) == 0, path
    print(f"rcc self-check passed ({len(real[:20])} real bundles checked)")


def check_hashes(b: Bundle) -> int:
    """How many of the bundle's nodes store a name hash other than qt_hash(name)."""
    # The tree ends where the next section starts (Qt writes data, names, then the tree).
    after = [x for x in (b.data, b.names, len(b.blob)) if x > b.tree]
    bad = 0
    for i in range(1, (min(after) - b.tree) // b.node_size):
        (off,) = struct.unpack_from(">I", b.blob, b.tree + i * b.node_size)
        _, stored = struct.unpack_from(">HI", b.blob, b.names + off)
        bad += stored != qt_hash(b._name(off))
    return bad


def main() -> None:
    ap = jobs.parser(__doc__)
    ap.add_argument("bundle", nargs="?", type=Path)
    ap.add_argument("--self-check", action="store_true")
    args = ap.parse_args()
    if args.self_check:
        self_check()
    if args.bundle:
        b = Bundle.open(args.bundle)
        for p in b.paths():
            print(p)


if __name__ == "__main__":
    main()
