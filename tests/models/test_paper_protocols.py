"""Protocol details that move a reproduced table (issue 22): a base rate that reaches no parameter is refused by
name; OUS validates on one steady loss and stops once training accuracy passes 80 %; DFER-CLIP keeps the epoch with
the best WAR; testing resizes the whole crop, as DFER-CLIP's release does."""

from contextlib import nullcontext

import pytest
import torch

from models.data.transforms import eval_transform
from models.recipes import load_recipe
from models.training import build_training
from models.training.distributed import Dist
from models.training.evaluation import validate
from models.training.loop import EpochStats, overfitted

from .test_training_recipes import batch, build


@pytest.mark.parametrize("method", ["pe_clip", "dfer_clip"])
def test_a_base_rate_that_reaches_no_parameter_is_refused_by_name(method):
    recipe = load_recipe(method, "ferv39k")
    assert recipe.lr is None  # every trainable parameter has its group's rate
    build_training(method, recipe, backbone="tiny", image_size=32)
    with pytest.raises(ValueError, match=f"base lr 4e-05 reaches no parameter of {method}.*lr_groups"):
        build_training(method, load_recipe(method, "ferv39k", {"lr": 4e-5}), backbone="tiny", image_size=32)


def test_ous_validation_loss_does_not_follow_the_alpha_switch():
    training = build("ous")
    faces, labels, scene = batch(training.model.bundle_cfg, size=2)
    loader = [(faces, scene, labels)]
    losses = []
    for alpha in (0.0, 1e6):  # below: every batch trains on eq. 4; above: on L_contrast alone
        training.model.alpha = alpha
        assert training.objective(faces, training.targets(faces, labels, kind="none")[1], scene)[1]["L_global"] > 0
        losses.append(validate(training, loader, "cpu", Dist(), nullcontext, False)["val_loss"])
    assert losses[0] == pytest.approx(losses[1])


def test_ous_stops_after_the_first_epoch_whose_training_accuracy_exceeds_80_percent():
    recipe = load_recipe("ous", "dfew")
    assert recipe.stop_train_accuracy == 0.8
    stats = EpochStats()
    stats.add(1.0, {}, torch.eye(4)[[0, 1, 2, 3, 0]], torch.tensor([0, 1, 2, 3, 1]))  # 4 of 5 right
    record = stats.means(Dist())
    assert record["train_acc"] == pytest.approx(0.8) and not overfitted(record, recipe)  # "exceeded 80 %"
    assert overfitted({"train_acc": 0.81}, recipe)
    assert not overfitted({"train_acc": 0.99}, load_recipe("duse", "dfew"))  # a rule only OUS's paper has


def test_dfer_clip_keeps_the_epoch_with_the_best_war_as_its_release():
    assert load_recipe("dfer_clip", "dfew").select_by == "test_war"


def test_testing_resizes_a_non_square_crop_whole():
    clip = torch.zeros(2, 3, 40, 80, dtype=torch.uint8)
    clip[..., :, :20] = 255  # a bright left quarter: a centre crop would cut it away
    out = eval_transform(32, [0.0] * 3, [1.0] * 3)(clip)
    assert out.shape == (2, 3, 32, 32)
    assert out[..., :, :6].mean() > 0.9 and out[..., :, 10:].mean() < 0.1
