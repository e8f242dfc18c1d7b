"""The remote engine: windows classified by a model bundle served on a Triton Inference Server, over KServe v2 (gRPC
by default, or HTTP) through tritonclient, NVIDIA's own client; behind the Engine protocol.

    triton://HOST[:8001]/MODEL         gRPC
    triton+http://HOST[:8000]/MODEL    HTTP

At connect() the model's contract is read from its configuration (the `emotion_contract` parameter that
`python -m export triton` writes: service/inference/remote_contract.py) and checked against what the server says the
model serves; a split bundle's frame encoder and window head are checked too, and then only frames not encoded
before go out (window_features, the caller's frame cache), as uint8 pixels where the graph normalises them. Every
call is bounded by the per-request deadline: what fails or is late raises RemoteUnavailable at once (FailoverEngine
then runs the windows locally); a server that answers but is not what the contract says raises RemoteContractError.
One client per engine for gRPC (thread-safe); one per thread for HTTP (tritonclient.http runs on gevent, whose hub
belongs to a thread), each call under a gevent.Timeout.
"""

from __future__ import annotations

import logging
import threading
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from service.bundle import BundleSpec, ModelBundle
from service.errors import ServiceError
from service.inference.engine import FrameFeatureCache, normalise, probabilities, window_features
from service.inference.remote_contract import RemoteContract, differences, read_contract
from service.windows import Window

log = logging.getLogger(__name__)

SCHEMES = {"triton": "grpc", "triton+grpc": "grpc", "triton+http": "http"}
DEFAULT_PORTS = {"grpc": 8001, "http": 8000}


class RemoteUnavailable(Exception):
    """The server cannot answer now: unreachable, down, failing, or past the deadline. The message says which."""


class RemoteContractError(ServiceError):
    """The server answers, but is not a Triton, lacks the model, or serves one that differs from its contract."""


@dataclass(frozen=True)
class RemoteAddress:
    url: str  # normalised: scheme://host:port/model (what events and /v1/state name)
    protocol: str  # grpc | http
    server: str  # host:port
    model: str


def parse_engine_url(url: str) -> RemoteAddress:
    """triton[+grpc|+http]://HOST[:PORT]/MODEL (pure); ValueError names what is wrong."""
    parts = urllib.parse.urlsplit(url.strip())
    protocol = SCHEMES.get(parts.scheme)
    model = parts.path.strip("/")
    try:
        port = parts.port
    except ValueError:
        port = -1
    if protocol is None or not parts.hostname or not model or "/" in model or port == -1 or parts.query:
        raise ValueError(f"engine {url!r}: expected local, triton://HOST[:PORT]/MODEL (gRPC, port 8001) or "
                         "triton+http://HOST[:PORT]/MODEL (port 8000)")
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    server = f"{host}:{port or DEFAULT_PORTS[protocol]}"
    return RemoteAddress(f"{parts.scheme}://{server}/{model}", protocol, server, model)


WINDOW_SHAPE = ("num_frames", "image_size", "channels")
WINDOW_CONTRACT = ("labels", "method", "crop", "needs_scene") + WINDOW_SHAPE


def window_compatible(made: BundleSpec, served: BundleSpec, fields: tuple[str, ...] = WINDOW_CONTRACT) -> list[str]:
    """Why windows made for `made` cannot go to a model of `served` as they are (pure): what differs of `fields`
    (default: crops, frames, window span (method) and labels)."""
    return [f"{name} {getattr(served, name)!r} (windows are made for {getattr(made, name)!r})"
            for name in fields if getattr(made, name) != getattr(served, name)]


class _Grpc:
    """tritonclient.grpc with a deadline on every call; errors as InferenceServerException."""

    def __init__(self, server: str, headers: dict[str, str], root_cert: Path | None, reconnect_max_s: float):
        import tritonclient.grpc as grpcclient

        self.module = grpcclient
        # gRPC's own reconnect backoff grows to 120 s by default: a restarted server would wait that long.
        options = [("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", -1),
                   ("grpc.initial_reconnect_backoff_ms", 100), ("grpc.min_reconnect_backoff_ms", 100),
                   ("grpc.max_reconnect_backoff_ms", max(100, int(reconnect_max_s * 1000)))]
        self.client = grpcclient.InferenceServerClient(server, ssl=root_cert is not None,
                                                       root_certificates=str(root_cert) if root_cert else None,
                                                       channel_args=options)
        self.headers = headers or None

    def live(self, timeout: float) -> bool:
        return self.client.is_server_live(headers=self.headers, client_timeout=timeout)

    def ready(self, model: str, version: str, timeout: float) -> bool:
        return self.client.is_model_ready(model, version, headers=self.headers, client_timeout=timeout)

    def config(self, model: str, version: str, timeout: float) -> dict:
        return self.client.get_model_config(model, version, headers=self.headers, as_json=True,
                                            client_timeout=timeout)["config"]

    def metadata(self, model: str, version: str, timeout: float) -> dict:
        return self.client.get_model_metadata(model, version, headers=self.headers, as_json=True,
                                              client_timeout=timeout)

    def models(self, timeout: float) -> list[str]:
        index = self.client.get_model_repository_index(headers=self.headers, as_json=True, client_timeout=timeout)
        return sorted({m["name"] for m in index.get("models", [])})

    def statistics(self, model: str, timeout: float) -> dict:
        return self.client.get_inference_statistics(model, headers=self.headers, as_json=True,
                                                    client_timeout=timeout)

    def infer(self, model: str, version: str, feeds: dict[str, np.ndarray], outputs: list[str],
              timeout: float) -> list[np.ndarray]:
        from tritonclient.utils import np_to_triton_dtype

        inputs = []
        for name, array in feeds.items():
            tensor = self.module.InferInput(name, list(array.shape), np_to_triton_dtype(array.dtype))
            tensor.set_data_from_numpy(array)
            inputs.append(tensor)
        result = self.client.infer(model, inputs, model_version=version, headers=self.headers, client_timeout=timeout,
                                   outputs=[self.module.InferRequestedOutput(name) for name in outputs])
        return [result.as_numpy(name) for name in outputs]

    def close(self) -> None:
        self.client.close()


class _Http:
    """tritonclient.http: one client per calling thread (gevent), each call under a gevent.Timeout."""

    def __init__(self, server: str, headers: dict[str, str], root_cert: Path | None, deadline_s: float):
        import gevent
        import tritonclient.http as httpclient

        self.module, self.gevent = httpclient, gevent
        self.server, self.headers, self.root_cert, self.deadline_s = server, headers or None, root_cert, deadline_s
        self._local = threading.local()
        self._clients: list[tuple[threading.Thread, object]] = []
        self._lock = threading.Lock()

    def _client(self):
        client = getattr(self._local, "client", None)
        if client is None:
            ssl = self.root_cert is not None
            client = self.module.InferenceServerClient(
                self.server, connection_timeout=self.deadline_s, network_timeout=self.deadline_s, ssl=ssl,
                ssl_options={"ca_certs": str(self.root_cert)} if ssl else None)
            self._local.client = client
            with self._lock:  # a client of a thread that has ended is dropped (its sockets close with it)
                self._clients = [(t, c) for t, c in self._clients if t.is_alive()]
                self._clients.append((threading.current_thread(), client))
        return client

    def _bounded(self, timeout: float, call):
        with self.gevent.Timeout(timeout, RemoteUnavailable(f"no answer within {timeout:.2f} s")):
            return call(self._client())

    def live(self, timeout: float) -> bool:
        return self._bounded(timeout, lambda c: c.is_server_live(headers=self.headers))

    def ready(self, model: str, version: str, timeout: float) -> bool:
        return self._bounded(timeout, lambda c: c.is_model_ready(model, version, headers=self.headers))

    def config(self, model: str, version: str, timeout: float) -> dict:
        return self._bounded(timeout, lambda c: c.get_model_config(model, version, headers=self.headers))

    def metadata(self, model: str, version: str, timeout: float) -> dict:
        return self._bounded(timeout, lambda c: c.get_model_metadata(model, version, headers=self.headers))

    def models(self, timeout: float) -> list[str]:
        index = self._bounded(timeout, lambda c: c.get_model_repository_index(headers=self.headers))
        return sorted({m["name"] for m in index})

    def statistics(self, model: str, timeout: float) -> dict:
        return self._bounded(timeout, lambda c: c.get_inference_statistics(model, headers=self.headers))

    def infer(self, model: str, version: str, feeds: dict[str, np.ndarray], outputs: list[str],
              timeout: float) -> list[np.ndarray]:
        from tritonclient.utils import np_to_triton_dtype

        inputs = []
        for name, array in feeds.items():
            tensor = self.module.InferInput(name, list(array.shape), np_to_triton_dtype(array.dtype))
            tensor.set_data_from_numpy(array, binary_data=True)
            inputs.append(tensor)
        requested = [self.module.InferRequestedOutput(name, binary_data=True) for name in outputs]
        result = self._bounded(timeout, lambda c: c.infer(model, inputs, model_version=version,
                                                          headers=self.headers, outputs=requested))
        return [result.as_numpy(name) for name in outputs]

    def close(self) -> None:
        with self._lock:
            clients, self._clients = [c for _, c in self._clients], []
        for client in clients:
            try:
                client.close()
            except Exception:  # a client of another thread's hub may refuse to close from here; it dies with it
                log.debug("HTTP client not closed", exc_info=True)


@dataclass
class _Model:
    name: str
    contract: RemoteContract
    max_batch_size: int


class TritonEngine:
    """A model on a Triton server (Engine protocol once connected). `deadline_s` bounds each predict call as a
    whole (a split bundle's encoder and head requests share it)."""

    def __init__(self, address: RemoteAddress, deadline_s: float = 0.5, headers: dict[str, str] | None = None,
                 root_cert: Path | None = None, model_version: str = "", reconnect_max_s: float = 2.0):
        self.address, self.url, self.deadline_s, self.version = address, address.url, deadline_s, model_version
        if address.protocol == "grpc":
            self._new_client = lambda: _Grpc(address.server, headers or {}, root_cert, reconnect_max_s)
        else:
            self._new_client = lambda: _Http(address.server, headers or {}, root_cert, deadline_s)
        self._client = self._new_client()
        self.whole: _Model | None = None
        self.parts: dict[str, _Model] | None = None
        self.spec: BundleSpec | None = None
        self.bundle: ModelBundle | None = None
        self.providers = [f"Triton ({address.url})"]
        self.outputs: list[str] = []
        self._lock = threading.Lock()
        self.requests = self.windows = self.bytes_sent = self.bytes_received = 0

    @property
    def labels(self) -> list[str]:
        return self.spec.labels

    # ---- connecting ---------------------------------------------------------------------------------------

    def _call(self, what: str, call, deadline: float):
        """One client call with what is left of the deadline; every failure to answer as RemoteUnavailable."""
        from tritonclient.utils import InferenceServerException

        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise RemoteUnavailable(f"{self.url}: deadline passed before {what}")
        try:
            return call(remaining)
        except RemoteUnavailable as exc:
            raise RemoteUnavailable(f"{self.url}: {what}: {exc}") from None
        except InferenceServerException as exc:
            raise RemoteUnavailable(f"{self.url}: {what}: {exc.status() or ''} {exc.message()}".strip()) from None
        except Exception as exc:  # sockets, HTTP parsing, gevent: the server did not answer as a server does
            raise RemoteUnavailable(f"{self.url}: {what}: {type(exc).__name__}: {exc}") from None

    def _read_model(self, name: str, timeout: float) -> _Model:
        from tritonclient.utils import InferenceServerException

        def deadline() -> float:
            return time.monotonic() + timeout

        try:
            config = self._client.config(name, self.version, timeout)
        except InferenceServerException as exc:
            if str(exc.status()) in ("StatusCode.NOT_FOUND", "400", "404"):
                models = self._call("listing models", self._client.models, deadline())
                raise RemoteContractError(f"{self.url}: the server has no model {name!r}"
                                          f"{' version ' + self.version if self.version else ''} "
                                          f"(it serves: {', '.join(models) or 'none'})") from None
            raise RemoteUnavailable(f"{self.url}: model config of {name}: {exc.status()} {exc.message()}") from None
        except (OSError, RemoteUnavailable) as exc:  # refused, reset, unreachable, timed out
            raise RemoteUnavailable(f"{self.url}: model config of {name}: {exc}") from None
        except Exception as exc:
            raise RemoteContractError(f"{self.url}: not a Triton server (no model configuration extension: "
                                      f"{type(exc).__name__}: {exc})") from None
        try:
            contract = read_contract(config)
        except ValueError as exc:
            raise RemoteContractError(f"{self.url}: model {name!r}: {exc}") from None
        metadata = self._call(f"metadata of {name}", lambda t: self._client.metadata(name, self.version, t),
                              deadline())
        max_batch = int(config.get("max_batch_size", 0))
        found = differences(contract, metadata, max_batch)
        if found:
            raise RemoteContractError(f"{self.url}: model {name!r} differs from its contract: {'; '.join(found)}")
        if not self._call(f"readiness of {name}", lambda t: self._client.ready(name, self.version, t), deadline()):
            raise RemoteUnavailable(f"{self.url}: model {name!r} is not ready")
        return _Model(name, contract, max_batch)

    def connect(self, timeout: float | None = None, fresh: bool = False) -> None:
        """Read and check the model's contract (and its parts'): RemoteUnavailable when the server does not answer
        (each call within `timeout`, default the deadline), RemoteContractError when it answers wrongly. Sets spec;
        safe to call again (health checks). `fresh`: on a new client first, for a server that went away: a gRPC
        channel that lost its server waits out its own reconnect backoff and fails every call meanwhile."""
        from tritonclient.utils import InferenceServerException

        if fresh:
            old, self._client = self._client, self._new_client()
            old.close()
        timeout = timeout or self.deadline_s
        try:
            live = self._client.live(timeout)
        except InferenceServerException as exc:
            status, message = str(exc.status()), exc.message() or ""
            if status == "StatusCode.UNIMPLEMENTED" or (status == "StatusCode.UNAVAILABLE"
                                                        and "Socket closed" in message):
                raise RemoteContractError(f"{self.url}: something answers at {self.address.server}, but not a "
                                          f"Triton gRPC server ({status}: {message}; Triton's HTTP port is "
                                          "triton+http://)") from None
            raise RemoteUnavailable(f"{self.url}: {status} {message}") from None
        except (OSError, RemoteUnavailable) as exc:  # refused, reset, unreachable, timed out
            raise RemoteUnavailable(f"{self.url}: {type(exc).__name__}: {exc}") from None
        except Exception as exc:
            raise RemoteContractError(f"{self.url}: not a Triton server ({type(exc).__name__}: {exc})") from None
        if not live:
            raise RemoteUnavailable(f"{self.url}: the server is not live")
        whole = self._read_model(self.address.model, timeout)
        if whole.contract.role != "whole":
            raise RemoteContractError(f"{self.url}: model {whole.name!r} is a {whole.contract.role}; name the whole "
                                      "model in the URL")
        parts = None
        if whole.contract.parts:
            parts = {role: self._read_model(name, timeout) for role, name in whole.contract.parts.items()}
            for role, part in parts.items():
                if part.contract.role != role or part.contract.bundle != whole.contract.bundle:
                    raise RemoteContractError(f"{self.url}: model {part.name!r} is not the {role} of "
                                              f"{whole.contract.bundle.name}")
        with self._lock:
            self.whole, self.parts, self.spec = whole, parts, whole.contract.bundle
            self.bundle = ModelBundle(Path(whole.name), self.spec)
            # The logits, and the model's own valence/arousal where the bundle has them (as OnnxEngine reads them).
            self.outputs = ["logits"] + ([self.spec.valence_arousal] if self.spec.valence_arousal else [])
        log.info("remote model %s on %s (%s; %s pixels%s)", self.spec.name, self.url, self.address.protocol,
                 whole.contract.pixels, ", frame encoder + window head" if parts else "")

    def statistics(self, timeout: float = 2.0) -> dict[str, dict]:
        """Triton's statistics extension for the model and its parts: model name -> its model_stats entry."""
        names = [self.whole.name] + [p.name for p in (self.parts or {}).values()]
        out = {}
        for name in names:
            stats = self._call(f"statistics of {name}", lambda t: self._client.statistics(name, t),
                               time.monotonic() + timeout)
            out[name] = stats["model_stats"][0]
        return out

    def close(self) -> None:
        self._client.close()

    # ---- predicting ---------------------------------------------------------------------------------------

    def _pixels(self, model: _Model, crops: np.ndarray) -> np.ndarray:
        if model.contract.pixels == "uint8":
            return np.ascontiguousarray(crops)
        if crops.ndim == 4:  # frames [N, H, W, C]
            return normalise(crops[None], self.spec.mean, self.spec.std)[0]
        return normalise(crops, self.spec.mean, self.spec.std)

    def _infer(self, model: _Model, feeds: dict[str, np.ndarray], outputs: list[str],
               deadline: float) -> list[np.ndarray]:
        """One model's outputs for feeds batched on axis 0, in requests of at most its max_batch_size."""
        size = len(next(iter(feeds.values())))
        step = model.max_batch_size
        chunks = []
        for start in range(0, size, step):
            chunk = {name: np.ascontiguousarray(a[start:start + step]) for name, a in feeds.items()}
            out = self._call(f"{model.name} inference", lambda t: self._client.infer(
                model.name, self.version, chunk, outputs, t), deadline)
            with self._lock:
                self.requests += 1
                self.bytes_sent += sum(a.nbytes for a in chunk.values())
                self.bytes_received += sum(a.nbytes for a in out)
            chunks.append(out)
        return [np.concatenate(parts) for parts in zip(*chunks)]

    def _read(self, outputs: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray | None]:
        return probabilities(outputs[0], self.spec), (outputs[1].astype(np.float32) if len(outputs) > 1 else None)

    def predict(self, faces: np.ndarray, scene: np.ndarray | None = None) -> np.ndarray:
        return self.predict_va(faces, scene)[0]

    def predict_va(self, faces: np.ndarray, scene: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None]:
        return self._predict_whole(faces, scene, time.monotonic() + self.deadline_s)

    def _predict_whole(self, faces: np.ndarray, scene: np.ndarray | None,
                       deadline: float) -> tuple[np.ndarray, np.ndarray | None]:
        if self.whole is None:
            raise RemoteUnavailable(f"{self.url}: not connected")
        feeds = {"faces": self._pixels(self.whole, faces)}
        if self.spec.needs_scene:
            if scene is None:
                raise ValueError(f"bundle {self.spec.name} needs scene crops")
            feeds["scene"] = self._pixels(self.whole, scene)
        return self._read(self._infer(self.whole, feeds, self.outputs, deadline))

    def predict_windows(self, items: list[tuple[str, Window]], cache: FrameFeatureCache | None = None) -> np.ndarray:
        return self.predict_windows_va(items, cache)[0]

    def predict_windows_va(self, items: list[tuple[str, Window]], cache: FrameFeatureCache | None = None
                           ) -> tuple[np.ndarray, np.ndarray | None]:
        """(probabilities, the model's own valence/arousal or None) for (source, Window) pairs, within the
        deadline. With a cache and a split bundle only the frames the cache lacks go to the frame encoder, then
        every window's features to the window head."""
        deadline = time.monotonic() + self.deadline_s
        with self._lock:
            whole, parts = self.whole, self.parts
        if whole is None:
            raise RemoteUnavailable(f"{self.url}: not connected")
        if cache is None or parts is None:
            faces = np.stack([w.faces for _, w in items])
            scene = np.stack([w.scene for _, w in items]) if items[0][1].scene is not None else None
            result = self._predict_whole(faces, scene, deadline)
        else:
            encoder, head = parts["frame_encoder"], parts["window_head"]
            feeds = window_features(items, cache, self.spec, lambda crops: self._infer(
                encoder, {"frames": self._pixels(encoder, crops)}, ["features"], deadline)[0])
            result = self._read(self._infer(head, feeds, self.outputs, deadline))
        with self._lock:
            self.windows += len(items)
        return result
