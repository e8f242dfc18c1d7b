"""Training a DFER method (`python -m models.train`), in parts a reader can follow:

    setup.py        build_training(method, recipe, backbone) -> Training: the model built for the recipe (frames,
                    input size, loss constants), the optimiser with the recipe's named learning-rate groups, the
                    objective, the batch mixing. Benches and tests use it instead of re-implementing the trainer.
    objective.py    TrainingObjective: what DDP wraps; label smoothing and mixed targets reach every loss term
    optim.py        named parameter groups -> SGD / Adam / AdamW
    schedule.py     warm-up, cosine with a floor, multistep, plateau on a named metric (with its stop rate)
    data.py         train / validation / test loaders (the seeded, stratified validation split of the fold)
    evaluation.py   test predictions, validation loss and metrics
    best_and_last.py last.pt (resumable), best.pt by the recipe's select_by, resume
    loop.py         one epoch of training, and run(): the epochs, metrics.jsonl and TensorBoard
    cli.py          the command line
"""

from models.training.setup import Training, build_training

__all__ = ["Training", "build_training"]
