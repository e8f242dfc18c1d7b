"""Command line: `python -m service analyze CLIP [--model BUNDLE_DIR] [--json OUT] [--plot OUT.png]`."""

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


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m service", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    commands = parser.add_subparsers(dest="command", required=True)

    analyze = commands.add_parser("analyze", help="emotion timeline of a recorded clip")
    analyze.add_argument("clip", type=Path, nargs="?", default=SAMPLE_CLIP,
                         help=f"video file (default: the bundled sample, {SAMPLE_CLIP.name})")
    analyze.add_argument("--model", type=Path, help="model bundle directory (default: the embedded fer model)")
    analyze.add_argument("--json", type=Path, metavar="OUT", help="write the report with its Contract 2 events")
    analyze.add_argument("--plot", type=Path, metavar="OUT.png", help="plot each track's probabilities over time")
    analyze.add_argument("--sample-fps", type=float, help="frames per second to analyse (default 8)")
    analyze.add_argument("--hop", type=int, help="sampled frames between windows of a track (default 8)")
    analyze.add_argument("--detector", choices=["auto", "scrfd", "yunet", "haar"])
    analyze.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def _settings(args: argparse.Namespace) -> Settings:
    overrides = {key: value for key, value in (("model", args.model), ("sample_fps", args.sample_fps),
                                                ("hop", args.hop), ("detector", args.detector)) if value is not None}
    return Settings(**overrides)


def analyze(args: argparse.Namespace) -> int:
    # Imported here so `--help` stays instant.
    from service.analyze import analyze_clip
    from service.bundle import ModelBundle
    from service.detect import create_detector
    from service.inference import OnnxEngine
    from service.report import format_timeline, plot_timeline

    settings = _settings(args)
    engine = OnnxEngine(ModelBundle.load(settings.model), settings.providers, settings.intra_op_threads)
    detector = create_detector(settings)
    started = time.perf_counter()
    report = analyze_clip(args.clip, settings, engine, detector, progress=not args.no_progress and sys.stderr.isatty())
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


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return {"analyze": analyze}[args.command](args)
    except ValidationError as exc:  # a bad EMOTION_* variable or option value
        first = exc.errors()[0]
        print(f"error: invalid setting {'.'.join(map(str, first['loc']))}: {first['msg']}", file=sys.stderr)
        return 2
    except ServiceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # e.g. an --json/--plot path in a missing directory
        print(f"error: {exc.strerror}: {exc.filename}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
