"""A bundle with its own valence and arousal (an HSEmotion-layout graph, random weights): the ROS expression of each
event carries the model's valence and arousal, not the category table's."""

import numpy as np
import pytest

pytest.importorskip("torch")

from export.per_frame import LAYOUTS, convert_per_frame  # noqa: E402
from export.real_inputs import real_photo_crops  # noqa: E402
from service.config import SAMPLE_CLIP, Settings  # noqa: E402
from service.inference import OnnxEngine  # noqa: E402
from tests.per_frame_graphs import hsemotion_graph  # noqa: E402


def test_the_models_valence_arousal_reach_the_ros_expression(tmp_path):
    from service.emotions import EmotionStage
    from service.ros.messages import Expression, IdsList
    from service.ros.publisher import RosPublisher
    from service.ros.settings import RosSettings
    from service.state import LiveState
    from service.windows import Window
    from tests.ros.dds import own_participant, reader, take_until

    bundle = convert_per_frame(hsemotion_graph(tmp_path / "enet_b0_8_va_mtl.onnx"), LAYOUTS["hsemotion"],
                               tmp_path / "hs", SAMPLE_CLIP)
    engine = OnnxEngine(bundle)
    crops = np.stack(real_photo_crops(224, 3)[:16])
    window = Window(track_id=5, faces=crops, scene=None, t_start=0.0, t_end=2.0, box=(10, 10, 50, 50),
                    frame_ids=tuple(range(16)))
    (event,) = EmotionStage(Settings(_env_file=None), engine).classify([("cam", window)], None)
    _, va = engine.predict_va(crops[None])
    assert event.va_source == "model" and event.valence == pytest.approx(float(np.clip(va[0, 0], -1, 1)), abs=1e-4)
    dp = own_participant()
    publisher = RosPublisher(RosSettings(), LiveState(), lambda source, t: IdsList().header)
    expressions = reader(dp, f"/humans/faces/{publisher.face_id('cam', 5)}/expression", Expression)
    publisher.on_event(event)
    (message,) = take_until(expressions, bool)[:1]
    assert message.valence == pytest.approx(event.valence, abs=1e-6)
    assert message.arousal == pytest.approx(event.arousal, abs=1e-6)
