"""Command line.

    python -m service serve [--source SRC ...] [--host H] [--port P] [--model BUNDLE_DIR] [--config FILE] [--ros]
                            [--engine triton://HOST:PORT/MODEL]
    python -m service analyze CLIP [--model BUNDLE_DIR] [--engine URL] [--json OUT] [--plot OUT.png]
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from pydantic import ValidationError

from service.config import SAMPLE_CLIP, Settings
from service.errors import ServiceError

log = logging.getLogger("service")
ENGINE_HELP = ("where windows are classified: local (default), or triton://HOST[:8001]/MODEL (gRPC), "
               "triton+http://HOST[:8000]/MODEL: on that Triton server, with --model (or EMOTION_ENGINE_FALLBACK) "
               "as the local fallback while it is away (same as EMOTION_ENGINE)")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m service", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("--config", type=Path, metavar="FILE.toml", help="settings file (same as EMOTION_CONFIG_FILE)")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="watch cameras/streams/files, serve the API and the event stream")
    serve.add_argument("--source", action="append", metavar="SRC", dest="sources",
                       help="camera index, /dev/videoN, rtsp/http URL, video file or ROS 2 image topic "
                            "(ros:/camera/image_raw; repeatable; NAME=SRC names it). "
                            "Default: camera 0 if present, else the bundled sample clip, looped")
    serve.add_argument("--no-live", action="store_true", help="no live sources: serve clip uploads only")
    serve.add_argument("--ros", action="store_true", default=None,
                       help="publish faces, expressions and prompts on ROS 2 topics "
                            "(same as EMOTION_ROS__ENABLED=true; docs/ROS.md)")
    serve.add_argument("--host", help="bind address (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default 8765)")
    serve.add_argument("--model", type=Path, help="model bundle directory (default: the embedded expression-ensemble)")
    serve.add_argument("--token", help="require 'Authorization: Bearer TOKEN' (or EMOTION_TOKEN)")
    serve.add_argument("--checkpoint", type=Path, help="run a models.train checkpoint with PyTorch instead of a bundle")
    serve.add_argument("--detector", choices=["auto", "blazeface", "scrfd", "yunet", "haar"])
    serve.add_argument("--engine", metavar="URL", help=ENGINE_HELP)

    commands.add_parser("healthcheck", help="exit 0 if the local server answers /readyz with 200 (for containers)")

    analyze = commands.add_parser("analyze", help="emotion timeline of a recorded clip")
    analyze.add_argument("clip", type=Path, nargs="?", default=SAMPLE_CLIP,
                         help=f"video file (default: the bundled sample, {SAMPLE_CLIP.name})")
    analyze.add_argument("--model", type=Path, help="model bundle directory (default: the embedded expression-ensemble)")
    analyze.add_argument("--checkpoint", type=Path, help="run a models.train checkpoint with PyTorch instead of a bundle")
    analyze.add_argument("--engine", metavar="URL", help=ENGINE_HELP)
    analyze.add_argument("--json", type=Path, metavar="OUT", help="write the report with its Contract 2 events")
    analyze.add_argument("--plot", type=Path, metavar="OUT.png", help="plot each track's probabilities over time")
    analyze.add_argument("--sample-fps", type=float, help="frames per second to analyse (default 8)")
    analyze.add_argument("--hop", type=int, help="sampled frames between windows of a track (default 2)")
    analyze.add_argument("--detector", choices=["auto", "blazeface", "scrfd", "yunet", "haar"])
    analyze.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def _settings(args: argparse.Namespace) -> Settings:
    names = ("model", "sample_fps", "hop", "detector", "sources", "host", "port", "token", "checkpoint", "engine")
    overrides = {name: getattr(args, name) for name in names if getattr(args, name, None) is not None}
    if getattr(args, "ros", None):
        overrides["ros"] = {"enabled": True}
    if overrides.get("checkpoint"):
        overrides["backend"] = "pytorch"
    return Settings.load(args.config, **overrides)


def model_line(spec) -> str:
    """serve's start-up line about the model: which, where its weights came from, their licence."""
    return f"model {spec.name} ({len(spec.labels)} labels): {spec.trained_on.provenance}"


def serve(args: argparse.Namespace) -> int:
    from service.api import create_app
    from service.api.server import serve as run_server

    settings = _settings(args)
    app = create_app(settings, live=not args.no_live)
    if settings.token is None and settings.host not in ("127.0.0.1", "localhost", "::1"):
        log.warning("serving on %s without a token: anyone on the network can read the event stream", settings.host)
    print(f"serving on http://{settings.host}:{settings.port} (API docs at /docs, events at "
          f"ws://{settings.host}:{settings.port}/v1/stream); Ctrl-C stops", file=sys.stderr)
    print(model_line(app.state.model_spec), file=sys.stderr)
    run_server(app, settings, log_level="info" if args.verbose else "warning")
    return 0


def analyze(args: argparse.Namespace) -> int:
    # Imported here so `--help` stays instant.
    from service.analyze import analyze_clip
    from service.detect import create_detector
    from service.inference import create_engine
    from service.inference.base import close_engine
    from service.report import format_timeline, plot_timeline

    settings = _settings(args)
    engine = create_engine(settings)
    detector = create_detector(settings)
    started = time.perf_counter()
    try:
        report = analyze_clip(args.clip, settings, engine, detector,
                              progress=not args.no_progress and sys.stderr.isatty())
    finally:
        close_engine(engine)
    elapsed = time.perf_counter() - started
    for warning in report.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if args.json:
        args.json.write_text(report.model_dump_json(indent=2) + "\n")
    if args.plot:
        plot_timeline(report, args.plot)
    if not report.tracks:
        print(f"{args.clip}: no faces found in {report.frames_sampled} sampled frames "
              f"({report.duration:.1f} s of video); detector {report.detector}")
        return 0
    print(format_timeline(report))
    stages = ", ".join(f"{name} {s['ms_per_call']:.1f} ms" for name, s in report.stages.items())
    print(f"{report.frames_decoded} frames in {elapsed:.2f} s ({report.frames_decoded / elapsed:.1f} fps decoded, "
          f"{report.frames_sampled / elapsed:.1f} fps analysed); per call: {stages}")
    for path, what in ((args.json, "report"), (args.plot, "plot")):
        if path:
            print(f"{what} written to {path}")
    return 0


def healthcheck(args: argparse.Namespace) -> int:
    """The container HEALTHCHECK: same settings (port, token) as the server it checks."""
    import httpx

    settings = Settings()
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::") else settings.host
    headers = {"Authorization": f"Bearer {settings.token.get_secret_value()}"} if settings.token else {}
    try:
        response = httpx.get(f"http://{host}:{settings.port}/readyz", headers=headers, timeout=4)
    except httpx.HTTPError as exc:
        print(f"not ready: {exc}", file=sys.stderr)
        return 1
    print(response.text)
    return 0 if response.status_code == 200 else 1


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return {"analyze": analyze, "serve": serve, "healthcheck": healthcheck}[args.command](args)
    except ValidationError as exc:  # a bad EMOTION_* variable or option value
        first = exc.errors()[0]
        print(f"error: invalid setting {'.'.join(map(str, first['loc']))}: {first['msg']}", file=sys.stderr)
        return 2
    except ServiceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # e.g. an --json/--plot path in a missing directory, a port in use, a missing config
        print(f"error: {exc.strerror or exc}{': ' + str(exc.filename) if exc.filename else ''}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
