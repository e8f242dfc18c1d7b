"""A bundle trained at a recipe's own frame count runs end to end: CLIP-guided DFER's recipe trains at T = 8, its
bundle declares 8 frames, and the service buffers 8-frame windows for it, in clip analysis and live."""

import asyncio
import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from export.from_checkpoint import export_checkpoint  # noqa: E402
from models.checkpoint import save_checkpoint  # noqa: E402
from models.recipes import load_recipe  # noqa: E402
from models.training import build_training  # noqa: E402
from service.bundle import ModelBundle  # noqa: E402

FRAMES = load_recipe("clip_guided", "dfew").num_frames  # the paper's T = 8


@pytest.fixture(scope="module")
def eight_frame_bundle(tmp_path_factory):
    """A tiny CLIP-guided DFER built by the trainer from its paper recipe, checkpointed and exported."""
    out = tmp_path_factory.mktemp("cg8")
    torch.manual_seed(0)
    training = build_training("clip_guided", load_recipe("clip_guided", "dfew"), backbone="tiny", image_size=64)
    checkpoint = save_checkpoint(out / "best.pt", training.model, name="clip_guided", factory=training.factory,
                                 training={"dataset": "dfew", "fold": 1, "epoch": 1, "metrics": {}})
    return export_checkpoint(checkpoint, out / "bundle").directory


def test_the_bundle_declares_the_recipes_frames(eight_frame_bundle):
    spec = ModelBundle.load(eight_frame_bundle).spec
    assert FRAMES == 8 and spec.num_frames == 8 and spec.inputs[0].shape[1] == 8


def test_clip_analysis_buffers_eight_frame_windows(eight_frame_bundle, astronaut_clip):
    from service.analyze import analyze_clip
    from service.config import Settings
    from service.detect import create_detector
    from service.inference import OnnxEngine

    settings = Settings(_env_file=None, model=eight_frame_bundle)
    engine = OnnxEngine(ModelBundle.load(eight_frame_bundle))
    report = analyze_clip(astronaut_clip, settings, engine, create_detector(settings))
    assert report.model == engine.spec.name and report.emotions
    spans = [e.t_end - e.t_start for e in report.emotions]
    # 8 frames sampled at sample_fps span 7 sampling intervals (a 16-frame window would span 15)
    assert max(spans) == pytest.approx(7 / settings.sample_fps, abs=0.1)


def test_live_stream_buffers_eight_frame_windows(eight_frame_bundle, astronaut_clip):
    from service.api import create_app
    from service.config import Settings
    import websockets

    from tests.server import running_server

    async def first_emotion(url: str) -> dict:
        async with websockets.connect(url) as ws:
            while (event := json.loads(await ws.recv()))["type"] != "emotion":
                pass
            return event

    settings = Settings(_env_file=None, model=eight_frame_bundle, heartbeat_s=0.25, stall_s=30)
    name = ModelBundle.load(eight_frame_bundle).spec.name
    with running_server(create_app(settings, sources=[f"face={astronaut_clip}"])) as base:
        url = base.replace("http://", "ws://") + "/v1/stream"
        emotion = asyncio.run(asyncio.wait_for(first_emotion(url), 120))
    assert emotion["model"] == name
    assert np.isclose(emotion["t_end"] - emotion["t_start"], 7 / settings.sample_fps, atol=0.1)
