"""onnxruntime sessions: per (model, provider, precision[, wrap]), created once, shared by threads.

Plain sessions run the model as it is on disk (the numpy path). Wrapped sessions run it inside
the host-pixel graph of wrap.py, from a pool: on CUDA one session per stream, leased to one frame
at a time so that several frames are in flight on one card; on the CPU one shared session.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import threading
from pathlib import Path

import numpy as np

from kwaflux_ofx.engine import wrap as wrapping
from kwaflux_ofx.engine.spec import ModelSpec
from kwaflux_ofx.errors import KwafluxError, ModelError, first_line

log = logging.getLogger(__name__)

CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"
DEFAULT_STREAMS = int(os.environ.get("KWAFLUX_CUDA_STREAMS", "2"))


def is_out_of_memory(exc: BaseException) -> bool:
    """True for the allocation failures onnxruntime reports when a tile is too big for the device."""
    text = str(exc).lower()
    return any(
        s in text
        for s in ("out of memory", "failed to allocate", "bad_alloc", "cudaerrormemoryallocation")
    )


@contextlib.contextmanager
def _inference(spec: ModelSpec):
    """Out-of-memory errors pass through (the engine retries with smaller tiles); any other
    onnxruntime failure becomes one line naming the model (a graph that disagrees with its
    metadata fails here)."""
    try:
        yield
    except Exception as exc:
        if is_out_of_memory(exc):
            raise
        raise ModelError(f"inference failed: {first_line(exc)}", spec.path) from None


class ModelRunner:
    """Runs one model in one session. Thread-safe: onnxruntime sessions allow concurrent run()."""

    def __init__(self, spec: ModelSpec, session, provider: str):
        self.spec = spec
        self.session = session
        self.provider = provider
        self.dtype = np.dtype(spec.input_dtype)

    def run(self, x: np.ndarray, noise: np.ndarray | None = None) -> np.ndarray:
        """x: N×C×H×W float32 in the model's range; returns float32 N×C×H'×W'."""
        feeds = {self.spec.input_name: np.ascontiguousarray(x, dtype=self.dtype)}
        if self.spec.noise_input:
            feeds[self.spec.noise_input] = np.ascontiguousarray(noise, dtype=self.dtype)
        with _inference(self.spec):
            if self.provider == CUDA:
                out = self._run_bound(feeds)
            else:
                out = np.asarray(
                    self.session.run([self.spec.output_name], feeds)[0], dtype=np.float32
                )
        if out.ndim != 4:
            raise ModelError(f"output has rank {out.ndim}, expected 4 (NCHW)", self.spec.path)
        return out

    def _run_bound(self, feeds: dict) -> np.ndarray:
        # IO binding lets onnxruntime place the output on the device and copy it back once,
        # instead of allocating per run on the host.
        binding = self.session.io_binding()
        for name, value in feeds.items():
            binding.bind_cpu_input(name, value)
        binding.bind_output(self.spec.output_name, "cuda" if self.provider == CUDA else "cpu")
        self.session.run_with_iobinding(binding)
        return np.asarray(binding.copy_outputs_to_cpu()[0], dtype=np.float32)


class SessionPool:
    """Sessions of one wrapped model for concurrent frames. Exclusive (CUDA): one session per
    stream, each leased to one frame at a time. Shared (CPU): one session for every thread,
    since onnxruntime runs concurrently on one session and the cores are the limit."""

    def __init__(self, sessions: list, exclusive: bool):
        self.sessions = sessions
        self.exclusive = exclusive
        self._free: queue.SimpleQueue = queue.SimpleQueue()
        for sess in sessions:
            self._free.put(sess)

    @contextlib.contextmanager
    def lease(self):
        if not self.exclusive:
            yield self.sessions[0]
            return
        sess = self._free.get()
        try:
            yield sess
        finally:
            self._free.put(sess)


class GraphRunner:
    """Runs a wrapped model (wrap.py): host pixels in, host pixels out, through IO binding into
    buffers the caller owns, so no frame-sized array is made in Python."""

    def __init__(
        self,
        spec: ModelSpec,
        wrap: wrapping.Wrap,
        pool: SessionPool,
        provider: str,
        block: int = 0,
    ):
        self.spec = spec
        self.wrap = wrap
        self.pool = pool
        self.provider = provider
        self.block = block  # r: the graph gives OUT as H×r×(W·r·C) (wrap.out_block)

    def run_into(self, pixels: np.ndarray, out: np.ndarray, strength: float | None) -> bool:
        """Process C-contiguous H×W×C `pixels` into C-contiguous `out`; False when the model's
        output was not finite (NaN/inf pixels in, or a broken model): the caller redoes it on
        the numpy path, which cleans the input and names a broken model."""
        check = np.zeros((), np.float32)
        with _inference(self.spec), self.pool.lease() as sess:
            binding = sess.io_binding()
            binding.bind_input(
                wrapping.PIXELS, "cpu", 0, pixels.dtype, pixels.shape, pixels.ctypes.data
            )
            if wrapping.takes_strength(self.spec):
                value = np.array([strength or 0.0], np.float32)
                binding.bind_cpu_input(wrapping.STRENGTH, value)
            shape = out.shape
            if self.block:  # the same C-contiguous memory, as the rebuilt shuffle's row bands
                r, (oh, ow, c) = self.block, out.shape
                shape = (oh // r, r, ow * c)
            binding.bind_output(wrapping.OUT, "cpu", 0, out.dtype, shape, out.ctypes.data)
            binding.bind_output(wrapping.CHECK, "cpu", 0, check.dtype, [], check.ctypes.data)
            sess.run_with_iobinding(binding)
        return bool(np.isfinite(check))


class SessionCache:
    """Creates sessions lazily and keeps them for the engine's lifetime."""

    def __init__(
        self, device: str = "auto", threads: int | None = None, streams: int | None = None
    ):
        if device not in ("auto", "cpu", "cuda"):
            raise KwafluxError(f"device must be auto, cpu or cuda, not {device!r}")
        self.device = device
        self.threads = threads
        self.streams = max(1, int(streams or DEFAULT_STREAMS))
        self._lock = threading.Lock()
        self._runners: dict[tuple[str, str, str], ModelRunner] = {}
        self._graphs: dict[tuple, GraphRunner | None] = {}
        self._unwrapped: set[str] = set()  # models already logged as unwrappable
        self._specs: dict[str, ModelSpec] = {}
        self._cuda_failed: str | None = None

    def spec(self, path: Path) -> ModelSpec:
        key = str(path)
        with self._lock:
            if key not in self._specs:
                self._specs[key] = ModelSpec.from_onnx(path)
            return self._specs[key]

    def wanted_providers(self) -> list[str]:
        import onnxruntime as ort

        if self.device == "cpu" or self._cuda_failed:
            return [CPU]
        if CUDA in ort.get_available_providers():
            return [CUDA, CPU]
        if self.device == "cuda" and self._cuda_failed is None:
            self._cuda_failed = (
                "this onnxruntime build has no CUDA provider (install onnxruntime-gpu)"
            )
            log.warning("CUDA requested but unavailable: %s; using the CPU", self._cuda_failed)
        return [CPU]

    def _variant(self, spec: ModelSpec, providers: list[str]) -> tuple[Path, str]:
        """The file a session loads: under CUDA the shipped NAME.fp16.onnx where there is one."""
        if providers[0] == CUDA:
            fp16 = spec.path.with_name(spec.path.name.removesuffix(".onnx") + ".fp16.onnx")
            if fp16.is_file():
                return fp16, "fp16"
        return spec.path, "fp32"

    def runner(self, spec: ModelSpec) -> ModelRunner:
        providers = self.wanted_providers()
        path, precision = self._variant(spec, providers)
        key = (str(spec.path), providers[0], precision)
        with self._lock:
            runner = self._runners.get(key)
            if runner is None:
                runner = self._create(spec, path, providers)
                self._runners[key] = runner
                # After a CUDA fallback, later calls ask for the CPU key: let them find this one.
                precision = "fp16" if runner.dtype == np.float16 else "fp32"
                self._runners.setdefault((str(spec.path), runner.provider, precision), runner)
            return runner

    def _options(self, wrapped: bool = False):
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        if self.threads:
            opts.intra_op_num_threads = int(self.threads)
        if wrapped:
            # A wrapped graph is a row of frame-sized kernels: a worker that spins between them
            # gains nothing and takes a core from the decoder, the encoder or another process
            # (measured on a loaded 2-core machine: 10-30 % faster frames without spinning).
            opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        return opts

    def _start(self, source, path: Path, providers: list[str], wrapped: bool = False):
        """A session from a file name or serialized model (`wrapped`: a wrap.py graph); None
        when CUDA did not start (then this cache renders on the CPU from now on, after one
        warning)."""
        import onnxruntime as ort

        try:
            sess = ort.InferenceSession(source, self._options(wrapped), providers=providers)
        except Exception as exc:
            if providers[0] != CUDA:
                raise ModelError(f"onnxruntime cannot load it: {first_line(exc)}", path) from None
            sess = None
            reason = first_line(exc)
        else:
            reason = None if sess.get_providers()[0] == providers[0] else "session fell back to CPU"
        if providers[0] == CUDA and reason is not None:
            # onnxruntime-gpu lists CUDA even when its libraries are missing: trust get_providers().
            self._cuda_failed = reason
            log.warning("CUDA provider failed to start (%s); rendering on the CPU", reason)
            return None
        return sess

    def _create(self, spec: ModelSpec, path: Path, providers: list[str]) -> ModelRunner:
        run_spec = spec
        if path != spec.path:
            run_spec = ModelSpec.from_onnx(path)
        sess = self._start(str(path), path, providers)
        if sess is None:
            return self._create(spec, spec.path, [CPU])
        return ModelRunner(run_spec, sess, sess.get_providers()[0])

    def graph_runner(self, spec: ModelSpec, wrap: wrapping.Wrap) -> GraphRunner | None:
        """The wrapped session pool for this model and host format; None (logged once per
        model) when the model cannot be wrapped: the engine then keeps the numpy path."""
        providers = self.wanted_providers()
        path, precision = self._variant(spec, providers)
        key = (str(spec.path), providers[0], precision, wrap)
        with self._lock:
            if key not in self._graphs:
                made = self._graphs[key] = self._create_graph(spec, path, wrap, providers)
                if made is not None:
                    # After a CUDA fallback, later calls ask for the CPU key: let them find it.
                    precision = "fp16" if made.spec.input_dtype == "float16" else "fp32"
                    self._graphs.setdefault((str(spec.path), made.provider, precision, wrap), made)
            return self._graphs[key]

    def _create_graph(self, spec, path: Path, wrap, providers) -> GraphRunner | None:
        import onnx

        run_spec = spec if path == spec.path else ModelSpec.from_onnx(path)
        first = source = None
        block = 0
        try:
            model = onnx.load(str(path))
            reason = wrapping.unwrappable(model, run_spec)
            if reason is None:
                # A final pixel shuffle is rebuilt for the CPU, where transposes cost most.
                wrapped = wrapping.wrap_model(model, run_spec, wrap, bands=providers[0] == CPU)
                block = wrapping.out_block(wrapped)
                source = wrapped.SerializeToString()
                first = self._start(source, path, providers, wrapped=True)
        except Exception as exc:
            reason = f"its wrapped graph does not load ({first_line(exc, 160)})"
        if reason is not None:
            if str(path) not in self._unwrapped:
                self._unwrapped.add(str(path))
                log.info("%s: pixel work stays in numpy: %s", path, reason)
            return None
        if first is None:  # CUDA did not start
            return self._create_graph(spec, spec.path, wrap, [CPU])
        provider = first.get_providers()[0]
        exclusive = provider == CUDA
        sessions = [first]
        if exclusive:
            sessions += [
                self._start(source, path, providers, wrapped=True) for _ in range(self.streams - 1)
            ]
        return GraphRunner(run_spec, wrap, SessionPool(sessions, exclusive), provider, block)

    @property
    def providers_in_use(self) -> list[str]:
        with self._lock:
            graphs = [g for g in self._graphs.values() if g is not None]
            return sorted({r.provider for r in [*self._runners.values(), *graphs]})
