"""Lost events, from the `seq` numbers of the live stream: every event carries its number in its source's stream
(one more than the previous), and every heartbeat the last number published per source (`last_seq`). A jump, or
a heartbeat ahead of what arrived, is a gap: events dropped because this client read too slowly, or sent while it
was disconnected. The service does not replay them; this says how many there were."""

from __future__ import annotations

import logging

log = logging.getLogger("client.gaps")


class SequenceGaps:
    """Feed every received event to observe(); `missed` counts lost events, `gaps` the times events were lost.
    follow: the only source whose heartbeat figures are checked (a stream opened with ?source=); None: all."""

    def __init__(self, follow: str | None = None):
        self.follow = follow
        self.last: dict[str, int] = {}  # source -> last seq received (or known lost)
        self.missed = 0
        self.gaps = 0

    def observe(self, event: dict) -> int:
        """The number of events lost just before this one (0 when none, or when the event has no seq)."""
        source, seq = event.get("source"), event.get("seq")
        if not isinstance(seq, int) or source is None:
            return 0  # a service from before seq numbers
        lost = self._advance(source, seq, seq - 1)
        if event.get("type") == "heartbeat":
            for other, published in (event.get("last_seq") or {}).items():
                if self.follow is None or other == self.follow:
                    lost += self._advance(other, published, published)
        return lost

    def _advance(self, source: str, seq: int, expected_before: int) -> int:
        """`expected_before`: the seq this client should already have seen for `source` to have lost nothing."""
        last = self.last.get(source)
        if last is None or seq < last:
            # First sight of the source, or the service restarted (numbers start again): a new baseline.
            self.last[source] = seq
            return 0
        if seq == last:
            return 0
        lost = expected_before - last
        self.last[source] = seq
        if lost:
            self.missed += lost
            self.gaps += 1
            log.warning("event stream: %d event(s) of source %r lost before seq %d (last received %d); %d lost "
                        "in all", lost, source, expected_before + 1, last, self.missed)
        return lost
