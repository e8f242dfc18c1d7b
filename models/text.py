"""Text side shared by the CLIP methods: dataset label sets, class descriptions, AU descriptions, tokenisation.

Labels are identifiers in the model's output order (what a bundle's `labels` and the service's events carry);
`CLASS_NAMES` turns them into the noun a prompt uses ("happy" -> "happiness"). Every label order follows the
dataset's own numbering; docs/MODELS.md says where each order comes from.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Literal, Sequence

Polarity = Literal["positive", "neutral", "negative"]

# ---- label sets, in each dataset's order -------------------------------------------------------------------------

DATASET_LABELS: dict[str, tuple[str, ...]] = {
    # DFEW's EmoLabel_DataSplit numbers classes 1..7 in this order.
    "dfew": ("happy", "sad", "neutral", "angry", "surprise", "disgust", "fear"),
    # FERV39k's split files carry class names; the index order used by its authors' group and by MAE-DFER and
    # DFER-CLIP is DFEW's (so checkpoints and confusion matrices line up across the two datasets).
    "ferv39k": ("happy", "sad", "neutral", "angry", "surprise", "disgust", "fear"),
    # MAFW's single-label annotation numbers classes 1..11 in this order.
    "mafw": ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise",
             "contempt", "anxiety", "helplessness", "disappointment"),
}

# The noun a prompt uses for each label ("an expression of happiness").
CLASS_NAMES: dict[str, str] = {
    "happy": "happiness", "sad": "sadness", "neutral": "neutral", "angry": "anger", "surprise": "surprise",
    "disgust": "disgust", "fear": "fear", "contempt": "contempt", "anxiety": "anxiety",
    "helplessness": "helplessness", "disappointment": "disappointment",
}

# DuSE's "descriptions of subtle facial expression changes" (sec. IV-A.2) that follow the class name in a prompt.
# The paper does not print its sentences; these are ours, written from the FACS appearance changes of each class.
CLASS_DESCRIPTIONS: dict[str, str] = {
    "happy": "the corners of the mouth pull up, the cheeks lift and fine lines gather beside the eyes",
    "sad": "the inner eyebrows rise, the upper eyelids droop and the corners of the mouth turn down",
    "neutral": "the facial muscles are relaxed, the eyebrows level, the lips closed and the gaze calm",
    "angry": "the eyebrows pull down and together, the eyelids tighten, the stare is hard and the lips press",
    "surprise": "the eyebrows shoot up, the eyes open wide and the jaw drops, leaving the mouth open",
    "disgust": "the nose wrinkles, the upper lip rises and the lower lip pushes out",
    "fear": "the eyebrows rise and draw together, the upper eyelids lift and the lips stretch back",
    "contempt": "one corner of the mouth tightens and rises on one side of the face",
    "anxiety": "the eyebrows knit, the gaze shifts restlessly and the lips tighten or are bitten",
    "helplessness": "the eyebrows rise in the middle, the eyelids lower and the mouth hangs slightly open",
    "disappointment": "the gaze drops, the mouth corners sink and the lips press together",
}

# OUS's scene/emotion polarity (positive, neutral, negative) for each label; the paper names the three values but
# no mapping. Surprise counts as positive after Russell's circumplex (astonished: high arousal, positive valence).
CLASS_POLARITY: dict[str, Polarity] = {
    "happy": "positive", "surprise": "positive", "neutral": "neutral",
    "sad": "negative", "angry": "negative", "disgust": "negative", "fear": "negative",
    "contempt": "negative", "anxiety": "negative", "helplessness": "negative", "disappointment": "negative",
}
POLARITIES: tuple[Polarity, ...] = ("positive", "neutral", "negative")

# DFER-CLIP's class descriptors (zengqunzhao/DFER-CLIP models/Text.py, `class_descriptor_7/11`, written with an LLM
# by its authors): each class's prompt is its learnable context followed by this sentence. Verbatim: its released
# checkpoints embed exactly these words (export/dfer_clip_release.py checks that).
DFER_CLIP_DESCRIPTORS: dict[str, str] = {
    "happy": "a smiling mouth, raised cheeks, wrinkled eyes, and arched eyebrows.",
    "sad": "tears, a downward turned mouth, drooping upper eyelids, and a wrinkled forehead.",
    "neutral": "relaxed facial muscles, a straight mouth, a smooth forehead, and unremarkable eyebrows.",
    "angry": "furrowed eyebrows, narrow eyes, tightened lips, and flared nostrils.",
    "surprise": "widened eyes, an open mouth, raised eyebrows, and a frozen expression.",
    "disgust": "a wrinkled nose, lowered eyebrows, a tightened mouth, and narrow eyes.",
    "fear": "raised eyebrows, parted lips, a furrowed brow, and a retracted chin.",
    "contempt": "one side of its mouth raised, one eyebrow lower and one raised, narrowed eyes, and a raised chin.",
    "anxiety": "a tensed forehead, tightly pressed lips, pupil dilation, and tensed facial muscles.",
    "helplessness": "drooping eyebrows, a downward gaze, a downturned mouth, and lacking expression.",
    "disappointment": "a downturned mouth, lowered eyebrows, narrowed eyes, and a sighing face.",
}

# The output order of DFER-CLIP's released checkpoints: its annotation files number DFEW and FERV39k in DFEW's order,
# and MAFW in the same order followed by MAFW's four compound classes (not MAFW's own numbering, see docs/MODELS.md).
DFER_CLIP_RELEASE_LABELS: dict[str, tuple[str, ...]] = {
    "dfew": DATASET_LABELS["dfew"],
    "ferv39k": DATASET_LABELS["ferv39k"],
    "mafw": DATASET_LABELS["dfew"] + ("contempt", "anxiety", "helplessness", "disappointment"),
}

# ---- facial action units ------------------------------------------------------------------------------------------

# FACS names of the AUs the two AU-prompted methods use (DK-CLIP calls AU25 "lip part").
AU_NAMES: dict[int, str] = {
    1: "inner brow raiser", 2: "outer brow raiser", 4: "brow lowerer", 5: "upper lid raiser", 6: "cheek raiser",
    7: "lid tightener", 9: "nose wrinkler", 10: "upper lip raiser", 12: "lip corner puller",
    15: "lip corner depressor", 16: "lower lip depressor", 17: "chin raiser", 20: "lip stretcher",
    23: "lip tightener", 24: "lip pressor", 25: "lip part", 26: "jaw drop",
}

# PE-CLIP Table 1: the AU-based description that replaces each class name (neutral is described, not AU-coded).
PE_CLIP_DESCRIPTIONS: dict[str, tuple[str, ...]] = {
    "happy": ("cheek raiser", "lip corner puller"),
    "sad": ("inner brow raiser", "brow lowerer", "lip corner depressor"),
    "neutral": ("relaxed muscles", "even eyebrows", "closed lips", "calm eyes", "smooth forehead"),
    "angry": ("brow lowerer", "upper lid raiser", "lid tightener", "lip tightener"),
    "surprise": ("inner brow raiser", "outer brow raiser", "upper lid raiser", "jaw drop"),
    "disgust": ("nose wrinkler", "lip corner depressor", "lower lip depressor"),
    "fear": ("inner brow raiser", "outer brow raiser", "brow lowerer", "upper lid raiser", "lid tightener",
             "lip stretcher", "jaw drop"),
}

# DK-CLIP Table 1: the primary AUs of each basic expression. Classes without entries (neutral, MAFW's compound
# classes) are prompted by their class name alone, as the paper says.
DK_CLIP_AUS: dict[str, tuple[int, ...]] = {
    "happy": (6, 12, 25),
    "sad": (1, 4, 15, 17),
    "angry": (4, 7, 17, 24),
    "surprise": (1, 2, 5, 25, 26),
    "disgust": (9, 10, 17),
    "fear": (1, 2, 4, 5, 20, 25),
}


def pe_clip_prompt(label: str) -> str:
    """PE-CLIP's T_k = {AU_1, ..., AU_n}: the class's AU descriptions in place of its name."""
    return ", ".join(PE_CLIP_DESCRIPTIONS[label]) + "."


def dk_clip_prompt(label: str) -> str:
    """DK-CLIP's class name with its AUs joined by "or": "Happiness with cheek raiser, lip corner puller or lip
    part." (AUs that need not fire together)."""
    name = CLASS_NAMES[label].capitalize()
    aus = [AU_NAMES[au] for au in DK_CLIP_AUS.get(label, ())]
    if not aus:
        return f"{name}."
    if len(aus) == 1:
        return f"{name} with {aus[0]}."
    return f"{name} with {', '.join(aus[:-1])} or {aus[-1]}."


def described_class(label: str) -> str:
    """Class name plus its description of subtle facial changes (DuSE's fixed prompt words)."""
    return f"{CLASS_NAMES[label]}: {CLASS_DESCRIPTIONS[label]}."


def resolve_labels(dataset: str | None = None, num_classes: int | None = None,
                   labels: Sequence[str] | None = None) -> tuple[str | None, tuple[str, ...]]:
    """(dataset, labels) from whichever the caller gave: explicit labels win, then the dataset, then the class
    count (7 -> DFEW, 11 -> MAFW). Inconsistent arguments are an error, not a guess."""
    if labels is not None:
        labels = tuple(labels)
        unknown = [label for label in labels if label not in CLASS_NAMES]
        if unknown:
            raise ValueError(f"labels {unknown} have no class name for the text prompts; known: {sorted(CLASS_NAMES)}")
    elif dataset is not None:
        key = dataset.lower()
        if key not in DATASET_LABELS:
            raise ValueError(f"unknown dataset {dataset!r}; known: {sorted(DATASET_LABELS)}")
        dataset, labels = key, DATASET_LABELS[key]
    elif num_classes is not None:
        by_count = {7: "dfew", 11: "mafw"}
        if num_classes not in by_count:
            raise ValueError(f"num_classes={num_classes} matches no dataset (7: DFEW/FERV39k, 11: MAFW); "
                             "pass labels=[...]")
        dataset = by_count[num_classes]
        labels = DATASET_LABELS[dataset]
    else:
        dataset, labels = "dfew", DATASET_LABELS["dfew"]
    if num_classes is not None and num_classes != len(labels):
        raise ValueError(f"num_classes={num_classes} but {len(labels)} labels: {list(labels)}")
    return dataset, labels


def class_polarity(labels: Sequence[str]) -> tuple[int, ...]:
    """Index into POLARITIES for each label (OUS's polarity targets)."""
    missing = [label for label in labels if label not in CLASS_POLARITY]
    if missing:
        raise ValueError(f"no polarity for labels {missing}")
    return tuple(POLARITIES.index(CLASS_POLARITY[label]) for label in labels)


# ---- tokenisation -------------------------------------------------------------------------------------------------

PLACEHOLDER = "X"  # one BPE token; learnable prompt vectors replace these placeholders' embeddings


@lru_cache(maxsize=None)
def _tokenizer():
    import open_clip

    # Every CLIP in open_clip's ViT-B/L family shares this BPE vocabulary (bundled, so it works offline).
    return open_clip.get_tokenizer("ViT-B-16")


def tokenize(texts: Sequence[str], context_length: int = 77):
    """texts -> LongTensor[len(texts), context_length] of CLIP BPE ids (SOT ... EOT, zero padded). A text that
    would be cut short is an error: truncation would drop the EOT token whose feature CLIP pools."""
    tokenizer = _tokenizer()
    too_long = [text for text in texts if len(tokenizer.encode(text)) + 2 > context_length]  # + SOT and EOT
    if too_long:
        raise ValueError(f"prompt longer than {context_length} tokens: {too_long[0]!r}")
    tokens = tokenizer(list(texts), context_length=context_length)
    return tokens


def with_placeholders(text: str, num_tokens: int) -> str:
    """`num_tokens` placeholders right after SOT, then the text: where learnable context vectors go (CoOp, MaPLe)."""
    return " ".join([PLACEHOLDER] * num_tokens + [text])
