"""Person ids on real faces: the FaceReader (landmarks, quality, descriptors) with a PersonRegistry. The same
person seen again (scaled, mirrored, tilted, after a while) keeps their id; different people never share one; faces
that cannot be read (20 px, cut off by the frame's edge, a grey frame) are read without a crash, uncertain, and never
taken for someone else."""

import itertools

import cv2
import numpy as np

from service.faces.nets import descriptor_distance
from service.people.registry import PersonRegistry
from service.people.wiring import create_registry, reader_settings
from service.people.reader import FaceReader
from tests.people.conftest import scaled


def reader_for(settings, nets, registry=None):
    landmark_net, descriptor_net = nets
    registry = registry if registry is not None else create_registry(settings)
    return FaceReader(reader_settings(settings), landmark_net, descriptor_net, registry), registry


def seen(reader, track_ids, image, box, t):
    """One confirmed track of a face, read on one frame and ended: its reading."""
    track_id = next(track_ids)
    reading = reader.read(image, track_id, box, t)
    reader.end(track_id, t)
    return reading


def test_the_same_person_keeps_their_id_and_different_people_never_share_one(people_settings, nets, photos,
                                                                            demo_faces):
    reader, registry = reader_for(people_settings, nets)
    tracks = itertools.count(1)
    astronaut, hopper = photos["astronaut"], photos["grace_hopper"]
    first = seen(reader, tracks, *scaled(astronaut.image, astronaut.face, 120), t=0.0)
    assert first.uncertain_reason is None and not first.seen_before
    people = [seen(reader, tracks, image, box, t=1.0 + i) for i, (_, image, box) in enumerate(demo_faces)]
    other = seen(reader, tracks, *scaled(hopper.image, hopper.face, 120), t=30.0)
    ids = [first.person_id] + [p.person_id for p in people] + [other.person_id]
    assert len(set(ids)) == len(ids) == 24  # 24 different people: 24 ids, none seen before
    assert not any(p.seen_before for p in people + [other])

    # The astronaut again, a minute later: smaller, mirrored, tilted.
    image, box = scaled(astronaut.image, astronaut.face, 90)
    mirrored = cv2.flip(image, 1)
    back = seen(reader, tracks, mirrored, (image.shape[1] - box[0] - box[2], *box[1:]), t=60.0)
    assert (back.person_id, back.seen_before, back.absent_s) == (first.person_id, True, 60.0)
    centre = (box[0] + box[2] / 2, box[1] + box[3] / 2)
    tilted = cv2.warpAffine(image, cv2.getRotationMatrix2D(centre, 12, 1.0), image.shape[1::-1])
    assert seen(reader, tracks, tilted, box, t=70.0).person_id == first.person_id
    assert seen(reader, tracks, *scaled(hopper.image, hopper.face, 100), t=80.0).person_id == other.person_id
    assert registry.matched == 3 and registry.new_people == 24


def test_two_faces_at_once_are_two_people_even_if_they_look_alike(people_settings, nets, photos):
    reader, _ = reader_for(people_settings, nets)
    image, box = scaled(photos["astronaut"].image, photos["astronaut"].face, 120)
    first, twin = reader.read(image, 1, box, 0.0), reader.read(image, 2, box, 0.0)  # the same pixels, two tracks
    assert first.person_id != twin.person_id and not twin.seen_before


def test_descriptors_are_taken_at_confirmation_and_a_few_times_after_not_every_frame(people_settings, nets, photos):
    reader, registry = reader_for(people_settings, nets)
    image, box = scaled(photos["astronaut"].image, photos["astronaut"].face, 120)
    for frame in range(80):  # 10 s at 8 fps
        reading = reader.read(image, 1, box, frame / 8)
    every = people_settings.face_landmarks_every
    assert reader.landmark_runs == -(-80 // every)
    assert reader.descriptor_runs == 1 + people_settings.person_descriptor_refreshes
    assert reading.person_id == 1 and reading.looking
    (person,) = registry._people.values()
    assert len(person.descriptors) == reader.descriptor_runs and "descriptors" not in repr(person)


def test_faces_that_cannot_be_read_are_uncertain_and_never_someone_else(people_settings, nets, photos):
    reader, registry = reader_for(people_settings, nets)
    tracks = itertools.count(1)
    astronaut = photos["astronaut"]
    known = seen(reader, tracks, *scaled(astronaut.image, astronaut.face, 120), t=0.0)
    # 20 px: too small to trust
    tiny = seen(reader, tracks, *scaled(astronaut.image, astronaut.face, 20), t=5.0)
    # half of the face out of the frame
    image, box = scaled(astronaut.image, astronaut.face, 120)
    shifted = np.ascontiguousarray(image[:, int(box[0] + box[2] / 2):])
    cut = seen(reader, tracks, shifted, (box[0] - int(box[0] + box[2] / 2), *box[1:]), t=6.0)
    # a grey frame, with a box where a detector might have been fooled
    grey = seen(reader, tracks, np.full((480, 640, 3), 128, np.uint8), (280, 200, 100, 100), t=7.0)
    assert (tiny.uncertain_reason, cut.uncertain_reason) == ("too_small", "cut_off")
    assert grey.uncertain_reason is not None
    for reading in (tiny, cut, grey):
        assert reading.person_id != known.person_id and not reading.seen_before
    assert registry.matched == 0


def test_the_registry_forgets_after_its_memory_span_and_on_request(nets, photos):
    landmark_net, descriptor_net = nets
    image, box = scaled(photos["astronaut"].image, photos["astronaut"].face, 120)
    descriptor = descriptor_net.describe(image, landmark_net.landmarks(image, box))
    registry = PersonRegistry(memory_s=600, match_distance=0.45, margin=0.05)
    first = registry.identify(descriptor, 0.0)
    registry.left(first.person_id, 10.0)
    assert registry.identify(descriptor, 609.0).person_id == first.person_id  # within 10 min of leaving
    registry.left(first.person_id, 609.0)
    later = registry.identify(descriptor, 1210.0)  # gone for more than 10 minutes: forgotten, a new id
    assert not later.seen_before and later.person_id != first.person_id
    assert registry.forget_all() == 1 and len(registry) == 0
    again = registry.identify(descriptor, 1211.0)
    assert not again.seen_before and again.person_id not in (first.person_id, later.person_id)  # ids never reused


def test_an_ambiguous_match_is_a_new_person():
    # Two remembered people (0.6 apart), and a face as near to each of them (0.42): neither, by the margin rule.
    a, b, query = np.zeros((3, 128), np.float32)
    a[0], b[0], query[1] = 0.3, -0.3, 0.3
    registry = PersonRegistry(memory_s=600, match_distance=0.45, margin=0.05)
    for descriptor in (a, b):
        registry.left(registry.identify(descriptor, 0.0).person_id, 0.0)
    assert registry.new_people == 2
    assert descriptor_distance(query, a) < 0.45 and descriptor_distance(query, b) < 0.45
    assert not registry.identify(query, 1.0).seen_before
