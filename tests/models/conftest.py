"""Tiny-backbone fixtures: 4-layer, 64-wide CLIP towers, 64 px frames, 4-frame windows; nothing is downloaded."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest
import torch

BATCH, FRAMES, SIZE = 2, 4, 64


@pytest.fixture(autouse=True)
def _seeded():
    torch.manual_seed(0)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny models gain nothing from intra-op threads, and on a busy 2-core machine two threads spinning against
    other processes made these tests many times slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def tiny_backbone():
    from models.backbone import create_backbone

    return create_backbone("tiny")


@pytest.fixture
def window():
    """A normalised random batch of windows: [BATCH, FRAMES, 3, SIZE, SIZE]."""
    return torch.randn(BATCH, FRAMES, 3, SIZE, SIZE)


@pytest.fixture
def scene_window():
    return torch.randn(BATCH, FRAMES, 3, SIZE, SIZE)
