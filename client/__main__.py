"""Command line for the emotion-perception service.

    python -m client [--url URL] [--token TOKEN] analyze CLIP [--background] [--json OUT]
    python -m client [--url URL] [--token TOKEN] stream [--source NAME] [--count N] [--types T,...] [--jsonl]
    python -m client [--url URL] [--token TOKEN] state [--source NAME] [--json]

URL and token also come from EMOTION_URL and EMOTION_TOKEN. Exit status: 0 done, 1 the service said no (4xx/5xx or
a failed analysis), 2 usage error, local problem or service unreachable, 130 interrupted (Ctrl-C).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path

from client.emotion_client import (DEFAULT_URL, EVENT_TYPES, ClientError, EmotionClient, EmotionClientError)

EXIT_OK, EXIT_REFUSED, EXIT_LOCAL, EXIT_INTERRUPTED = 0, 1, 2, 130


class UsageError(Exception):
    """A bad option value found after parsing (exit 2, like argparse's own)."""


# Formatting: one place for how things look on a terminal.

def format_timeline(report: dict) -> str:
    """A clip report as text: a header, then per track its span, dominant label and one line per window."""
    lines = [f"{report['source']}: {report['duration']:.1f} s, {report['width']}x{report['height']} @ "
             f"{report['source_fps']:.1f} fps, {report['frames_sampled']} frames sampled at {report['sample_fps']:g} "
             f"fps; model {report['model']}; detector {report['detector']}"]
    emotions = [e for e in report.get("events", []) if e.get("type") == "emotion"]
    if not report.get("tracks"):
        lines.append("no faces found")
    for track in report.get("tracks", []):
        lines.append(f"track {track['track_id']}: {track['t_first']:.1f}-{track['t_last']:.1f} s, "
                     f"{track['windows']} windows, mostly "
                     f"{track.get('dominant_label') or 'unknown (too short for a window)'}")
        for event in emotions:
            if event["track_id"] != track["track_id"]:
                continue
            ranked = sorted(event.get("probs", {}).items(), key=lambda kv: kv[1], reverse=True)
            runner_up = f"   (next: {ranked[1][0]} {ranked[1][1]:.2f})" if len(ranked) > 1 else ""
            lines.append(f"  {event['t_start']:6.2f}-{event['t_end']:6.2f} s  {event['label']:<9} "
                         f"{event['confidence']:5.2f}{runner_up}")
    lines.extend(f"warning: {warning}" for warning in report.get("warnings", []))
    return "\n".join(lines)


def format_event(event: dict) -> str:
    """One line per event: time, source, type, then what the type carries (track, label, confidence, prompt)."""
    kind = event.get("type", "?")
    t = event.get("t_end", event.get("t"))
    fields = [f"{t:8.2f}" if isinstance(t, (int, float)) else f"{'-':>8}", f"{event.get('source', '?'):<10}",
              f"{kind:<10}"]
    if "track_id" in event:
        fields.append(f"track {event['track_id']:<3}")
    if kind == "emotion":
        fields += [f"{event.get('label', '?'):<9}", f"{event.get('confidence', 0):.2f}", event.get("prompt", "")]
    return "  ".join(fields).rstrip()


def format_state(state: dict) -> str:
    t = state.get("t")
    lines = [f"model {state.get('model')}" + (f", service time {t:.1f} s" if isinstance(t, (int, float)) else "")]
    sources = state.get("sources") or {}
    if not sources:
        lines.append("no live sources (the service analyses uploaded clips only)")
    for name, source in sources.items():
        tracks = source.get("tracks", [])
        status = source.get("status", "?")
        error = f", last error: {source['last_error']}" if source.get("last_error") else ""
        lines.append(f"{name} ({source.get('kind', '?')} {source.get('uri', '')}): {status}, "
                     f"{source.get('fps_processed', 0):g} fps processed, {len(tracks)} "
                     f"track{'s' if len(tracks) != 1 else ''}{error}")
        for track in tracks:
            label = (f"{track['label']} {track['confidence']:.2f}" if track.get("label")
                     else "no label yet (first window pending)")
            lines.append(f"  track {track['track_id']}: {label}, seen {track.get('first_seen', 0):.1f}-"
                         f"{track.get('last_seen', 0):.1f} s, box {_box(track.get('box'))}")
    return "\n".join(lines)


def _box(box) -> str:
    return "[" + ", ".join(f"{v:.0f}" for v in box) + "]" if box else "-"


# Commands

def analyze(client: EmotionClient, args: argparse.Namespace) -> int:
    to_stdout = args.json == "-"
    out = None if args.json in (None, "-") else Path(args.json)
    if out is not None and not out.parent.is_dir():  # find out before a long analysis, not after
        raise UsageError(f"cannot write {out}: directory {out.parent} does not exist")
    report = client.analyze(args.clip, background=args.background, timeout=args.max_wait)
    if out is not None:
        try:
            out.write_text(json.dumps(report, indent=2) + "\n")
        except OSError as exc:
            raise UsageError(f"cannot write {out}: {exc.strerror or exc}") from None
    print(json.dumps(report, indent=2) if to_stdout else format_timeline(report), flush=True)
    return EXIT_OK


def stream(client: EmotionClient, args: argparse.Namespace) -> int:
    types = None
    if args.types:
        types = [t.strip() for t in args.types.split(",") if t.strip()]
        unknown = sorted(set(types) - set(EVENT_TYPES))
        if unknown:
            raise UsageError(f"unknown event type {', '.join(unknown)}; types: {', '.join(EVENT_TYPES)}")
    if args.count is not None and args.count < 1:
        raise UsageError("--count must be at least 1")

    async def print_events() -> None:
        seen = 0
        events = client.stream(args.source, types=types, reconnects=args.reconnects)
        try:
            async for event in events:
                print(json.dumps(event) if args.jsonl else format_event(event), flush=True)
                seen += 1
                if args.count is not None and seen >= args.count:
                    return
        finally:
            await events.aclose()  # close the websocket now, not whenever the generator is collected

    asyncio.run(print_events())
    return EXIT_OK


def state(client: EmotionClient, args: argparse.Namespace) -> int:
    snapshot = client.state(args.source)
    print(json.dumps(snapshot, indent=2) if args.json else format_state(snapshot), flush=True)
    return EXIT_OK


COMMANDS = {"analyze": analyze, "stream": stream, "state": state}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m client", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default=os.environ.get("EMOTION_URL") or DEFAULT_URL,
                        help=f"service base URL (default: EMOTION_URL or {DEFAULT_URL})")
    parser.add_argument("--token", default=os.environ.get("EMOTION_TOKEN") or None,
                        help="bearer token (default: EMOTION_TOKEN)")
    parser.add_argument("--timeout", type=float, default=30.0, metavar="S",
                        help="seconds to wait for an ordinary answer (default 30; see analyze --max-wait)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    analyze_cmd = commands.add_parser("analyze", help="upload a clip, print its emotion timeline")
    analyze_cmd.add_argument("clip", type=Path, metavar="CLIP", help="video file")
    analyze_cmd.add_argument("--background", action="store_true",
                             help="ask for a background job and poll it (the service does so itself for large clips)")
    analyze_cmd.add_argument("--json", metavar="OUT", help="also write the full report as JSON ('-': print it "
                                                           "instead of the timeline)")
    analyze_cmd.add_argument("--max-wait", type=float, default=600.0, metavar="S",
                             help="longest wait for the whole analysis: upload, queue, processing (default 600)")

    stream_cmd = commands.add_parser("stream", help="print live events as they come (Ctrl-C stops)")
    stream_cmd.add_argument("--source", metavar="NAME", help="only this source's events (heartbeats always come)")
    stream_cmd.add_argument("--count", type=int, metavar="N", help="stop after N events")
    stream_cmd.add_argument("--types", metavar="T,...", help=f"only these event types, of {', '.join(EVENT_TYPES)}")
    stream_cmd.add_argument("--jsonl", action="store_true", help="print each event as one JSON line")
    stream_cmd.add_argument("--reconnects", type=int, default=0, metavar="N",
                            help="retry a lost connection up to N times in a row (default 0); events sent "
                                 "meanwhile are lost")

    state_cmd = commands.add_parser("state", help="print sources and the people in view with their labels")
    state_cmd.add_argument("--source", metavar="NAME", help="only this source")
    state_cmd.add_argument("--json", action="store_true", help="print the raw JSON")
    return parser


def _fail(message: str, code: int) -> int:
    print(f"error: {message}", file=sys.stderr, flush=True)
    return code


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)  # exits 2 with a usage line on bad arguments
    try:
        client = EmotionClient(args.url, args.token, timeout=args.timeout)
    except ValueError as exc:  # a malformed --url
        return _fail(str(exc), EXIT_LOCAL)
    try:
        with client:
            return COMMANDS[args.command](client, args)
    except ClientError as exc:
        hint = "; pass --token or set EMOTION_TOKEN" if exc.status == 401 else ""
        return _fail(f"{exc}{hint}", EXIT_REFUSED)
    except (EmotionClientError, UsageError) as exc:
        return _fail(str(exc), EXIT_LOCAL)
    except KeyboardInterrupt:
        print(file=sys.stderr)  # end the line after the terminal's ^C
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (e.g. `| head`): stop quietly, and keep Python from complaining at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except Exception as exc:  # a bug here or a surprising answer: still one line, not a traceback
        return _fail(f"unexpected {type(exc).__name__}: {exc}", EXIT_LOCAL)


if __name__ == "__main__":
    sys.exit(main())
