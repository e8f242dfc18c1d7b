"""The optimiser over the recipe's named learning-rate groups (`lr_groups`, fnmatch globs on parameter names; the
first group with a match wins; `base` takes the rest at `lr`). Only trainable parameters are optimised."""

from __future__ import annotations

import fnmatch

import torch

from models.recipes import Recipe


def group_of(name: str, recipe: Recipe) -> str:
    for group, spec in recipe.lr_groups.items():
        if any(fnmatch.fnmatch(name, pattern) for pattern in spec.params):
            return group
    return "base"


def build_optimizer(model: torch.nn.Module, recipe: Recipe) -> torch.optim.Optimizer:
    """One optimiser parameter group per (named group, decayed or not); each carries its `name` and `initial_lr`
    (the recipe's rate, which the schedule multiplies). A named group that matches no trainable parameter is an
    error (a misspelt pattern would otherwise train those parameters at the base rate), and so is a base rate that
    reaches no parameter (a recipe's or --lr's rate that would change nothing)."""
    rates = recipe.group_lrs()
    members: dict[tuple[str, bool], list[torch.nn.Parameter]] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        decayed = recipe.decay_biases_and_norms or param.ndim > 1
        members.setdefault((group_of(name, recipe), decayed), []).append(param)
    if not members:
        raise ValueError("the model has no trainable parameters")
    claimed = {group for group, _ in members}
    if "base" in claimed and recipe.lr is None:
        unclaimed = [n for n, p in model.named_parameters() if p.requires_grad and group_of(n, recipe) == "base"]
        raise ValueError(f"the recipe has no base lr, but {len(unclaimed)} trainable parameters of {recipe.method} "
                         f"match no lr_groups entry (e.g. {unclaimed[0]!r}): give lr, or a group for them")
    if "base" not in claimed and recipe.lr is not None:
        # e.g. PE-CLIP: adapters and prompts have their own rates, so a base rate (or --lr) would change nothing
        raise ValueError(f"the base lr {recipe.lr:g} reaches no parameter of {recipe.method}: every trainable "
                         f"parameter is in lr_groups {', '.join(recipe.lr_groups)}. Drop lr (and --lr), or set "
                         "the groups' rates")
    unmatched = set(recipe.lr_groups) - claimed
    if unmatched:
        raise ValueError(f"lr_groups {', '.join(sorted(unmatched))} match no trainable parameter of "
                         f"{recipe.method} (patterns are fnmatch globs on names such as "
                         f"{next(n for n, p in model.named_parameters() if p.requires_grad)!r})")
    groups = [{"params": params, "name": group, "lr": rates[group], "initial_lr": rates[group],
               "weight_decay": recipe.weight_decay if decayed else 0.0}
              for (group, decayed), params in members.items()]
    if recipe.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=groups[0]["lr"], momentum=recipe.momentum)  # every group has its lr
    optimizer = torch.optim.Adam if recipe.optimizer == "adam" else torch.optim.AdamW
    return optimizer(groups, lr=groups[0]["lr"], betas=recipe.betas)


def group_lrs(optimizer: torch.optim.Optimizer) -> dict[str, float]:
    """The current rate of each named group (a group split by weight decay has one rate)."""
    return {group["name"]: group["lr"] for group in optimizer.param_groups}


def scale_lrs(optimizer: torch.optim.Optimizer, factor: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = group["initial_lr"] * factor
