"""models/text.py: label orders, descriptions, AU prompts, label resolution, tokenisation."""

import pytest

from models.text import (AU_NAMES, CLASS_DESCRIPTIONS, CLASS_NAMES, CLASS_POLARITY, DATASET_LABELS, DK_CLIP_AUS,
                         PE_CLIP_DESCRIPTIONS, class_polarity, described_class, dk_clip_prompt, pe_clip_prompt,
                         resolve_labels, tokenize, with_placeholders)


def test_label_orders_follow_the_datasets():
    assert DATASET_LABELS["dfew"] == ("happy", "sad", "neutral", "angry", "surprise", "disgust", "fear")
    assert DATASET_LABELS["ferv39k"] == DATASET_LABELS["dfew"]
    assert DATASET_LABELS["mafw"] == ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise",
                                      "contempt", "anxiety", "helplessness", "disappointment")


@pytest.mark.parametrize("dataset", sorted(DATASET_LABELS))
def test_every_label_has_a_name_description_and_polarity(dataset):
    for label in DATASET_LABELS[dataset]:
        assert CLASS_NAMES[label] and CLASS_DESCRIPTIONS[label] and CLASS_POLARITY[label]
        assert described_class(label).startswith(CLASS_NAMES[label] + ": ")


def test_polarity_of_each_dataset():
    assert class_polarity(DATASET_LABELS["dfew"]) == (0, 2, 1, 2, 0, 2, 2)  # positive, neutral, negative
    mafw = dict(zip(DATASET_LABELS["mafw"], class_polarity(DATASET_LABELS["mafw"])))
    assert [label for label, p in mafw.items() if p == 0] == ["happy", "surprise"]
    assert [label for label, p in mafw.items() if p == 1] == ["neutral"]


def test_au_prompts():
    assert dk_clip_prompt("happy") == "Happiness with cheek raiser, lip corner puller or lip part."
    assert dk_clip_prompt("neutral") == "Neutral."
    assert dk_clip_prompt("contempt") == "Contempt."
    assert pe_clip_prompt("surprise") == "inner brow raiser, outer brow raiser, upper lid raiser, jaw drop."
    assert set(PE_CLIP_DESCRIPTIONS) == set(DATASET_LABELS["dfew"])
    assert all(au in AU_NAMES for aus in DK_CLIP_AUS.values() for au in aus)


def test_resolve_labels():
    assert resolve_labels() == ("dfew", DATASET_LABELS["dfew"])
    assert resolve_labels(num_classes=11) == ("mafw", DATASET_LABELS["mafw"])
    assert resolve_labels(dataset="FERV39k", num_classes=7) == ("ferv39k", DATASET_LABELS["ferv39k"])
    assert resolve_labels(labels=["happy", "sad"]) == (None, ("happy", "sad"))
    with pytest.raises(ValueError, match="11 labels"):
        resolve_labels(dataset="mafw", num_classes=7)
    with pytest.raises(ValueError, match="matches no dataset"):
        resolve_labels(num_classes=5)
    with pytest.raises(ValueError, match="class name"):
        resolve_labels(labels=["happy", "bored"])


def test_placeholders_are_single_tokens_after_sot():
    tokens = tokenize([with_placeholders("happiness.", 4), "happiness."])
    assert tokens.shape == (2, 77)
    assert tokens[0, 0] == tokens[1, 0]  # SOT
    assert len(set(tokens[0, 1:5].tolist())) == 1 and tokens[0, 5] == tokens[1, 1]


def test_too_long_prompt_is_an_error():
    with pytest.raises(ValueError, match="longer than 77"):
        tokenize([with_placeholders("happiness, " * 10, 64)])
