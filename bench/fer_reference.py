"""The fer package analysing a clip its own documented way, timed: run by bench/versus_fer.py with the Python of
.cache/fer-venv (`make fer-venv`: fer 25.10.3 with TensorFlow CPU, which our own environment does not install).
Standalone: it imports nothing of ours.

    .cache/fer-venv/bin/python bench/fer_reference.py CLIP [--repeats 3] [--frequency N]

Prints one JSON object: the best wall time of `fer.classes.Video(CLIP).analyze(FER())` (Haar cascade and fer's
default quantised TFLite mini-Xception; nothing saved, drawn or zipped) over the repeats, the frames analysed and
those with a face. The detector and model are made before the timing, as bench/versus_fer.py makes ours.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("clip")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--frequency", type=int, default=None, help="fer's own: analyse every Nth frame")
    args = parser.parse_args()
    logging.disable(logging.INFO)  # fer logs each run at INFO; tqdm's bar goes to stderr
    from fer import __version__
    from fer.classes import Video
    from fer.fer import FER

    detector = FER()
    times, frames, with_face = [], 0, 0
    with tempfile.TemporaryDirectory() as outdir:
        for _ in range(args.repeats):
            start = time.perf_counter()
            rows = Video(args.clip, outdir=outdir).analyze(
                detector, display=False, output="pandas", frequency=args.frequency, save_frames=False,
                save_video=False, annotate_frames=False, zip_images=False)
            times.append(time.perf_counter() - start)
            frames, with_face = len(rows), int(rows["box"].notna().sum()) if "box" in rows else 0
    print(json.dumps({"fer": __version__, "best_s": round(min(times), 3), "times_s": [round(t, 3) for t in times],
                      "frequency": args.frequency or 1, "frames_analysed": frames, "frames_with_face": with_face}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
