import numpy as np
import pytest

from service.crops import crop_face, crop_scene, square_box
from service.windows import WindowBuffer, WindowBuffers


def test_square_box_is_centred_and_enlarged():
    assert square_box((100, 100, 40, 60), margin=0.0) == (90, 100, 60)
    x, y, side = square_box((100, 100, 50, 50), margin=0.2)
    assert side == 70 and (x, y) == (90, 90)


def test_face_crop_shapes_and_channels(astronaut_image):
    grey = crop_face(astronaut_image, (180, 70, 90, 90), 64, 1)
    rgb = crop_face(astronaut_image, (180, 70, 90, 90), 224, 3)
    assert grey.shape == (64, 64, 1) and rgb.shape == (224, 224, 3) and grey.dtype == np.uint8


def test_face_crop_at_the_border_keeps_proportions():
    image = np.zeros((100, 100, 3), np.uint8)
    image[:, :50] = 255  # left half white
    crop = crop_face(image, (-20, 20, 60, 60), 32, 1, margin=0.0)
    assert crop.shape == (32, 32, 1)
    assert crop[:, :20].mean() > 200 and crop[:, -4:].mean() > 200  # replicated border, nothing black invented


def test_scene_crop():
    assert crop_scene(np.zeros((480, 640, 3), np.uint8), 224).shape == (224, 224, 3)


def frame(v):
    return np.full((4, 4, 1), v, np.uint8)


def test_window_every_hop_after_the_ring_fills():
    buffer = WindowBuffer(track_id=7, num_frames=4, hop=2)
    emitted = [buffer.push(frame(i), t=i / 8, box=(0, 0, 1, 1)) for i in range(10)]
    indices = [i for i, w in enumerate(emitted) if w is not None]
    assert indices == [3, 5, 7, 9]
    last = emitted[9]
    assert last.track_id == 7 and last.faces.shape == (4, 4, 4, 1)
    assert list(last.faces[:, 0, 0, 0]) == [6, 7, 8, 9]
    assert last.t_start == 6 / 8 and last.t_end == 9 / 8 and last.scene is None


def test_hop_larger_than_window_skips_frames():
    buffer = WindowBuffer(1, num_frames=2, hop=3)
    assert [i for i in range(8) if buffer.push(frame(i), i, (0, 0, 1, 1))] == [1, 4, 7]


def test_short_track_gets_a_stretched_window_at_its_end():
    buffer = WindowBuffer(1, num_frames=8, hop=4)
    for i in range(5):
        assert buffer.push(frame(i), i, (0, 0, 1, 1)) is None
    window = buffer.final_window(min_frames=4)
    assert window.faces.shape[0] == 8
    assert list(window.faces[:, 0, 0, 0]) == [0, 1, 1, 2, 2, 3, 3, 4]
    assert buffer.final_window(min_frames=4) is None


def test_too_short_track_gets_nothing():
    buffer = WindowBuffer(1, num_frames=8, hop=4)
    buffer.push(frame(0), 0, (0, 0, 1, 1))
    assert buffer.final_window(min_frames=4) is None


def test_tail_after_the_last_window_gets_one_more_window():
    buffer = WindowBuffer(1, num_frames=4, hop=4)
    for i in range(7):
        buffer.push(frame(i), i, (0, 0, 1, 1))  # window at 3; 3 frames since
    window = buffer.final_window(min_frames=2)
    assert list(window.faces[:, 0, 0, 0]) == [3, 4, 5, 6]


def test_buffers_per_track_and_scene():
    buffers = WindowBuffers(num_frames=2, hop=1)
    assert buffers.push(1, frame(0), 0, (0, 0, 1, 1), scene=frame(9)) is None
    assert buffers.push(2, frame(0), 0, (0, 0, 1, 1), scene=frame(9)) is None
    window = buffers.push(1, frame(1), 1, (0, 0, 1, 1), scene=frame(9))
    assert window.track_id == 1 and window.scene.shape == (2, 4, 4, 1)
    assert 2 in buffers and buffers.end(2, min_frames=5) is None and 2 not in buffers


@pytest.mark.parametrize("num_frames, hop", [(0, 1), (4, 0)])
def test_bad_buffer_sizes(num_frames, hop):
    with pytest.raises(ValueError):
        WindowBuffer(1, num_frames, hop)


def test_a_short_span_looks_at_the_newest_frames_spread_over_the_window():
    buffer = WindowBuffer(1, num_frames=8, hop=2, span=4)
    emitted = [buffer.push(frame(i), t=i / 8, box=(0, 0, 1, 1)) for i in range(10)]
    assert [i for i, w in enumerate(emitted) if w is not None] == [3, 5, 7, 9]  # first window once 4 are there
    last = emitted[9]
    assert last.faces.shape[0] == 8 and sorted(set(last.faces[:, 0, 0, 0])) == [6, 7, 8, 9]
    assert last.t_start == 6 / 8 and last.t_end == 9 / 8 and len(last.frame_ids) == 8
