"""Real faces for the people tests: photographs that installed packages ship (scikit-image's astronaut,
matplotlib's Grace Hopper, scikit-image's cameraman turned away, npm @vladmandic/face-api's demo photographs of 22
people), and the embedded face-api.js nets, loaded once."""

import cv2
import numpy as np
import pytest

from service.config import Settings
from service.events import FaceQuality, FaceReading, HeadPose
from service.footage.held_out import FACE_API_DEMO, GROUP_FACES
from service.footage.people import real_photos
from service.windows import Window


@pytest.fixture(scope="session")
def nets():
    from service.faces.nets import DescriptorNet, LandmarkNet

    return LandmarkNet(), DescriptorNet()


@pytest.fixture(scope="session")
def photos():
    return {photo.name: photo for photo in real_photos()}


def scaled(image: np.ndarray, box, face_px: float):
    """The image scaled so that the face box's longer side is face_px, and the box with it."""
    s = face_px / max(box[2], box[3])
    return cv2.resize(image, None, fx=s, fy=s, interpolation=cv2.INTER_AREA), tuple(v * s for v in box)


@pytest.fixture(scope="session")
def demo_faces():
    """(name, image, box) of every person of face-api's demo photographs, each face scaled to 120 px."""
    faces = []
    for name, boxes in GROUP_FACES.items():
        image = cv2.imread(str(FACE_API_DEMO / name))
        assert image is not None, f"{FACE_API_DEMO / name}: run `make faceapi-npm`"
        faces += [(f"{name}:{i}", *scaled(image, box, 120)) for i, box in enumerate(boxes)]
    return faces


@pytest.fixture
def people_settings():
    return Settings(_env_file=None)


def reading(**changes) -> FaceReading:
    """A face reading of a person looking into the camera, with `changes`."""
    values = dict(person_id=7, quality=FaceQuality(face_px=110, sharpness=300, yaw=3, pitch=-2),
                  head_pose=HeadPose(yaw=3, pitch=-2, roll=1), looking=True)
    return FaceReading(**(values | changes))


def window(face: FaceReading) -> Window:
    """A classified window's frame (its pixels do not matter here) carrying `face`."""
    return Window(4, np.zeros((1, 2, 2, 1), np.uint8), None, 10.0, 12.0, (100, 100, 110, 110), (), face)
