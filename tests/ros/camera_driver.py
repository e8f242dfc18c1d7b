"""A robot's camera driver in a process of its own: a second DDS participant publishing the bundled sample clip,
looped, on a ROS image topic, as a real driver would (and going away with its process, as a real driver does on
every restart). Driven by lines on its standard input:

    pause     stop publishing (the driver is alive, the topic falls silent)
    resume    publish again
    exit      end the process (DDS tells the readers its writer is gone)

    python -m tests.ros.camera_driver --topic /camera/image_raw/compressed --kind jpeg --qos best_effort

It prints "ready" once its writer exists, and "sent N" after each `pause`. It inherits ROS_DOMAIN_ID and
CYCLONEDDS_URI from whoever starts it (the ROS tests: loopback only)."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import threading
from pathlib import Path

from cyclonedds.domain import DomainParticipant
from cyclonedds.pub import DataWriter
from cyclonedds.topic import Topic

from service.ros.messages import CompressedImage, Header, Image, Time
from tests.ros.dds import BEST_EFFORT, RELIABLE, encode, sample_frames


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--topic", required=True)
    parser.add_argument("--kind", default="jpeg", help="jpeg, png or an Image encoding (bgr8, rgb8, mono8, ...)")
    parser.add_argument("--qos", choices=["best_effort", "reliable"], default="best_effort")
    parser.add_argument("--fps", type=float, default=12.0)
    args = parser.parse_args(argv)
    dp = DomainParticipant(int(os.environ.get("ROS_DOMAIN_ID", "0")))
    message_type = CompressedImage if args.kind in ("jpeg", "png") else Image
    writer = DataWriter(dp, Topic(dp, "rt" + args.topic, message_type),
                        qos=BEST_EFFORT if args.qos == "best_effort" else RELIABLE)
    frames = [encode(image, args.kind, Header(Time(0, 0), "driver_camera")) for image in sample_frames(4)]
    paused, done = threading.Event(), threading.Event()
    sent = 0

    def publish() -> None:
        nonlocal sent
        while not done.wait(1.0 / args.fps):
            if paused.is_set():
                continue
            msg = frames[sent % len(frames)]
            msg.header = Header(Time(2_000_000 + sent // 10, (sent % 10) * 100_000_000), "driver_camera")
            writer.write(msg)
            sent += 1

    threading.Thread(target=publish, daemon=True).start()
    print("ready", flush=True)
    for line in sys.stdin:
        command = line.strip()
        if command == "pause":
            paused.set()
            print(f"sent {sent}", flush=True)
        elif command == "resume":
            paused.clear()
        elif command == "exit":
            break
    done.set()
    del writer, dp  # deleted as a driver's node is on shutdown: DDS tells the readers at once


class DriverProcess:
    """The driver as a child process of a test: start, pause, resume, exit (waits for the process to end)."""

    def __init__(self, topic: str, kind: str, qos: str = "best_effort"):
        root = Path(__file__).resolve().parents[2]
        self.process = subprocess.Popen([sys.executable, "-m", "tests.ros.camera_driver", "--topic", topic,
                                         "--kind", kind, "--qos", qos], cwd=root, stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, text=True)
        if self.process.stdout.readline().strip() != "ready":
            self.exit()
            raise RuntimeError("the camera driver did not start")

    def _say(self, command: str) -> None:
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()

    def pause(self) -> int:
        self._say("pause")
        return int(self.process.stdout.readline().split()[1])

    def resume(self) -> None:
        self._say("resume")

    def exit(self) -> None:
        if self.process.poll() is None:
            try:
                self._say("exit")
                self.process.wait(10)
            except (OSError, subprocess.TimeoutExpired):
                self.process.kill()
                self.process.wait(10)


if __name__ == "__main__":
    main()
