"""ONNX Runtime engine for a model bundle: uint8 windows in, class probabilities out."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnxruntime as ort

from service.bundle import BundleSpec, ModelBundle
from service.errors import BundleError

log = logging.getLogger(__name__)

# Fastest first; the service takes the first that this onnxruntime build offers.
PREFERRED_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")
GPU_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider")


def choose_providers(requested: list[str] | None, available: list[str]) -> list[str]:
    """The providers to ask ONNX Runtime for (pure). Requested ones that this build lacks are dropped with a
    warning; the CPU provider always stays last as the fallback."""
    wanted = list(requested) if requested else [p for p in PREFERRED_PROVIDERS if p in available]
    missing = [p for p in wanted if p not in available]
    if missing:
        log.warning("ONNX Runtime here has no %s (available: %s)", ", ".join(missing), ", ".join(available))
    chosen = [p for p in wanted if p in available]
    if "CPUExecutionProvider" not in chosen:
        chosen.append("CPUExecutionProvider")
    return chosen


def provider_options(providers: list[str], trt_cache_dir: str | None, trt_fp16: bool) -> list[tuple[str, dict]]:
    """Per-provider options (pure): TensorRT builds an engine per input shape, which takes minutes, so it is cached
    on disk and reused across restarts."""
    out = []
    for provider in providers:
        options: dict = {}
        if provider == "TensorrtExecutionProvider":
            options = {"trt_fp16_enable": trt_fp16}
            if trt_cache_dir:
                options |= {"trt_engine_cache_enable": True, "trt_engine_cache_path": trt_cache_dir,
                            "trt_timing_cache_enable": True, "trt_timing_cache_path": trt_cache_dir}
        out.append((provider, options))
    return out


def gpu_fallback_warning(requested: list[str] | None, got: list[str]) -> str | None:
    """A loud message when a GPU provider was asked for (or expected) and the session runs on the CPU (pure)."""
    wanted_gpu = [p for p in (requested or []) if p in GPU_PROVIDERS]
    if wanted_gpu and got[0] not in GPU_PROVIDERS:
        return (f"GPU inference was requested ({', '.join(wanted_gpu)}) but the model runs on {got[0]}: "
                "check onnxruntime-gpu is installed (not onnxruntime), the CUDA/cuDNN libraries and the driver")
    return None


def normalise(windows: np.ndarray, mean: list[float], std: list[float]) -> np.ndarray:
    """[B, T, H, W, C] uint8 -> [B, T, C, H, W] float32, (x / 255 - mean) / std per channel."""
    x = windows.astype(np.float32) * (1.0 / 255.0)
    x = (x - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)
    return np.ascontiguousarray(x.transpose(0, 1, 4, 2, 3))


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def probabilities(logits: np.ndarray, spec: BundleSpec) -> np.ndarray:
    """The bundle's probabilities: softmax of the logits divided by its calibrated temperature (1 if none)."""
    return softmax(logits.astype(np.float32) / np.float32(spec.temperature))


def check_graph_matches(session: ort.InferenceSession, spec: BundleSpec, path: Path) -> None:
    """The graph's inputs and output must be the ones bundle.json declares, fixed dimensions included."""
    graph = {i.name: i.shape for i in session.get_inputs()}
    declared = {t.name: t.shape for t in spec.inputs}
    if set(graph) != set(declared):
        raise BundleError(f"{path} has inputs {sorted(graph)}, bundle.json declares {sorted(declared)}")
    for name, shape in declared.items():
        fixed = [(i, d) for i, d in enumerate(shape) if isinstance(d, int)]
        actual = graph[name]
        if len(actual) != len(shape) or any(actual[i] != d for i, d in fixed):
            raise BundleError(f"{path}: input {name!r} has shape {actual}, bundle.json declares {shape}")
    outputs = {o.name: o.shape for o in session.get_outputs()}
    if spec.output.name not in outputs:
        raise BundleError(f"{path} has outputs {list(outputs)}, bundle.json declares {spec.output.name!r}")
    va = spec.valence_arousal
    if va is not None and (va not in outputs or len(outputs[va]) != 2 or outputs[va][1] != 2):
        raise BundleError(f"{path}: bundle.json names {va!r} as the valence/arousal output [batch, 2], the graph has "
                          f"outputs {outputs}")


def check_split_graphs(encoder: ort.InferenceSession, head: ort.InferenceSession, spec: BundleSpec,
                       directory: Path) -> None:
    """The frame encoder and window head must have the inputs and outputs the engine feeds and reads."""
    expected_head = ["features", "scene_features"] if spec.needs_scene else ["features"]
    found = {spec.frame_cache.encoder: ([i.name for i in encoder.get_inputs()], ["frames"],
                                        [o.name for o in encoder.get_outputs()], "features"),
             spec.frame_cache.head: ([i.name for i in head.get_inputs()], expected_head,
                                     [o.name for o in head.get_outputs()], "logits")}
    head_outputs = found[spec.frame_cache.head][2]
    if spec.valence_arousal is not None and spec.valence_arousal not in head_outputs:
        raise BundleError(f"{directory / spec.frame_cache.head} has outputs {head_outputs}; the engine needs "
                          f"{spec.valence_arousal!r} too")
    for name, (inputs, wanted, outputs, output) in found.items():
        if sorted(inputs) != sorted(wanted) or output not in outputs:
            raise BundleError(f"{directory / name} has inputs {inputs} and outputs {outputs}; the engine needs "
                              f"inputs {wanted} and output {output!r}")


class FrameFeatureCache:
    """Features of frames already encoded, keyed by (source, track, frame number) for face crops and (source,
    "scene", frame number) for scene crops; least recently used go first.
    One per consumer (a clip analysis, the live inference worker), so concurrent users never share keys."""

    def __init__(self, capacity: int = 4096):
        from collections import OrderedDict

        self.capacity = capacity
        self._features: OrderedDict[tuple, np.ndarray] = OrderedDict()
        self.encoded = 0  # frames that went through the encoder
        self.reused = 0  # frame slots served from the cache

    def get(self, key: tuple) -> np.ndarray | None:
        value = self._features.get(key)
        if value is not None:
            self._features.move_to_end(key)
        return value

    def put(self, key: tuple, value: np.ndarray) -> None:
        self._features[key] = value
        self._features.move_to_end(key)
        while len(self._features) > self.capacity:
            self._features.popitem(last=False)

    def __len__(self) -> int:
        return len(self._features)


def window_features(items: list, cache: FrameFeatureCache, spec: BundleSpec,
                    encode: Callable[[np.ndarray], np.ndarray]) -> dict[str, np.ndarray]:
    """The window head's inputs (features [B, T, D], and scene_features for scene-aware bundles) for (source, Window)
    pairs: every frame's features from the cache, the frames not seen before encoded first, all in one `encode` call
    (uint8 crops [N, H, W, C] -> features [N, D]). A scene frame is the whole source frame, so every track of that
    frame shares it. If `encode` raises, the cache is left as it was."""
    streams = {"features": [([(source, w.track_id, f) for f in w.frame_ids], w.faces) for source, w in items]}
    if spec.needs_scene:
        if any(w.scene is None for _, w in items):
            raise ValueError(f"bundle {spec.name} needs scene crops")
        streams["scene_features"] = [([(source, "scene", f) for f in w.frame_ids], w.scene) for source, w in items]
    missing: dict[tuple, np.ndarray] = {}
    for windows in streams.values():
        for window_keys, crops in windows:
            for key, crop in zip(window_keys, crops):
                if key not in missing and cache.get(key) is None:
                    missing[key] = crop
    if missing:
        features = encode(np.stack(list(missing.values())))
        for key, feature in zip(missing, features):
            cache.put(key, feature)
        cache.encoded += len(missing)
    cache.reused += sum(len(keys) for windows in streams.values() for keys, _ in windows) - len(missing)
    # Fetched after all puts, so a window never asks for a key its own batch evicted (capacity >> a batch).
    return {name: np.stack([np.stack([cache.get(k) for k in keys]) for keys, _ in windows]).astype(np.float32)
            for name, windows in streams.items()}


class OnnxEngine:
    def __init__(self, bundle: ModelBundle, providers: list[str] | None = None, intra_op_threads: int = 0,
                 trt_cache_dir: str | None = None, trt_fp16: bool = True):
        self.bundle = bundle
        self.spec = bundle.spec
        options = ort.SessionOptions()
        options.intra_op_num_threads = intra_op_threads
        # Idle pool threads sleep instead of spinning: a robot shares its CPU (intra_op_threads caps the rest).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        available = ort.get_available_providers()
        chosen = choose_providers(providers, available)
        try:
            self.session = ort.InferenceSession(str(bundle.onnx_path), options,
                                                providers=provider_options(chosen, trt_cache_dir, trt_fp16))
        except Exception as exc:  # onnxruntime raises its own untyped errors for unreadable graphs
            raise BundleError(f"ONNX Runtime cannot load {bundle.onnx_path}: {exc}") from None
        self.providers = self.session.get_providers()
        # A GPU build that cannot reach its GPU falls back to the CPU silently: say so loudly.
        expected = providers or [p for p in GPU_PROVIDERS if p in available]
        warning = gpu_fallback_warning(expected, self.providers)
        if warning:
            log.warning("!!! %s", warning)
        check_graph_matches(self.session, self.spec, bundle.onnx_path)
        self.encoder = self.head = None
        if self.spec.frame_cache is not None:
            # Same providers and options as the whole graph: the split graphs are the same model in two parts.
            self.encoder = ort.InferenceSession(str(bundle.directory / self.spec.frame_cache.encoder), options,
                                                providers=provider_options(chosen, trt_cache_dir, trt_fp16))
            self.head = ort.InferenceSession(str(bundle.directory / self.spec.frame_cache.head), options,
                                             providers=provider_options(chosen, trt_cache_dir, trt_fp16))
            check_split_graphs(self.encoder, self.head, self.spec, bundle.directory)
        # The graph outputs read: the logits, and the model's own valence/arousal where the bundle names them.
        self.outputs = ["logits"] + ([self.spec.valence_arousal] if self.spec.valence_arousal else [])
        log.info("model %s (%s, %d labels) on %s", self.spec.name, self.spec.method, len(self.spec.labels),
                 self.providers[0])
        self._warm_up()

    def _warm_up(self) -> None:
        """One throw-away window, so that ONNX Runtime's first-call set-up does not land on the first real face."""
        size, frames = self.spec.image_size, self.spec.num_frames
        blank = np.zeros((1, frames, size, size, self.spec.channels), np.uint8)
        self.predict(blank, blank if self.spec.needs_scene else None)

    @property
    def labels(self) -> list[str]:
        return self.spec.labels

    def predict_windows(self, items: list, cache: FrameFeatureCache | None = None) -> np.ndarray:
        """Probabilities for (source, Window) pairs (see predict_windows_va)."""
        return self.predict_windows_va(items, cache)[0]

    def predict_windows_va(self, items: list, cache: FrameFeatureCache | None = None
                           ) -> tuple[np.ndarray, np.ndarray | None]:
        """(probabilities, the model's own valence/arousal [B, 2] or None) for (source, Window) pairs. With a cache
        and a bundle that has a frame encoder, only frames not seen before are encoded (window_features) and the
        head runs per window."""
        if cache is None or self.encoder is None:
            faces = np.stack([w.faces for _, w in items])
            scene = np.stack([w.scene for _, w in items]) if items[0][1].scene is not None else None
            return self.predict_va(faces, scene)
        feeds = window_features(items, cache, self.spec, self._encode)
        return self._read(self.head.run(self.outputs, feeds))

    def _read(self, outputs: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray | None]:
        return probabilities(outputs[0], self.spec), (outputs[1].astype(np.float32) if len(outputs) > 1 else None)

    def _encode(self, crops: np.ndarray) -> np.ndarray:
        frames = normalise(crops[None], self.spec.mean, self.spec.std)[0]
        return self.encoder.run(["features"], {"frames": frames})[0]

    def predict(self, faces: np.ndarray, scene: np.ndarray | None = None) -> np.ndarray:
        """faces [B, T, H, W, C] uint8 (and scene alike for scene-aware bundles) -> probabilities [B, labels]."""
        return self.predict_va(faces, scene)[0]

    def predict_va(self, faces: np.ndarray, scene: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None]:
        """predict, and the model's own valence/arousal [B, 2] where the bundle has them (else None)."""
        spec = self.spec
        feeds = {"faces": normalise(faces, spec.mean, spec.std)}
        if spec.needs_scene:
            if scene is None:
                raise ValueError(f"bundle {spec.name} needs scene crops")
            feeds["scene"] = normalise(scene, spec.mean, spec.std)
        return self._read(self.session.run(self.outputs, feeds))
