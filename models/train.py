"""python -m models.train: train a DFER method with its paper's recipe (or --recipe FILE). The trainer lives in
models/training/ (set-up, objective, optimiser, schedule, data, evaluation, checkpoints, the epoch loop); this
module is its command line."""

import sys

from models.training.cli import main

if __name__ == "__main__":
    sys.exit(main())
