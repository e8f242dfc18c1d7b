"""Emotion labels as text for the LLM that does the talking (the DuSE robot deployment feeds them into its prompt)."""

from __future__ import annotations

# Dataset labels (DFEW, FERV39k, MAFW, fer) as the adjective a sentence needs.
ADJECTIVES = {
    "angry": "angry", "anger": "angry", "disgust": "disgusted", "fear": "afraid", "happy": "happy",
    "happiness": "happy", "sad": "sad", "sadness": "sad", "surprise": "surprised", "neutral": "neutral",
    "contempt": "contemptuous", "anxiety": "anxious", "helplessness": "helpless",
    "disappointment": "disappointed",
}

DEFAULT_TEMPLATE = ("The person in front of you has looked {adjective} for the last {duration:.0f} seconds "
                    "({confidence:.0%} confidence).")
UNSURE_TEMPLATE = ("The person in front of you may look {adjective} (only {confidence:.0%} confidence over the last "
                   "{duration:.0f} seconds).")


def adjective(label: str) -> str:
    return ADJECTIVES.get(label.lower(), label.lower())


def emotion_prompt(label: str, confidence: float, duration: float, unsure_below: float = 0.5,
                   template: str = DEFAULT_TEMPLATE, unsure_template: str = UNSURE_TEMPLATE) -> str:
    chosen = template if confidence >= unsure_below else unsure_template
    return chosen.format(adjective=adjective(label), label=label, confidence=confidence,
                         duration=max(duration, 1.0))
