"""Clips an attacker would upload, made in a moment with PyAV (for bench faults and tests/api/test_upload_budgets.py):
black frames at any declared size, decoding bombs (a few packets repeated: a long 4K clip in a few MB), and an H.264
stream whose header lies about the size of its frames."""

from __future__ import annotations

import io
from fractions import Fraction
from pathlib import Path

import av
import numpy as np


def _encode(out, width: int, height: int, frames: int, fps: int) -> None:
    stream = out.add_stream("libx264", rate=fps)
    stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
    stream.options = {"preset": "ultrafast", "tune": "zerolatency"}  # no B-frames: packets in display order
    picture = av.VideoFrame.from_ndarray(np.zeros((height, width, 3), np.uint8), format="bgr24")
    for index in range(frames):
        picture.pts = index
        for packet in stream.encode(picture):
            out.mux(packet)
    for packet in stream.encode():
        out.mux(packet)


def black_clip(path: str | Path, width: int, height: int, frames: int, fps: int = 25) -> Path:
    """An MP4 of `frames` black frames at width x height: its header says all of that truthfully."""
    path = Path(path)
    with av.open(str(path), "w") as out:
        _encode(out, width, height, frames, fps)
    return path


def raw_h264(width: int, height: int, frames: int, fps: int = 25) -> bytes:
    """An H.264 elementary stream (no container: no duration or frame count in any header)."""
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="h264") as out:
        _encode(out, width, height, frames, fps)
    return buffer.getvalue()


def lying_clip(path: str | Path, said: tuple[int, int], real: tuple[int, int], frames: int = 10) -> Path:
    """An H.264 stream whose first parameter set (all a prober reads) says `said` frames, followed by one with
    `real` ones: the header lies about the size of all frames after the first `frames`."""
    path = Path(path)
    path.write_bytes(raw_h264(*said, frames) + raw_h264(*real, frames))
    return path


def decoding_bomb(path: str | Path, width: int = 3840, height: int = 2160, fps: int = 60,
                  seconds: float = 590.0) -> Path:
    """An MP4 that declares `seconds` of width x height black frames at `fps` (the issue-35 bomb: 4K, 60 fps, 590 s,
    35,400 frames, a few MB): one second is encoded, then its frames after the first are repeated (all-skip
    P frames of a black picture), so the header's frame count and duration are real."""
    path = Path(path)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "ultrafast", "tune": "zerolatency", "keyint": "100000"}
        picture = av.VideoFrame.from_ndarray(np.zeros((height, width, 3), np.uint8), format="bgr24")
        packets = []
        for index in range(fps):
            picture.pts = index
            packets += [bytes(p) for p in stream.encode(picture)]
        packets += [bytes(p) for p in stream.encode()]
        total = round(seconds * fps)
        for index in range(total):
            data = packets[index] if index < len(packets) else packets[-1]
            packet = av.Packet(data)
            packet.pts = packet.dts = index
            packet.stream, packet.time_base = stream, Fraction(1, fps)
            packet.is_keyframe = index == 0
            out.mux(packet)
    return path


def looped_clip(source_path: str | Path, path: str | Path, seconds: float) -> Path:
    """A clip repeated (packets copied, time stamps shifted: no re-encoding) to about `seconds`."""
    path = Path(path)
    with av.open(str(source_path)) as source, av.open(str(path), "w") as out:
        stream_in = source.streams.video[0]
        stream_out = out.add_stream_from_template(stream_in)
        packets = [p for p in source.demux(stream_in) if p.dts is not None]
        span = max(p.pts for p in packets) + packets[1].duration if len(packets) > 1 else 1
        span = max(span, int(round(float(stream_in.duration or 0)))) or span
        length = float(stream_in.duration * stream_in.time_base) if stream_in.duration else 6.0
        for loop in range(max(1, round(seconds / length))):
            for packet in packets:
                packet.stream = stream_out
                copy = av.Packet(bytes(packet))
                copy.pts, copy.dts = packet.pts + loop * span, packet.dts + loop * span
                copy.time_base, copy.stream = packet.time_base, stream_out
                copy.is_keyframe = packet.is_keyframe
                out.mux(copy)
    return path
