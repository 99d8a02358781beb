"""The isolated render worker: a process the OFX plugin starts from the venv to run entry.render
and entry.measure on frames it hands over in shared memory, so the host's Python and a crash in
the models stay out of the host's process (bridge/worker_client.cpp is the other end)."""

from __future__ import annotations

import json
import logging
import mmap
import os
import socket
import sys
import traceback

import numpy as np

from kwaflux_ofx.hosts.ofx import entry

log = logging.getLogger(__name__)

MAX_REQUEST = 1 << 20  # a request is JSON of a few kB: geometry, parameters, image offsets
# Exceptions whose message is already written for the user (the in-process shell does the same).
_OWN_ERRORS = ("KwafluxError", "ModelError", "MediaError")
# The geometry the in-process shell passes as tuples; JSON brings lists.
_TUPLES = ("window", "src_bounds", "dst_bounds", "render_scale")


def _line(exc: BaseException) -> str:
    """One line for the host, as python_host.cpp's describe_python_error writes it."""
    text = str(exc).strip().splitlines()
    line = text[0] if text else ""
    name = type(exc).__name__
    return line if name in _OWN_ERRORS else f"{name}: {line}"


def _reply(sock: socket.socket, **fields) -> None:
    lines = []
    for key, value in fields.items():
        values = value if isinstance(value, list) else [value]
        for v in values:
            lines.append(f"{key} {' '.join(str(v).splitlines())}")
    sock.send("\n".join(lines).encode())


def _rss_kb() -> int:
    with open("/proc/self/statm", "rb") as f:
        return int(f.read().split()[1]) * (os.sysconf("SC_PAGE_SIZE") // 1024)


class Frames:
    """The plugin's shared buffer, mapped once per descriptor the plugin sends."""

    def __init__(self) -> None:
        self.map: mmap.mmap | None = None

    def adopt(self, fd: int, size: int) -> None:
        if self.map is not None:
            self.map.close()
        try:
            self.map = mmap.mmap(fd, size)
        finally:
            os.close(fd)

    def array(self, spec: dict, writeable: bool) -> np.ndarray:
        if self.map is None:
            raise RuntimeError("no shared frame buffer received")
        shape = tuple(int(v) for v in spec["shape"])
        a = np.ndarray(shape, np.dtype(spec["dtype"]), buffer=self.map, offset=int(spec["offset"]))
        if not writeable:
            a.flags.writeable = False
        return a


def _params(request: dict) -> dict:
    params = dict(request["params"])
    for key in _TUPLES:
        if key in params:
            params[key] = tuple(params[key])
    return params


def handle(request: dict, frames: Frames, sock: socket.socket) -> None:
    cmd = request.get("cmd")
    if cmd == "doctor":
        _reply(sock, status="ok", text=entry.doctor().splitlines())
        return
    src = frames.array(request["src"], writeable=False)
    params = _params(request)
    if cmd == "measure":
        _reply(sock, status="ok", text=entry.measure(src, params))
        return
    if cmd != "render":
        raise RuntimeError(f"unknown command {cmd!r}")
    dst = frames.array(request["dst"], writeable=True)
    neighbours = [(int(k), frames.array(spec, False)) for k, spec in request["neighbours"]]
    seconds = entry.render(src, dst, params, neighbours=neighbours)
    del src, neighbours  # views of the shared buffer: none outlives the request
    shape = " ".join(str(v) for v in dst.shape)
    _reply(
        sock,
        status="ok",
        shape=shape,
        dtype=dst.dtype.name,
        seconds=f"{seconds or 0.0:.6f}",
        rss_kb=_rss_kb(),
    )


def serve(sock: socket.socket) -> None:
    """Answer requests until the plugin closes its end (EOF), which it does at unload or death."""
    frames = Frames()
    while True:
        data, fds, _flags, _addr = socket.recv_fds(sock, MAX_REQUEST, 1)
        if not data:
            return
        try:
            request = json.loads(data)
            if request.get("arena"):
                if not fds:
                    raise RuntimeError("the plugin announced a shared buffer but sent none")
                frames.adopt(fds[0], int(request["arena"]))
            else:
                for fd in fds:
                    os.close(fd)
            handle(request, frames, sock)
        except Exception as exc:
            log.error("%s failed: %s", "request", traceback.format_exc())
            _reply(sock, status="error", text=_line(exc))


def main(fd: int) -> None:
    sock = socket.socket(fileno=fd)
    host = os.environ.get("KWAFLUX_OFX_HOST_PID")
    if host and os.getppid() != int(host):
        return  # the host went before this process started: nobody to serve
    log_file = os.environ.get("KWAFLUX_OFX_WORKER_LOG")
    if log_file:
        entry.configure_logging(log_file)
    _reply(
        sock,
        status="ready",
        text=f"python {sys.version.split()[0]}, numpy {np.__version__}, pid {os.getpid()}",
    )
    try:
        serve(sock)
    except (BrokenPipeError, ConnectionResetError):
        pass  # the host went mid-reply
