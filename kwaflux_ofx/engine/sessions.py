"""onnxruntime sessions: one per (model, provider, precision), created once, shared by all threads."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import numpy as np

from kwaflux_ofx.engine.spec import ModelSpec
from kwaflux_ofx.errors import KwafluxError, ModelError, first_line

log = logging.getLogger(__name__)

CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"


def is_out_of_memory(exc: BaseException) -> bool:
    """True for the allocation failures onnxruntime reports when a tile is too big for the device."""
    text = str(exc).lower()
    return any(
        s in text
        for s in ("out of memory", "failed to allocate", "bad_alloc", "cudaerrormemoryallocation")
    )


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
        try:
            if self.provider == CUDA:
                out = self._run_bound(feeds)
            else:
                out = np.asarray(
                    self.session.run([self.spec.output_name], feeds)[0], dtype=np.float32
                )
        except Exception as exc:
            if is_out_of_memory(exc):
                raise  # the engine retries with smaller tiles
            # A model whose graph disagrees with its metadata fails here: name it, in one line.
            raise ModelError(f"inference failed: {first_line(exc)}", self.spec.path) from None
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


class SessionCache:
    """Creates sessions lazily and keeps them for the engine's lifetime."""

    def __init__(self, device: str = "auto", threads: int | None = None):
        if device not in ("auto", "cpu", "cuda"):
            raise KwafluxError(f"device must be auto, cpu or cuda, not {device!r}")
        self.device = device
        self.threads = threads
        self._lock = threading.Lock()
        self._runners: dict[tuple[str, str, str], ModelRunner] = {}
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

    def runner(self, spec: ModelSpec) -> ModelRunner:
        providers = self.wanted_providers()
        path = spec.path
        precision = "fp32"
        if providers[0] == CUDA:
            fp16 = path.with_name(path.name.removesuffix(".onnx") + ".fp16.onnx")
            if fp16.is_file():
                path, precision = fp16, "fp16"
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

    def _options(self):
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        if self.threads:
            opts.intra_op_num_threads = int(self.threads)
        return opts

    def _create(self, spec: ModelSpec, path: Path, providers: list[str]) -> ModelRunner:
        import onnxruntime as ort

        run_spec = spec
        if path != spec.path:
            run_spec = ModelSpec.from_onnx(path)
        try:
            sess = ort.InferenceSession(str(path), self._options(), providers=providers)
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
            return self._create(spec, spec.path, [CPU])
        return ModelRunner(run_spec, sess, sess.get_providers()[0])

    @property
    def providers_in_use(self) -> list[str]:
        with self._lock:
            return sorted({r.provider for r in self._runners.values()})
