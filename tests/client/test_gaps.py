"""The client's gap counting from seq numbers: jumps, heartbeats ahead of what arrived, restarts, old services."""

import logging

from client.gaps import SequenceGaps


def ev(source, seq, type="emotion", **extra):
    return {"type": type, "source": source, "seq": seq, **extra}


def test_jumps_and_heartbeats_count_lost_events_once(caplog):
    gaps = SequenceGaps()
    with caplog.at_level(logging.WARNING, logger="client.gaps"):
        assert gaps.observe(ev("cam", 41)) == 0  # joined mid-stream: a baseline, not a gap
        assert gaps.observe(ev("cam", 42)) == 0
        assert gaps.observe(ev("cam", 45)) == 2  # 43 and 44 lost
        assert gaps.observe(ev("service", 7, "heartbeat", last_seq={"cam": 48, "door": 3})) == 3  # 46..48
        assert gaps.observe(ev("cam", 49)) == 0  # and not counted again
        assert gaps.observe(ev("service", 9, "heartbeat", last_seq={"cam": 49, "door": 3})) == 1  # heartbeat 8
    assert (gaps.missed, gaps.gaps) == (6, 3)
    assert "2 event(s) of source 'cam' lost before seq 45 (last received 42)" in caplog.text


def test_a_restarted_service_and_a_service_without_seq_are_not_gaps():
    gaps = SequenceGaps()
    gaps.observe(ev("cam", 500))
    assert gaps.observe(ev("cam", 1)) == 0 and gaps.observe(ev("cam", 2)) == 0  # numbers start again
    assert gaps.observe({"type": "emotion", "source": "cam"}) == 0
    assert gaps.missed == 0


def test_a_stream_of_one_source_checks_only_that_source_in_heartbeats():
    gaps = SequenceGaps(follow="cam")
    gaps.observe(ev("cam", 1))
    gaps.observe(ev("service", 1, "heartbeat", last_seq={"cam": 1, "door": 90}))
    assert gaps.observe(ev("service", 2, "heartbeat", last_seq={"cam": 1, "door": 99})) == 0
    assert gaps.missed == 0
