"""Emotion labels as text for the LLM that does the talking.

The DuSE robot deployment (papers/duse.txt, "Additional deployment details") uses the emotion model as a perception
front-end for Qwen / LLaMA: the detected dynamic emotions are fed into the large model as part of its prompt. Here
that is a scene sentence ("Two people are in front of you: the one on the left looks happy and ...") and the same
sentence inside an OpenAI/Qwen chat `messages` list. All wording lives in `PromptTemplates`, so a deployment can
change it from the settings without touching code.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel, Field, model_validator

from service.events import Box

# Dataset labels (DFEW, FERV39k, MAFW, fer) as the adjective a sentence needs.
ADJECTIVES = {
    "angry": "angry", "anger": "angry", "disgust": "disgusted", "fear": "afraid", "happy": "happy",
    "happiness": "happy", "sad": "sad", "sadness": "sad", "surprise": "surprised", "neutral": "neutral",
    "contempt": "contemptuous", "anxiety": "anxious", "helplessness": "helpless",
    "disappointment": "disappointed",
}

DEFAULT_SYSTEM = (
    "You are a friendly robot talking face to face with people. Your camera and an emotion-recognition model tell "
    "you how the people in front of you seem to feel; this is what they perceive: {scene} "
    "Use it the way an attentive person would: acknowledge feelings naturally when it fits the conversation, adapt "
    "your tone, and do not mention percentages, confidence, the camera or the model. Treat the reading as a hint, "
    "not a fact: if someone only may look a certain way, do not insist on it. Keep your answers short and spoken.")


class PromptTemplates(BaseModel):
    """Every piece of wording the prompt formatter uses. Placeholders: {adjective} (e.g. "afraid"), {label} (the
    model's own label), {confidence} (0..1, format it with :.0%), {duration} (seconds the window spans),
    {position} (a position phrase), {count} (a number word), {people} (the joined per-person phrases),
    {scene} (the scene sentence), {who} (who the sentence is about: the person, or the one on the left, or one
    back after {ago}), {n} (a number of seconds or minutes)."""

    single: str = Field("{who} has looked {adjective} for the last {duration:.0f} seconds "
                        "({confidence:.0%} confidence).", description="one face, confident")
    single_unsure: str = Field("{who} may look {adjective} (only {confidence:.0%} confidence "
                               "over the last {duration:.0f} seconds).", description="one face, below unsure_below")
    single_unreadable: str = Field("{who} is in view, but you can't see their face well enough to tell how they "
                                   "feel.", description="one face whose label is uncertain (uncertain_reason)")
    who: str = Field("The person in front of you", description="{who} of the single-face sentences")
    who_back: str = Field("The person who was here {ago}, now back,",
                          description="{who} of the single-face sentences for a person seen before")
    single_looking: str = Field(" They are looking at you.", description="after a single-face sentence: looking")
    single_not_looking: str = Field(" They are not looking at you.",
                                    description="after a single-face sentence: head turned away from you")
    nobody: str = Field("Nobody is in front of you right now.", description="no face in view")
    group: str = Field("{count} people are in front of you: {people}.", description="two faces or more")
    person: str = Field("{who} looks {adjective}", description="one face of a group, confident ({position}: "
                        "the position phrase alone)")
    person_unsure: str = Field("{who} may look {adjective}",
                               description="one face of a group, below unsure_below")
    person_unreadable: str = Field("you can't see the face of {who} well",
                                   description="one face of a group whose label is uncertain")
    who_in_group: str = Field("the one {position}", description="{who} of a group's phrases")
    who_back_in_group: str = Field("the one {position}, who was here {ago},",
                                   description="{who} of a group's phrases for a person seen before")
    looking_mark: str = Field(" (looking at you)", description="after {who} in a group: that person looks at you")
    ago_seconds: str = Field("{n} seconds ago", description="{ago}: under 45 s")
    ago_minute: str = Field("a minute ago", description="{ago}: 45-90 s")
    ago_minutes: str = Field("{n} minutes ago", description="{ago}: longer")
    separator: str = Field(", ", description="between per-person phrases")
    last_separator: str = Field(" and ", description="before the last per-person phrase")
    unsure_below: float = Field(0.5, ge=0, le=1, description="confidence under which the unsure phrases are used")
    number_words: dict[int, str] = Field(
        {2: "Two", 3: "Three", 4: "Four", 5: "Five"}, description="{count} for these group sizes; digits otherwise")
    # Positions as the camera sees them, left to right in the image.
    left: str = "on the left"
    middle: str = "in the middle"
    right: str = "on the right"
    from_left: str = Field("{ordinal} from the left", description="4+ people: the ones between the ends")
    from_right: str = Field("{ordinal} from the right", description="4+ people: the ones between the ends")
    ordinal_words: dict[int, str] = Field({2: "second", 3: "third", 4: "fourth", 5: "fifth"},
                                          description="{ordinal}; 6th, 7th, ... otherwise")
    system: str = Field(DEFAULT_SYSTEM, description="the chat system message; {scene} is the scene sentence")
    default_user: str = Field("Greet whoever is in front of you in a way that fits how they seem to feel.",
                              description="the chat user turn when the caller gives no user text")

    @model_validator(mode="after")
    def _templates_format(self) -> PromptTemplates:
        # A typo in a configured template fails at start-up, not in the inference worker at the first event.
        sample = {"adjective": "happy", "label": "happy", "confidence": 0.8, "duration": 2.0, "position": "on the left",
                  "count": "Two", "people": "...", "scene": "...", "ordinal": "second", "who": "...",
                  "ago": "a minute ago", "n": 2}
        for name in ("single", "single_unsure", "single_unreadable", "who", "who_back", "nobody", "group", "person",
                     "person_unsure", "person_unreadable", "who_in_group", "who_back_in_group", "ago_seconds",
                     "ago_minute", "ago_minutes", "from_left", "from_right", "system", "default_user"):
            try:
                getattr(self, name).format(**sample)
            except (KeyError, IndexError, ValueError) as error:
                raise ValueError(f"prompt template {name!r} does not format: {error!r}; placeholders are "
                                 f"{{{'}, {'.join(sample)}}}") from error
        return self


@dataclass(frozen=True)
class FaceState:
    """What the prompt needs to know about one tracked face: its latest emotion window, and who it is."""

    track_id: int
    label: str
    confidence: float
    box: Box  # x, y, w, h in source pixels
    t_start: float
    t_end: float
    absent_s: float | None = None  # a person seen before: how long they were gone
    looking: bool | None = None  # None: not known
    uncertain: bool = False  # the label is not to be stated (uncertain_reason)

    @property
    def centre_x(self) -> float:
        return self.box[0] + self.box[2] / 2


def adjective(label: str) -> str:
    return ADJECTIVES.get(label.lower(), label.lower())


def time_ago(seconds: float, templates: PromptTemplates) -> str:
    if seconds < 45:
        return templates.ago_seconds.format(n=max(1, round(seconds)))
    if seconds < 90:
        return templates.ago_minute.format(n=1)
    return templates.ago_minutes.format(n=round(seconds / 60))


def emotion_prompt(label: str, confidence: float, duration: float, templates: PromptTemplates | None = None,
                   absent_s: float | None = None, looking: bool | None = None, uncertain: bool = False) -> str:
    """The sentence for one face (pure): how it looks (nothing of that when `uncertain`), whether the person is
    back after `absent_s` seconds away, and whether they look at you (`looking`, None: not said)."""
    templates = templates or PromptTemplates()
    who = templates.who if absent_s is None else templates.who_back.format(ago=time_ago(absent_s, templates))
    if uncertain:
        chosen = templates.single_unreadable
    else:
        chosen = templates.single if confidence >= templates.unsure_below else templates.single_unsure
    sentence = chosen.format(adjective=adjective(label), label=label, confidence=confidence,
                             duration=max(duration, 1.0), who=who)
    if looking is not None:
        sentence += templates.single_looking if looking else templates.single_not_looking
    return sentence


def face_prompt(face: FaceState, templates: PromptTemplates) -> str:
    return emotion_prompt(face.label, face.confidence, face.t_end - face.t_start, templates, face.absent_s,
                          face.looking, face.uncertain)


def _zone(centre_x: float, frame_width: int) -> str:
    third = frame_width / 3
    return "left" if centre_x < third else "right" if centre_x > 2 * third else "middle"


def _ordinal(n: int, templates: PromptTemplates) -> str:
    if n in templates.ordinal_words:
        return templates.ordinal_words[n]
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def positions(centres_x: list[float], frame_width: int, templates: PromptTemplates) -> list[str]:
    """Position phrases for faces already ordered left to right (pure).

    Each face first gets the third of the frame its centre lies in (left / middle / right). When that tells every
    face apart it is used, being the truest description; when two faces share a third, the phrases come from the
    order instead, so the LLM can still tell who is who: the ends are "on the left" / "on the right", a single face
    between them is "in the middle", and with four or more the ones between are counted from the nearer end
    ("second from the left"). A frame_width of 0 (not known yet) means the order alone."""
    zones = [_zone(x, frame_width) for x in centres_x] if frame_width > 0 else []
    words = {"left": templates.left, "middle": templates.middle, "right": templates.right}
    if zones and len(set(zones)) == len(zones):
        return [words[zone] for zone in zones]
    count = len(centres_x)
    phrases = []
    for i in range(count):
        from_right = count - 1 - i
        if i == 0:
            phrases.append(templates.left)
        elif from_right == 0:
            phrases.append(templates.right)
        elif i == from_right or count == 3:
            phrases.append(templates.middle)
        elif i < from_right:
            phrases.append(templates.from_left.format(ordinal=_ordinal(i + 1, templates)))
        else:
            phrases.append(templates.from_right.format(ordinal=_ordinal(from_right + 1, templates)))
    return phrases


def describe_scene(faces: list[FaceState], frame_width: int, templates: PromptTemplates) -> str:
    """One sentence about everyone in view, ordered left to right (pure). One face gets the single-face sentence
    (with how long and how sure); a group gets one short phrase per person, without numbers. A face whose label is
    uncertain gets no emotion ("you can't see their face well"); a person seen before is spoken of as back; who
    looks at you is said."""
    if not faces:
        return templates.nobody
    if len(faces) == 1:
        return face_prompt(faces[0], templates)
    ordered = sorted(faces, key=lambda f: (f.centre_x, f.track_id))
    phrases = []
    for face, position in zip(ordered, positions([f.centre_x for f in ordered], frame_width, templates)):
        if face.uncertain:
            chosen = templates.person_unreadable
        else:
            chosen = templates.person if face.confidence >= templates.unsure_below else templates.person_unsure
        who = (templates.who_in_group.format(position=position) if face.absent_s is None else
               templates.who_back_in_group.format(position=position, ago=time_ago(face.absent_s, templates)))
        if face.looking:
            who += templates.looking_mark
        phrases.append(chosen.format(position=position, adjective=adjective(face.label), label=face.label,
                                     confidence=face.confidence, duration=max(face.t_end - face.t_start, 1.0),
                                     who=who))
    people = templates.separator.join(phrases[:-1]) + templates.last_separator + phrases[-1]
    count = templates.number_words.get(len(faces), str(len(faces)))
    return templates.group.format(count=count, people=people)


def chat_messages(prompt: str, templates: PromptTemplates, user_text: str | None = None) -> list[dict[str, str]]:
    """The scene sentence in OpenAI/Qwen chat format: [system, user] (pure).

    The emotion context goes into the system message. DuSE feeds the detected emotions to the LLM "as part of the
    prompt"; the system turn is where a chat model such as Qwen expects standing facts about its situation, it
    stays valid while the dialogue program appends its own user / assistant turns, and it keeps the user's words
    verbatim (the perception is not mistaken for something the person said). The user turn is `user_text` when the
    caller has it (what the person just said), else `templates.default_user`, a short instruction to respond."""
    return [{"role": "system", "content": templates.system.format(scene=prompt)},
            {"role": "user", "content": user_text if user_text is not None else templates.default_user}]
