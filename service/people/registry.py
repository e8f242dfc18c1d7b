"""PersonRegistry: the people a source has seen lately, each with a few face descriptors, so that someone who
leaves and comes back gets their person id again.

Privacy (README, "Privacy"): descriptors live here, in memory, and nowhere else: not in events, the state, logs,
metrics or ROS topics (a Person's repr leaves them out). A person is forgotten `memory_s` after they were last seen,
all of them on forget_all() (DELETE /v1/people, and the runtime's stop).

Matching prefers a miss to a false match: a descriptor joins a remembered person only when its distance to that
person (the least over the person's descriptors) is under `match_distance` and the next-nearest person is at least
`margin` further away; people in view on another track at the same time are never candidates (two faces at once are
two people). Otherwise the face is a new person."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np


def euclidean(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(np.asarray(a, np.float32) - np.asarray(b, np.float32)))


@dataclass
class Person:
    person_id: int
    last_seen: float
    descriptors: list[np.ndarray] = field(default_factory=list, repr=False)
    in_view: int = 0  # tracks of this person live now


@dataclass(frozen=True)
class Identity:
    person_id: int
    seen_before: bool
    absent_s: float | None  # since the person was last seen (seen_before only)
    distance: float | None  # to the person matched (seen_before only)


class PersonRegistry:
    def __init__(self, memory_s: float, match_distance: float, margin: float, max_descriptors: int = 4,
                 max_people: int = 256, distance: Callable[[np.ndarray, np.ndarray], float] = euclidean,
                 person_ids: itertools.count | None = None):
        self.memory_s, self.match_distance, self.margin = memory_s, match_distance, margin
        self.max_descriptors, self.max_people, self.distance = max_descriptors, max_people, distance
        self._people: dict[int, Person] = {}
        self._ids = person_ids or itertools.count(1)  # never reused, not even after forget_all
        self._lock = threading.Lock()
        self.matched = self.new_people = 0

    def __len__(self) -> int:
        with self._lock:
            return len(self._people)

    def identify(self, descriptor: np.ndarray | None, now: float) -> Identity:
        """The person a new track's face is: a remembered one it matches (see the module's rule), else a new one.
        Without a descriptor (a face too poor to describe) always a new one. The person counts as in view until
        `left()`."""
        with self._lock:
            self._forget_expired(now)
            match = self._match(descriptor) if descriptor is not None else None
            if match is not None:
                person, distance = match
                absent = round(max(0.0, now - person.last_seen), 1)
                self.matched += 1
            else:
                person = Person(next(self._ids), now)
                self._people[person.person_id] = person
                self.new_people += 1
                self._bound()
            person.in_view += 1
            person.last_seen = now
            if descriptor is not None:
                self._add(person, descriptor)
            return Identity(person.person_id, match is not None, absent if match else None,
                            round(distance, 4) if match else None)

    def _match(self, descriptor: np.ndarray) -> tuple[Person, float] | None:
        nearest = sorted(((min(self.distance(descriptor, d) for d in p.descriptors), p)
                         for p in self._people.values() if p.descriptors and not p.in_view), key=lambda item: item[0])
        if not nearest or nearest[0][0] >= self.match_distance:
            return None
        if len(nearest) > 1 and nearest[1][0] - nearest[0][0] < self.margin:
            return None  # two remembered people fit nearly as well: ambiguous
        return nearest[0][1], nearest[0][0]

    def add_descriptor(self, person_id: int, descriptor: np.ndarray) -> None:
        """A fresh descriptor of a person in view (no-op for one forgotten meanwhile)."""
        with self._lock:
            person = self._people.get(person_id)
            if person is not None:
                self._add(person, descriptor)

    def _add(self, person: Person, descriptor: np.ndarray) -> None:
        person.descriptors.append(np.array(descriptor, np.float32, copy=True))
        del person.descriptors[:-self.max_descriptors]

    def seen(self, person_id: int, now: float) -> None:
        with self._lock:
            person = self._people.get(person_id)
            if person is not None:
                person.last_seen = max(person.last_seen, now)

    def left(self, person_id: int, now: float) -> None:
        """A track of the person ended at `now` (their memory span starts when the last one ends)."""
        with self._lock:
            person = self._people.get(person_id)
            if person is not None:
                person.in_view = max(0, person.in_view - 1)
                person.last_seen = max(person.last_seen, now)

    def none_in_view(self, now: float) -> None:
        """Every person out of view (a new face worker for the source: the tracks of the one before are over)."""
        with self._lock:
            for person in self._people.values():
                if person.in_view:
                    person.in_view, person.last_seen = 0, max(person.last_seen, now)

    def forget_all(self) -> int:
        """Forget everyone (descriptors dropped); returns how many people were remembered."""
        with self._lock:
            count = len(self._people)
            for person in self._people.values():
                person.descriptors.clear()
            self._people.clear()
            return count

    def _forget_expired(self, now: float) -> None:
        for person_id in [p.person_id for p in self._people.values()
                          if not p.in_view and now - p.last_seen > self.memory_s]:
            self._people.pop(person_id).descriptors.clear()

    def forget_expired(self, now: float) -> None:
        with self._lock:
            self._forget_expired(now)

    def _bound(self) -> None:
        # More people than max_people: the longest gone go first (memory stays bounded in a crowd).
        gone = sorted((p for p in self._people.values() if not p.in_view), key=lambda p: p.last_seen)
        for person in gone[:max(0, len(self._people) - self.max_people)]:
            self._people.pop(person.person_id).descriptors.clear()
