"""models.data and models.prepare on synthetic sets written in each dataset's distributed layout."""

import shutil

import numpy as np
import pytest
import torch

from models.data import AnnotationError, DatasetError, get_layout, read_split
from models.data.annotations import ClipRecord
from models.data.dataset import ClipDataset, build_dataset
from models.data.mixing import BatchMixing, fmix, fmix_mask, mix_batch, mixup, one_hot
from models.data.sampling import eval_indices, train_indices
from models.data.synthetic import main as synthetic_main
from models.data.synthetic import write_synthetic
from models.data.transforms import ClipAugmentation, train_transform
from models.text import DATASET_LABELS

DATASETS = ("dfew", "ferv39k", "mafw")
SIZE = 32


def splits_of(dataset):
    folds = get_layout(dataset).folds or (None,)
    return [(split, fold) for fold in folds for split in ("train", "test")]


@pytest.fixture(scope="module")
def synthetic_roots(tmp_path_factory):
    return {name: write_synthetic(tmp_path_factory.mktemp(name), name, clips_per_label=2, size=SIZE)
            for name in DATASETS}


@pytest.fixture
def editable(synthetic_roots, tmp_path):
    """A private copy of a synthetic set, to break."""
    def copy(dataset):
        return shutil.copytree(synthetic_roots[dataset], tmp_path / dataset)
    return copy


@pytest.fixture
def editable_annotations(synthetic_roots, tmp_path):
    """A private copy of a synthetic set's annotation files; (root, frames_dir) with frames_dir the shared frames."""
    def copy(dataset):
        original = synthetic_roots[dataset]
        root = shutil.copytree(original, tmp_path / dataset, ignore=shutil.ignore_patterns("*.jpg"))
        return root, original / get_layout(dataset).frames_dir
    return copy


def rewrite_line(path, number, text):
    lines = path.read_text(encoding="utf-8").splitlines()
    lines[number - 1] = text
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


# ---- readers ------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dataset", DATASETS)
def test_every_fold_and_split_reads(synthetic_roots, dataset):
    root, layout = synthetic_roots[dataset], get_layout(dataset)
    all_clips, test_clips = set(), []
    for split, fold in splits_of(dataset):
        records = read_split(dataset, root, split, fold)
        assert records, (split, fold)
        for record in records:
            assert 0 <= record.label < len(DATASET_LABELS[dataset])
            assert record.num_frames == len(list(record.frames_dir.glob("*.jpg")))
        all_clips |= {r.clip_id for r in records}
        if split == "test":
            test_clips += [r.clip_id for r in records]
            train_ids = {r.clip_id for r in read_split(dataset, root, "train", fold)}
            assert train_ids.isdisjoint(r.clip_id for r in records)
    if layout.folds:  # the test sets of the folds partition the clips
        assert sorted(test_clips) == sorted(all_clips)


@pytest.mark.parametrize("dataset, line, expected", [
    ("dfew", "3,4", ("00003", "angry")),
    ("dfew", "00012,7", ("00012", "fear")),
    ("ferv39k", "Daily/Surprise/0011 Surprise", ("Daily/Surprise/0011", "surprise")),
    ("ferv39k", "Action/Happy/0000 happy", ("Action/Happy/0000", "happy")),
    ("mafw", "00006.mp4 sadness", ("00006", "sad")),
    ("mafw", "00010.mp4 helplessness", ("00010", "helplessness")),
])
def test_dataset_label_codes_map_to_models_text_order(editable_annotations, dataset, line, expected):
    root, shared_frames = editable_annotations(dataset)  # the copy has the clip folders, empty
    layout = get_layout(dataset)
    fold = layout.folds[0] if layout.folds else None
    clip, label = expected
    (root / layout.frames_dir / clip).mkdir(parents=True, exist_ok=True)
    shutil.copy(next(shared_frames.rglob("*.jpg")), root / layout.frames_dir / clip / "1.jpg")
    header = [",".join(layout.header)] if layout.header else []
    (root / layout.split_files("test", fold)[0]).write_text("\n".join(header + [line]) + "\n")
    [record] = read_split(dataset, root, "test", fold)
    assert record.clip_id == clip
    assert DATASET_LABELS[dataset][record.label] == label


def test_dfew_accepts_the_archive_spelling_of_the_split_folder(editable_annotations):
    root, frames = editable_annotations("dfew")
    split_root = root / "EmoLabel_DataSplit"
    (split_root / "train(single-labeled)").rename(split_root / "train(single_labeled)")
    assert read_split("dfew", root, "train", 2, frames_dir=frames)


@pytest.mark.parametrize("dataset, breakage, reason", [
    ("dfew", "2,9", "unknown label '9'"),
    ("dfew", "2", "expected 2 columns"),
    ("dfew", "2,1,extra", "expected 2 columns"),
    ("dfew", "abc,1", "video_name must be a clip number"),
    ("dfew", "99999,1", "clip 99999: frame folder"),
    ("ferv39k", "Action/Happy/0000 Joy", "unknown label 'Joy'"),
    ("ferv39k", "Action/Happy/0000", "expected 2 columns"),
    ("ferv39k", "Action/Happy/9999 Happy", "clip Action/Happy/9999: frame folder"),
    ("ferv39k", "../Action/Happy/0000 Happy", "must be relative"),
    ("mafw", "00003.mp4 joy", "unknown label 'joy'"),
    ("mafw", "00003.mp4 fear extra", "expected 2 columns"),
    ("mafw", "09999.mp4 fear", "clip 09999: frame folder"),
])
def test_malformed_annotation_names_file_and_line(editable_annotations, dataset, breakage, reason):
    root, frames = editable_annotations(dataset)
    layout = get_layout(dataset)
    fold = layout.folds[0] if layout.folds else None
    split_file = root / layout.split_files("train", fold)[0]
    line = 3  # DFEW: the header, then two records
    rewrite_line(split_file, line, breakage)
    with pytest.raises(AnnotationError) as error:
        read_split(dataset, root, "train", fold, frames_dir=frames)
    message = str(error.value)
    assert message.startswith(f"{split_file}:{line}: ")
    assert reason in message
    assert error.value.line_number == line


def test_missing_or_wrong_header_and_duplicates_are_errors(editable_annotations):
    root, frames = editable_annotations("dfew")
    split_file = root / "EmoLabel_DataSplit" / "train(single-labeled)" / "set_1.csv"
    first_record = split_file.read_text().splitlines()[1]
    rewrite_line(split_file, 1, "clip,emotion")
    with pytest.raises(AnnotationError, match=r"set_1\.csv:1: expected the header row 'video_name,label'"):
        read_split("dfew", root, "train", 1, frames_dir=frames)
    rewrite_line(split_file, 1, "video_name,label")
    rewrite_line(split_file, 3, first_record)
    with pytest.raises(AnnotationError, match=r"set_1\.csv:3: clip \d{5} is already listed on line 2"):
        read_split("dfew", root, "train", 1, frames_dir=frames)


def test_empty_clip_folder_and_skip_missing(editable):
    root = editable("mafw")
    records = read_split("mafw", root, "test", 1)
    victim = records[0]
    for image in victim.frames_dir.iterdir():
        image.unlink()
    with pytest.raises(AnnotationError, match=f"clip {victim.clip_id}: frame folder .* has no frame images"):
        read_split("mafw", root, "test", 1)
    kept = read_split("mafw", root, "test", 1, skip_missing=True)
    assert [r.clip_id for r in kept] == [r.clip_id for r in records[1:]]


def test_layout_errors_are_clear(synthetic_roots, tmp_path):
    with pytest.raises(DatasetError, match="DFEW has 5 folds: pass fold=1..5"):
        read_split("dfew", synthetic_roots["dfew"], "train", 6)
    with pytest.raises(DatasetError, match="no folds"):
        read_split("ferv39k", synthetic_roots["ferv39k"], "train", 1)
    with pytest.raises(DatasetError, match=r"no MAFW train split file .*no_caption/set_1/train\.txt.*DATASETS\.md"):
        read_split("mafw", tmp_path, "train", 1)
    with pytest.raises(DatasetError, match="split must be one of"):
        read_split("dfew", synthetic_roots["dfew"], "val", 1)
    with pytest.raises(DatasetError, match="unknown dataset 'afew'"):
        read_split("afew", tmp_path)
    with pytest.raises(DatasetError, match="frame folders not found"):
        read_split("dfew", synthetic_roots["dfew"], "train", 1, frames_dir="Clip/clip_224x224_16f")


def test_frames_are_read_in_natural_order(editable):
    """DFEW names frames <clip>_1.jpg .. <clip>_10.jpg: 10 must come after 9, not after 1."""
    from models.data import frame_files

    root = editable("dfew")
    record = max(read_split("dfew", root, "train", 1), key=lambda r: r.num_frames)
    names = [p.name for p in frame_files(record.frames_dir)]
    assert names == [f"{record.clip_id}_{n}.jpg" for n in range(1, record.num_frames + 1)]


# ---- the torch Dataset --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dataset", DATASETS)
def test_dataset_items(synthetic_roots, dataset):
    fold = 1 if get_layout(dataset).folds else None
    train = build_dataset(dataset, synthetic_roots[dataset], "train", fold, method="pe_clip", image_size=SIZE)
    test = build_dataset(dataset, synthetic_roots[dataset], "test", fold, image_size=SIZE)
    faces, label = train[0]
    assert faces.shape == (16, 3, SIZE, SIZE) and faces.dtype == torch.float32
    assert isinstance(label, int) and label == train.records[0].label
    first, again = test[0][0], test[0][0]
    assert torch.equal(first, again)  # testing is deterministic
    assert -3 < float(first.mean()) < 3  # normalised, not 0..255
    loader = torch.utils.data.DataLoader(test, batch_size=4)
    faces, labels = next(iter(loader))
    assert faces.shape == (min(4, len(test)), 16, 3, SIZE, SIZE) and labels.dtype == torch.int64


def test_short_clip_repeats_its_last_frame(synthetic_roots):
    dataset = build_dataset("dfew", synthetic_roots["dfew"], "test", 1, image_size=SIZE)
    short = next(i for i, r in enumerate(dataset.records) if r.num_frames < 16)
    n = dataset.records[short].num_frames
    faces, _ = dataset[short]
    for t in range(n, 16):
        assert torch.equal(faces[t], faces[n - 1])
    assert not torch.equal(faces[0], faces[n - 1])  # the square moves over the clip


# ---- scene windows (OUS) ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dataset", DATASETS)
def test_scene_items_from_the_synthetic_sets(synthetic_roots, dataset):
    fold = 1 if get_layout(dataset).folds else None
    root = synthetic_roots[dataset]
    assert (root / get_layout(dataset).scene_dir).is_dir()
    train = build_dataset(dataset, root, "train", fold, method="ous", image_size=SIZE, scene=True)
    faces, scene, label = train[0]
    assert faces.shape == scene.shape == (16, 3, SIZE, SIZE) and scene.dtype == torch.float32
    assert label == train.records[0].label
    test = build_dataset(dataset, root, "test", fold, image_size=SIZE, scene=True)
    first, again = test[0], test[0]
    assert torch.equal(first[1], again[1]) and not torch.equal(first[0], first[1])  # deterministic; not the faces
    faces, scene, labels = next(iter(torch.utils.data.DataLoader(test, batch_size=2)))
    assert faces.shape == scene.shape == (2, 16, 3, SIZE, SIZE) and labels.dtype == torch.int64


def _two_tone_clip(folder, num_frames, size):
    """Frames n = 1..num_frames: left half grey 20 + 5n, right half 230 (PNG: exact values), `size` = (w, h)."""
    import cv2

    folder.mkdir(parents=True)
    w, h = size
    for n in range(1, num_frames + 1):
        image = np.full((h, w, 3), 230, np.uint8)
        image[:, : w // 2] = 20 + 5 * n
        cv2.imwrite(str(folder / f"{n}.png"), image)
    return folder


def test_scene_takes_the_faces_frames_and_their_flip(tmp_path):
    faces_dir = _two_tone_clip(tmp_path / "faces" / "c1", 40, (24, 24))
    scene_dir = _two_tone_clip(tmp_path / "scene" / "c1", 40, (40, 30))  # wider than high: squashed, not cropped
    record = ClipRecord("c1", faces_dir, 40, 0, "split.txt:1")
    raw = dict(mean=(0.0,) * 3, std=(1 / 255,) * 3)  # back to 0..255 units
    augmentation = ClipAugmentation(crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0), brightness=0.0, flip_p=0.5)
    dataset = ClipDataset([record], train=True, image_size=SIZE, augmentation=augmentation, scene_dirs=[scene_dir],
                          **raw)
    torch.manual_seed(0)
    flips, draws = set(), set()
    for _ in range(12):
        faces, scene, _ = dataset[0]
        for clip in (faces, scene):  # the dark half is the frame number's grey, on the left unless flipped
            assert clip.shape == (16, 3, SIZE, SIZE)
        face_left, scene_left = faces[:, 0, :, 0], scene[:, 0, :, 0]  # first column of every frame
        face_right, scene_right = faces[:, 0, :, -1], scene[:, 0, :, -1]
        flipped = bool(face_left.mean() > face_right.mean())
        assert flipped == bool(scene_left.mean() > scene_right.mean())  # both flipped, or neither
        flips.add(flipped)
        face_dark = (face_right if flipped else face_left).mean(dim=1)  # [16]: 20 + 5n of the sampled frames
        scene_dark = (scene_right if flipped else scene_left).mean(dim=1)
        assert torch.allclose(face_dark, scene_dark, atol=1.0)  # the same frame indices
        assert len(set(face_dark.round().tolist())) == 16  # 16 different frames, one per segment of 2
        draws.add(tuple(face_dark.round().tolist()))
    assert flips == {True, False} and len(draws) > 1  # random flips and random frames, the scene following both
    test = ClipDataset([record], train=False, image_size=SIZE, scene_dirs=[scene_dir], **raw)
    faces, scene, _ = test[0]
    assert torch.allclose(faces[:, 0, :, 0].mean(dim=1), scene[:, 0, :, 0].mean(dim=1), atol=1.0)


def test_missing_scene_folder_or_frame_is_a_clear_error(editable):
    root = editable("dfew")
    records = read_split("dfew", root, "test", 1)
    victim = records[1]
    scene_folder = root / "Clip" / "scene" / victim.clip_id
    frames = sorted(scene_folder.iterdir())
    frames[-1].unlink()  # one frame short: found when an item needs it
    dataset = build_dataset("dfew", root, "test", 1, image_size=SIZE, scene=True)
    with pytest.raises(DatasetError, match=f"clip {victim.clip_id} .*scene folder {scene_folder} has no frame"):
        dataset[1]
    shutil.rmtree(scene_folder)
    with pytest.raises(AnnotationError, match=f"set_1.csv:3: clip {victim.clip_id}: scene folder {scene_folder} "
                                              "is missing"):
        build_dataset("dfew", root, "test", 1, image_size=SIZE, scene=True)
    kept = build_dataset("dfew", root, "test", 1, image_size=SIZE, scene=True, skip_missing=True)
    assert [r.clip_id for r in kept.records] == [r.clip_id for r in records if r is not victim]
    with pytest.raises(DatasetError, match="scene folders not found: .*elsewhere is not a directory"):
        build_dataset("dfew", root, "test", 1, scene=True, scene_dir="elsewhere")
    assert len(build_dataset("dfew", root, "test", 1, image_size=SIZE)) == len(records)  # faces alone: unaffected


# ---- sampling -----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("num_frames", [16, 17, 31, 50, 97, 300])
def test_train_indices_one_random_frame_per_segment(num_frames):
    rng = np.random.default_rng(0)
    segment = num_frames // 16
    draws = np.stack([train_indices(num_frames, 16, rng) for _ in range(30)])
    assert draws.shape == (30, 16)
    assert draws.min() >= 0 and draws.max() < num_frames
    for i in range(16):
        assert np.all((draws[:, i] >= i * segment) & (draws[:, i] < (i + 1) * segment))
    assert np.all(np.diff(draws, axis=1) > 0)  # temporal order kept
    if segment > 1:
        assert len({tuple(d) for d in draws}) > 1  # random


@pytest.mark.parametrize("num_frames", [17, 40, 97])
def test_test_indices_are_fixed_segment_centres(num_frames):
    indices = eval_indices(num_frames)
    assert np.array_equal(indices, eval_indices(num_frames))
    tick = num_frames / 16
    assert indices.tolist() == [int(tick / 2 + tick * i) for i in range(16)]
    assert np.all(np.diff(indices) > 0) and indices.max() < num_frames


@pytest.mark.parametrize("num_frames", [1, 5, 15, 16])
def test_short_clips_use_every_frame_then_repeat_the_last(num_frames):
    expected = list(range(num_frames)) + [num_frames - 1] * (16 - num_frames)
    assert eval_indices(num_frames).tolist() == expected
    assert train_indices(num_frames, rng=np.random.default_rng(1)).tolist() == expected


def test_sampling_rejects_empty_clips():
    with pytest.raises(ValueError):
        train_indices(0)
    with pytest.raises(ValueError):
        eval_indices(0)


# ---- transforms and mixing ----------------------------------------------------------------------------------------

def test_train_transform_applies_one_crop_flip_colour_and_rotation_to_all_frames():
    torch.manual_seed(0)
    image = torch.randint(0, 256, (3, 48, 40), dtype=torch.uint8)
    clip = image.expand(16, 3, 48, 40).contiguous()  # 16 identical frames
    augmentation = ClipAugmentation(contrast=0.4, saturation=0.4, hue=0.1, rotation=10.0)
    transform = train_transform(SIZE, augmentation, mean=(0.5,) * 3, std=(0.25,) * 3)
    outputs = [transform(clip) for _ in range(5)]
    for out in outputs:
        assert out.shape == (16, 3, SIZE, SIZE)
        assert torch.allclose(out, out[0].expand_as(out))  # every frame got the same augmentation
    assert not torch.allclose(outputs[0], outputs[1])  # but each clip a new one


def test_flip_and_crop_are_the_same_across_different_frames():
    """Frames differing only by a constant keep that difference after crop + flip (no colour, no rotation)."""
    torch.manual_seed(1)
    base = torch.randint(0, 200, (3, 40, 40), dtype=torch.uint8)
    clip = torch.stack([base + t for t in range(16)])  # frame t = base + t
    augmentation = ClipAugmentation(brightness=0.0, crop_scale=(0.3, 0.6))
    out = train_transform(SIZE, augmentation, mean=(0.0,) * 3, std=(1 / 255,) * 3)(clip)  # back to 0..255 units
    differences = out - out[0]
    for t in range(16):
        assert torch.allclose(differences[t], torch.full_like(differences[t], float(t)), atol=1.0)


def test_mixup_and_fmix_targets_sum_to_one():
    rng = np.random.default_rng(0)
    faces = torch.randn(6, 4, 3, 16, 16)
    targets = one_hot(torch.tensor([0, 1, 2, 3, 4, 5]), 7)
    for mixed_faces, mixed in (mixup(faces, targets, 0.4, rng), fmix(faces, targets, 1.0, 3.0, rng)):
        assert mixed_faces.shape == faces.shape and mixed.shape == (6, 7)
        assert torch.allclose(mixed.sum(dim=1), torch.ones(6))
        assert (mixed >= 0).all()


def test_fmix_mask_is_binary_with_the_asked_share():
    mask = fmix_mask(32, 24, lam=0.3, decay_power=3.0, rng=np.random.default_rng(2))
    assert set(np.unique(mask)) <= {0.0, 1.0}
    assert mask.mean() == pytest.approx(0.3, abs=1 / (32 * 24))


def test_fmix_uses_one_mask_for_all_frames():
    rng = np.random.default_rng(3)
    faces = torch.stack([torch.zeros(4, 3, 16, 16), torch.ones(4, 3, 16, 16)])  # clip 0 black, clip 1 white
    targets = one_hot(torch.tensor([0, 1]), 2)
    for _ in range(5):
        mixed, mixed_targets = fmix(faces, targets, 1.0, 3.0, rng)
        assert torch.equal(mixed[0], mixed[0, :1].expand_as(mixed[0]))  # same mask in every frame and channel
        # clip 0 is black: whatever is white came from clip 1, and its target says so (0 if paired with itself)
        assert float(mixed_targets[0, 1]) == pytest.approx(float(mixed[0].mean()), abs=1e-6)


def test_mix_batch_schedule_and_one_hot_without_mixing():
    faces = torch.randn(4, 2, 3, 8, 8)
    labels = torch.tensor([0, 1, 2, 3])
    same, targets, kind = mix_batch(faces, labels, 7, None)
    assert kind == "none" and same is faces and torch.equal(targets, one_hot(labels, 7))
    rng = np.random.default_rng(0)
    kinds = [mix_batch(faces, labels, 7, BatchMixing(), rng)[2] for _ in range(300)]
    shares = {k: kinds.count(k) / len(kinds) for k in ("mixup", "fmix", "none")}
    assert shares["mixup"] == pytest.approx(0.4, abs=0.1)
    assert shares["fmix"] == pytest.approx(0.3, abs=0.1)
    assert shares["none"] == pytest.approx(0.3, abs=0.1)


# ---- synthetic generator and prepare ------------------------------------------------------------------------------

def test_synthetic_cli_writes_a_readable_set(tmp_path, capsys):
    assert synthetic_main([str(tmp_path / "mafw"), "--dataset", "mafw", "--clips-per-label", "1", "--size", "16"]) == 0
    assert "MAFW (11 clips)" in capsys.readouterr().out
    assert (tmp_path / "mafw" / "Train & Test Set" / "single" / "no_caption" / "set_5" / "test.txt").is_file()
    faces, scenes = tmp_path / "mafw" / "data" / "frames", tmp_path / "mafw" / "data" / "scene"
    assert sorted(p.relative_to(scenes) for p in scenes.rglob("*.jpg")) == sorted(
        p.relative_to(faces) for p in faces.rglob("*.jpg"))  # a scene frame beside every face frame, same names
    fold_3 = [read_split("mafw", tmp_path / "mafw", split, 3) for split in ("train", "test")]
    assert sum(map(len, fold_3)) == 11


@pytest.fixture
def raw_dfew(tmp_path):
    """A DFEW-like root with two raw videos: a real face (8 frames) and one with no face."""
    from tests.clips import astronaut_clip, blank_clip

    videos = tmp_path / "DFEW" / "Clip" / "original"
    videos.mkdir(parents=True)
    astronaut_clip(videos / "00001.mp4", size=(320, 240), fps=8, seconds=1.0)
    blank_clip(videos / "00002.mp4", size=(160, 120), fps=8, seconds=0.5)
    return tmp_path / "DFEW"


def test_prepare_writes_face_crops_and_skips_cached_clips(raw_dfew, settings):
    from models.prepare import main, prepare

    out = raw_dfew / "Clip" / "faces"
    summary = prepare(raw_dfew / "Clip" / "original", out, "dfew", settings, size=SIZE, progress=False,
                      scene_size=120)
    assert summary.prepared == ["00001"] and summary.no_face == ["00002"] and not summary.unreadable
    crops = sorted((out / "00001").iterdir())
    assert [p.name for p in crops] == [f"00001_{n}.jpg" for n in range(1, 9)]  # DFEW's naming, every frame a face
    import cv2

    assert cv2.imread(str(crops[0])).shape == (SIZE, SIZE, 3)
    # the scene frames: the whole 320x240 frames, shorter side 120, in Clip/scene (the layout's), same names
    scenes = sorted((raw_dfew / "Clip" / "scene" / "00001").iterdir())
    assert [p.name for p in scenes] == [p.name for p in crops]
    assert cv2.imread(str(scenes[0])).shape == (120, 160, 3)
    assert not (raw_dfew / "Clip" / "scene" / "00002").exists()
    assert (out / "no_face.txt").read_text().split() == ["00002"]
    stamps = {p.name: p.stat().st_mtime_ns for p in crops}

    again = prepare(raw_dfew / "Clip" / "original", out, "dfew", settings, size=SIZE, progress=False)
    assert again.cached == ["00001"] and not again.prepared
    assert {p.name: p.stat().st_mtime_ns for p in (out / "00001").iterdir()} == stamps

    # the reader takes the prepared folders
    split = raw_dfew / "EmoLabel_DataSplit" / "train(single-labeled)" / "set_1.csv"
    split.parent.mkdir(parents=True)
    split.write_text("video_name,label\n1,1\n2,3\n")
    [record] = read_split("dfew", raw_dfew, "train", 1, frames_dir="Clip/faces", skip_missing=True)
    assert (record.clip_id, record.num_frames, record.label) == ("00001", 8, 0)

    test_split = raw_dfew / "EmoLabel_DataSplit" / "test(single-labeled)" / "set_1.csv"
    test_split.parent.mkdir(parents=True)
    test_split.write_text("video_name,label\n1,1\n")
    faces, scene, label = build_dataset("dfew", raw_dfew, "test", 1, image_size=SIZE, frames_dir="Clip/faces",
                                        scene=True)[0]
    assert faces.shape == scene.shape == (16, 3, SIZE, SIZE)

    assert main([str(raw_dfew / "Clip" / "original"), str(out), "--dataset", "dfew", "--no-progress"]) == 0

    # faces cached but no scene folder (e.g. prepared before scene frames existed): the clip is made again, both
    shutil.rmtree(raw_dfew / "Clip" / "scene" / "00001")
    again = prepare(raw_dfew / "Clip" / "original", out, "dfew", settings, size=SIZE, progress=False)
    assert again.prepared == ["00001"]
    assert [p.name for p in sorted((raw_dfew / "Clip" / "scene" / "00001").iterdir())] == [p.name for p in crops]
    assert not list((raw_dfew / "Clip").glob("**/*.partial"))


def test_prepare_reports_bad_input_in_one_line(tmp_path, capsys):
    from models.prepare import main

    assert main([str(tmp_path / "missing"), str(tmp_path / "out"), "--dataset", "mafw", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: source folder") and "\n" not in err
    src = tmp_path / "clips"
    src.mkdir()
    (src / "00001.mp4").write_bytes(b"not a video")
    assert main([str(src), str(tmp_path / "out"), "--dataset", "mafw", "--no-progress"]) == 1
    assert "00001" in (tmp_path / "out" / "unreadable.txt").read_text()
