"""`python -m bench fleet`, short: robot processes streaming the sample clip's windows through one real tritonserver
beside a local robot, with the batch sizes read from Triton's statistics (figures themselves: bench/results)."""

from bench import fleet
from tests.triton.conftest import needs_tritonserver


def test_a_short_fleet_run_measures_every_robot_and_the_batches_triton_formed():
    needs_tritonserver()
    result = fleet.run(robots=(1, 2), seconds=3.0, failures=False, in_step_row=False)
    assert result["local"]["robots"] == 1 and not result["local"]["bytes_per_window"]
    for row, robots in zip(result["rows"], (1, 2)):
        assert row["robots"] == robots and row["all_remote"]
        assert row["windows"] >= robots * 3.0 * result["windows_per_face_s"] * 0.9  # every due window was sent
        head = row["batches"][f"{result['model']}-window-head"]
        assert sum(size * n for size, n in head.items()) == row["windows"]  # each window once through the head
        assert 0 < row["bytes_per_window"] < result["float32_window_bytes"] / 10
        assert row["bytes_per_face_s"] == row["bytes_per_window"] * result["windows_per_face_s"]
    assert "robots | windows/s" in fleet.describe(result)


def test_switch_times_and_batch_deltas():
    log = [(1.0, 1.01, "triton://x"), (2.0, 2.5, "local"), (2.5, 2.51, "local"), (5.0, 5.02, "triton://x")]
    assert fleet._switch_times(log, 1.5, "local") == 1.0
    assert fleet._switch_times(log, 3.0, "triton://x") == 2.02
    before = {"m": {"batch_stats": [{"batch_size": "1", "compute_infer": {"count": "3"}}]}}
    after = {"m": {"batch_stats": [{"batch_size": "1", "compute_infer": {"count": "5"}},
                                   {"batch_size": "4", "compute_infer": {"count": "2"}}]}}
    assert fleet._batches(before, after) == {"m": {1: 2, 4: 2}}
