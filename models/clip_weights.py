"""Which activation a CLIP weights file needs, decided from what the file is, never from its name.

OpenAI trained CLIP with QuickGELU (x * sigmoid(1.702 x)); open_clip's plain ViT configs use exact GELU, and running
weights with the other activation gives wrong numbers that look right. The activation is settled, in this order:

1. an explicit choice (`--quick-gelu` / `--no-quick-gelu`, or a method config that fixes it, DFER-CLIP's);
2. open_clip's pretrained tag the user names for the file (`--clip-tag openai`, `laion2b_s34b_b79k`, ...): open_clip's
   pretrained config says whether that release uses QuickGELU;
3. the file's sha256, when it is one of OpenAI's released files: their download URLs (listed in open_clip's
   pretrained.py) carry each file's sha256 in their path, copied into `OPENAI_SHA256` below;
4. otherwise the command stops (`ActivationUnknownError`, exit code 2) and says which flags settle it.

Random weights (no file) keep the architecture's own activation: nothing was trained with either.
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass
from pathlib import Path

from service.bundle import file_sha256

log = logging.getLogger(__name__)

# sha256 of OpenAI's released CLIP files -> open_clip model name; from the URLs
# https://openaipublic.azureedge.net/clip/models/<sha256>/<name>.pt (open_clip 3.3.0, pretrained.py).
OPENAI_SHA256 = {
    "40d365715913c9da98579312b702a82c18be219cc2a73407c4526f58eba950af": "ViT-B-32",
    "5806e77cd80f8b59890b7e101eabd078d9fb84e6937f9e85e4ecb61988df416f": "ViT-B-16",
    "b8cca3fd41ae0c99ba7e8951adf17d267cdb84cd88be6f7c2e0eca1737a03836": "ViT-L-14",
    "3035c92b350959924f9f00213499208652fc7ea050643e8b385c2dac08641f02": "ViT-L-14-336",
}


class ActivationUnknownError(ValueError):
    """A CLIP file whose activation cannot be told: the command must not guess (exit code 2)."""


@dataclass(frozen=True)
class Activation:
    quick_gelu: bool
    reason: str  # how it was decided, for the log, the run, the checkpoint and bundle.json

    @property
    def name(self) -> str:
        return "quick_gelu" if self.quick_gelu else "gelu"

    def describe(self) -> str:
        return f"{self.name} ({self.reason})"


def tag_quick_gelu(backbone: str, tag: str) -> bool:
    """QuickGELU or not for open_clip's pretrained release `tag` of `backbone`; ValueError for an unknown tag."""
    import open_clip

    tags = open_clip.list_pretrained_tags_by_model(backbone)
    if tag not in tags:
        raise ActivationUnknownError(f"open_clip has no pretrained tag {tag!r} for {backbone}; its tags: "
                                     f"{', '.join(tags) or 'none'}")
    return bool(open_clip.get_pretrained_cfg(backbone, tag).get("quick_gelu", False))


def resolve_activation(backbone: str, checkpoint: str | Path | None, *, quick_gelu: bool | None = None,
                       tag: str | None = None) -> Activation:
    """The activation for `backbone` built from `checkpoint` (None: random weights), as the module docstring says."""
    if quick_gelu is not None:
        known = _recognised(backbone, checkpoint, tag)
        if known is not None and known.quick_gelu != quick_gelu:
            log.warning("%s was chosen explicitly, but %s", "QuickGELU" if quick_gelu else "GELU", known.describe())
        return Activation(quick_gelu, "chosen explicitly")
    if checkpoint is None:
        return Activation(False, "random weights: the architecture's own GELU")
    known = _recognised(backbone, checkpoint, tag)
    if known is None:
        raise ActivationUnknownError(
            f"cannot tell which activation the CLIP weights {checkpoint} were trained with: the file is not one of "
            "OpenAI's released CLIP files (by sha256) and no open_clip pretrained tag was given. Pass --quick-gelu "
            "for OpenAI-trained weights (or weights fine-tuned from them), --no-quick-gelu for GELU ones (e.g. "
            "LAION's), or --clip-tag TAG naming the file's open_clip release")
    return known


def _recognised(backbone: str, checkpoint: str | Path | None, tag: str | None) -> Activation | None:
    if tag is not None:
        return Activation(tag_quick_gelu(backbone, tag), f"open_clip pretrained tag {tag!r}")
    if checkpoint is None:
        return None
    sha = file_sha256(checkpoint)
    name = OPENAI_SHA256.get(sha)
    if name is None:
        return None
    if name != backbone:
        raise ActivationUnknownError(f"{checkpoint} is OpenAI's {name} CLIP file, not a {backbone}")
    return Activation(True, f"OpenAI's released {name} file, sha256 {sha[:12]}")


def add_activation_flags(parser: argparse.ArgumentParser) -> None:
    """--quick-gelu / --no-quick-gelu / --clip-tag: how a CLIP file's activation is settled (models/clip_weights.py);
    every command that builds a backbone from a CLIP file takes them."""
    parser.add_argument("--quick-gelu", action=argparse.BooleanOptionalAction, default=None,
                        help="the CLIP file's activation: QuickGELU (OpenAI-trained weights) or GELU. Needed for any "
                             "file that is not one of OpenAI's released files (recognised by sha256) and has no "
                             "--clip-tag")
    parser.add_argument("--clip-tag", help="open_clip's pretrained tag of the CLIP file (openai, laion2b_s34b_b79k, "
                                           "...): its release config says the activation")
