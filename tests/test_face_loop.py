"""The one face loop (service.pipeline: FacePipeline, ClipFaces) and the crop policy a bundle declares."""

import json
import os
import shutil

import cv2
import numpy as np
import pytest

from service.bundle import ModelBundle
from service.config import FER_BUNDLE, Settings
from service.crops import CropPolicy, crop_face, eye_angle
from service.detect import create_detector
from service.errors import BundleError
from service.pipeline import ClipFaces, FacePipeline, crop_policy
from service.track import create_tracker


# ---- crops: alignment ---------------------------------------------------------------------------------------------

def test_aligned_crop_of_a_tilted_face_matches_the_upright_crop(astronaut_image):
    box, centre = (177, 66, 95, 95), (224.5, 113.5)
    upright = crop_face(astronaut_image, box, 64, 1).astype(np.float32)
    tilted = cv2.warpAffine(astronaut_image, cv2.getRotationMatrix2D(centre, 20, 1.0), (512, 512),
                            borderMode=cv2.BORDER_REPLICATE)
    # Turned 20 degrees counter-clockwise on screen, the eye line rises at -20 degrees; undoing it:
    aligned = crop_face(tilted, box, 64, 1, angle=-20).astype(np.float32)
    plain = crop_face(tilted, box, 64, 1).astype(np.float32)
    assert np.abs(aligned - upright).mean() < 0.5 * np.abs(plain - upright).mean()
    assert aligned.shape == (64, 64, 1)


def test_crop_policy_aligns_only_when_asked_and_only_with_eyes(astronaut_image):
    box, eyes = (177, 66, 95, 95), ((200.0, 100.0), (250.0, 120.0))
    assert eye_angle(eyes) == pytest.approx(np.degrees(np.arctan2(20, 50)))
    aligned, plain = CropPolicy(48, 3, 0.2, align=True), CropPolicy(48, 3, 0.2)
    assert not np.array_equal(aligned.crop(astronaut_image, box, eyes), plain.crop(astronaut_image, box, eyes))
    assert np.array_equal(aligned.crop(astronaut_image, box, None), plain.crop(astronaut_image, box))


def test_rotated_crop_at_the_frame_edge_repeats_the_border():
    image = np.full((100, 100, 3), 255, np.uint8)
    crop = crop_face(image, (-30, -30, 60, 60), 32, 1, angle=30)
    assert crop.min() == 255  # nothing black invented outside the frame


# ---- the bundle declares its crops ----------------------------------------------------------------------------------

def test_embedded_bundle_declares_the_crops_fer_was_trained_on(settings):
    spec = ModelBundle.load(FER_BUNDLE).spec
    assert (spec.crop.size, spec.crop.colour, spec.crop.align, spec.crop.margin) == (64, "grey", "none", 0.1)
    assert crop_policy(spec, settings) == CropPolicy(64, 1, 0.1, False)


def test_bundle_without_a_crop_declaration_loads_and_keeps_the_service_margin(tmp_path):
    directory = shutil.copytree(FER_BUNDLE, tmp_path / "old")
    data = json.loads((directory / "bundle.json").read_text())
    data.pop("crop")
    (directory / "bundle.json").write_text(json.dumps(data))
    spec = ModelBundle.load(directory).spec
    assert spec.crop is None
    assert crop_policy(spec, Settings(_env_file=None, face_margin=0.3)) == CropPolicy(64, 1, 0.3, False)


@pytest.mark.parametrize("crop", [{"margin": 0.1, "size": 48, "colour": "grey"},
                                  {"margin": 0.1, "size": 64, "colour": "rgb"},
                                  {"margin": 0.1, "size": 64, "colour": "grey", "align": "nose"}])
def test_a_crop_declaration_that_does_not_fit_the_model_is_refused(tmp_path, crop):
    directory = shutil.copytree(FER_BUNDLE, tmp_path / "bad")
    data = json.loads((directory / "bundle.json").read_text()) | {"crop": crop}
    (directory / "bundle.json").write_text(json.dumps(data))
    with pytest.raises(BundleError, match="crop"):
        ModelBundle.load(directory)


# ---- the face loop -------------------------------------------------------------------------------------------------

def test_clip_faces_decodes_samples_detects_tracks_and_crops(astronaut_clip, settings):
    spec = ModelBundle.load(FER_BUNDLE).spec
    pipeline = FacePipeline("clip", spec, settings, create_detector(settings), create_tracker(settings))
    clip = ClipFaces(astronaut_clip, pipeline, settings.sample_fps)
    results = list(clip)
    assert clip.decoded == 75 and clip.sampled == len(results) == 24
    tracked = [r for _, r in results if r.crops]
    assert len(tracked) >= 20 and {c.track_id for r in tracked for c in r.crops} == {1}
    assert all(c.crop.shape == (64, 64, 1) for r in tracked for c in r.crops)
    assert sum(len(r.windows) for _, r in results) >= 1
    assert [e.type for e in clip.finish().lifecycle] == ["track_lost"]


def test_face_loop_without_a_bundle_only_crops(astronaut_clip, settings):
    policy = CropPolicy(32, 3, 0.2, align=True)
    every_frame = settings.model_copy(update={"track_min_hits": 1, "tracker": "iou"})  # as models.prepare runs it
    pipeline = FacePipeline("prep", None, every_frame, create_detector(every_frame), create_tracker(every_frame),
                            crop=policy)
    results = [r for _, r in ClipFaces(astronaut_clip, pipeline, None)]
    assert len(results) == 75 and all(r.crops and not r.windows for r in results)
    assert results[0].crops[0].crop.shape == (32, 32, 3)
    with pytest.raises(ValueError, match="crop policy"):
        FacePipeline("x", None, settings, create_detector(settings), create_tracker(settings))


@pytest.mark.parametrize("shape", [(480, 640), (480, 640, 1), (480, 640, 4), (3, 5, 3)])
def test_face_loop_takes_grey_and_alpha_frames_of_any_size(settings, astronaut_image, shape):
    spec = ModelBundle.load(FER_BUNDLE).spec
    pipeline = FacePipeline("x", spec, settings, create_detector(settings), create_tracker(settings))
    frame = cv2.resize(astronaut_image, (shape[1], shape[0]))
    if len(shape) == 2 or shape[2] == 1:
        frame = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY).reshape(shape)
    elif shape[2] == 4:
        frame = cv2.cvtColor(frame, cv2.COLOR_BGR2BGRA)
    for i in range(4):
        result = pipeline.process(i / 8, frame)
    if shape[0] < 10:
        assert result.faces == 0
    else:  # the face is found (grey frames may add a false face on the suit's collar)
        assert any(abs(c.box[0] + c.box[2] / 2 - 280) < 30 and abs(c.box[1] + c.box[3] / 2 - 105) < 30
                   for c in result.crops)


def test_prepare_crops_exactly_as_a_bundle_declares(tmp_path, monkeypatch):
    from models.prepare import main
    from tests.clips import astronaut_clip

    for key in [k for k in os.environ if k.startswith("EMOTION_")]:
        monkeypatch.delenv(key)
    videos = tmp_path / "DFEW" / "Clip" / "original"
    videos.mkdir(parents=True)
    astronaut_clip(videos / "00001.mp4", size=(320, 240), fps=8, seconds=0.5)
    out = tmp_path / "DFEW" / "Clip" / "faces"
    assert main([str(videos), str(out), "--dataset", "dfew", "--bundle", str(FER_BUNDLE), "--no-scene",
                 "--no-progress"]) == 0
    crops = sorted((out / "00001").iterdir())
    assert len(crops) == 4 and cv2.imread(str(crops[0])).shape == (64, 64, 3)  # the bundle's size, stored RGB
    assert json.loads((out / "crop.json").read_text()) == {"margin": 0.1, "align": "none", "size": 64,
                                                           "colour": "rgb"}
    # Pixel for pixel what the service feeds the model (grey, from the same boxes), but for JPEG's loss.
    settings = Settings(_env_file=None, track_min_hits=1, tracker="iou")  # as models.prepare runs the loop
    spec = ModelBundle.load(FER_BUNDLE).spec
    pipeline = FacePipeline("svc", spec, settings, create_detector(settings), create_tracker(settings))
    served = [r.crops[0].crop[:, :, 0] for _, r in ClipFaces(videos / "00001.mp4", pipeline, None) if r.crops]
    assert len(served) == len(crops)
    for path, crop in zip(crops, served):
        prepared = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2GRAY)
        assert np.abs(prepared.astype(int) - crop).mean() < 2
