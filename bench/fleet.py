"""Many robots, one inference server: `python -m bench fleet [--robots 1 4 16] [--seconds 20]`.

Each simulated robot is a process of its own streaming the sample clip's real face windows (the service's own face
loop made them: 8 fps sampled, a window every 2 sampled frames per face, i.e. 4 windows a second per face) at the
live rate, looped, through the service's FailoverEngine and a frame cache of its own, against one tritonserver on
loopback (bench/triton_server.py: the nvidia-pytriton wheel's Triton 2.51, Python backend running the bundle's
ONNX graphs with ONNX Runtime on the CPU; the repository `export triton --backend python` wrote). Beside it, in
the same run, one robot running the same windows on its local engine.

Per fleet size: windows per second, the latency a window's trip to the server adds (from the moment the window is
ready to its probabilities back; the robot runs no model itself), the local engine's own latency, the batch sizes
Triton formed (its statistics extension: executions per batch size), CPU per robot (the robot process's own CPU
time, as a share of one core) and the server's, and the tensor bytes per window and per face-second. Then the link
failure timings with one robot: the server killed (time to the first window classified locally; restarted: time
from the server answering to the first window back on it), and the server hung by SIGSTOP (the longest any window
waited, against the deadline). Goal: 16 robots at live rate with p95 added latency <= 50 ms.
"""

from __future__ import annotations

import multiprocessing
import os
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from bench.stats import percentile

ROBOTS = (1, 4, 16)
SECONDS = 20.0
DEADLINE_S = 0.5
GOAL_P95_MS = 50.0
QUEUE_DELAY_US = 2000  # export triton's default
FRAME_ID_STRIDE = 1_000_000  # each loop of the clip gets new frame numbers, as a live camera's frames would


def clip_windows() -> tuple[list[tuple[float, list]], float, int]:
    """The sample clip's face windows as the live service makes them, grouped by the sampled frame that completed
    them: [(seconds after the first, [Window, ...])], the loop length (s) and windows per face-second."""
    from service.config import SAMPLE_CLIP, Settings
    from service.detect import create_detector
    from service.inference import create_engine
    from service.metrics import StageTimer
    from service.pipeline import ClipFaces, FacePipeline
    from service.track import create_tracker

    settings = Settings(_env_file=None)
    engine = create_engine(settings)
    faces = ClipFaces(SAMPLE_CLIP, FacePipeline("robot", engine.spec, settings, create_detector(settings),
                                                create_tracker(settings), StageTimer()), settings.sample_fps)
    groups = [(w[0].t_end, w) for _, result in faces if (w := result.windows)]
    first = groups[0][0]
    period = settings.hop / settings.sample_fps
    loop = groups[-1][0] - first + period
    return [(t - first, windows) for t, windows in groups], loop, round(settings.sample_fps / settings.hop)


def _robot(url: str | None, groups, loop_s: float, go, seconds: float, out, phase_s: float = 0.0) -> None:
    """One robot: once `go` is set and `phase_s` later, its windows at their live times for `seconds`, each group of
    windows classified as the live inference worker does (predict_routed, the robot's own frame cache). Says
    "ready" on `out` first."""
    import logging

    logging.disable(logging.WARNING)
    from service.config import Settings
    from service.inference import FrameFeatureCache, create_engine, engine_status, predict_routed
    from service.inference.base import close_engine

    settings = Settings(_env_file=None, engine=url or "local", engine_deadline_s=DEADLINE_S, intra_op_threads=1)
    engine = create_engine(settings)
    cache = FrameFeatureCache(settings.frame_cache_frames)
    out.put("ready")
    go.wait()
    time.sleep(phase_s)
    wall0, cpu0 = time.monotonic(), time.process_time()
    latencies, log = [], []
    k = 0
    while True:
        loop, i = divmod(k, len(groups))
        offset, windows = groups[i]
        due = wall0 + loop * loop_s + offset
        if due - wall0 > seconds:
            break
        time.sleep(max(0.0, due - time.monotonic()))
        shifted = [("robot", replace(w, frame_ids=tuple(f + loop * FRAME_ID_STRIDE for f in w.frame_ids)))
                   for w in windows]
        routed = predict_routed(engine, shifted, cache)
        done = time.monotonic()
        latencies.append(done - due)
        log.append((time.time() - (done - due), time.time(), routed.engine))  # wall clock: ready, done, where
        k += 1
    cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
    status = engine_status(engine)
    close_engine(engine)
    out.put({"latencies": latencies, "log": log, "cpu_s": cpu, "wall_s": wall,
             "windows": sum(len(groups[j % len(groups)][1]) for j in range(k)),
             "bytes": status.remote_bytes_sent + status.remote_bytes_received,
             "windows_remote": status.windows_remote})


def _start(url: str | None, robots: int, groups, loop_s: float, seconds: float, in_step: bool = False):
    """Robot processes, started once every one has connected (and loaded its fallback): at phases spread evenly
    over the window period (robots that know nothing of each other are not in step), or all `in_step`."""
    context = multiprocessing.get_context("spawn")
    out, go = context.Queue(), context.Event()
    period = groups[1][0] - groups[0][0] if len(groups) > 1 else loop_s
    processes = [context.Process(target=_robot, args=(url, groups, loop_s, go, seconds, out,
                                                      0.0 if in_step else period * i / robots))
                 for i in range(robots)]
    for p in processes:
        p.start()
    for _ in processes:
        if out.get(timeout=300) != "ready":
            raise RuntimeError("a robot failed to start")
    go.set()
    return processes, out


def _finish(processes, out, seconds: float) -> list[dict]:
    results = [out.get(timeout=seconds + 120) for _ in processes]
    for p in processes:
        p.join(30)
    return results


def _fleet(url: str | None, robots: int, groups, loop_s: float, seconds: float, in_step: bool = False) -> list[dict]:
    return _finish(*_start(url, robots, groups, loop_s, seconds, in_step), seconds)


def _group_cpu_s(pgid: int) -> float:
    """CPU seconds (user + system) of every process in a process group (the server and its Python stubs)."""
    total, tick = 0, os.sysconf("SC_CLK_TCK")
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if os.getpgid(int(proc.name)) != pgid:
                continue
            fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, ProcessLookupError, IndexError):
            continue
        total += int(fields[11]) + int(fields[12])
    return total / tick


def _batches(before: dict, after: dict) -> dict[str, dict[int, int]]:
    """Executions per batch size that Triton formed between two statistics readings, per model."""
    formed = {}
    for model, stats in after.items():
        old = {int(b["batch_size"]): int(b["compute_infer"].get("count", 0))
               for b in before.get(model, {}).get("batch_stats", [])}
        sizes = {int(b["batch_size"]): int(b["compute_infer"].get("count", 0)) - old.get(int(b["batch_size"]), 0)
                 for b in after[model].get("batch_stats", [])}
        formed[model] = {size: n for size, n in sorted(sizes.items()) if n > 0}
    return formed


def _row(results: list[dict], seconds: float) -> dict:
    latencies = [x for r in results for x in r["latencies"]]
    windows = sum(r["windows"] for r in results)
    remote = sum(r["windows_remote"] for r in results)
    return {"robots": len(results), "windows": windows, "windows_per_s": round(windows / seconds, 1),
            "p50_ms": round(statistics.median(latencies) * 1000, 1),
            "p95_ms": round(percentile(latencies, 0.95) * 1000, 1),
            "max_ms": round(max(latencies) * 1000, 1),
            "cpu_per_robot": round(statistics.mean(r["cpu_s"] / r["wall_s"] for r in results), 4),
            "bytes_per_window": round(sum(r["bytes"] for r in results) / remote) if remote else None,
            "all_remote": remote == windows}


def _switch_times(log: list, at: float, to: str) -> float | None:
    """Seconds from `at` (wall clock) until the first window that was ready after it and ran on `to`."""
    done = [end for ready, end, where in log if ready >= at and (where == "local") == (to == "local")]
    return round(min(done) - at, 3) if done else None


def _failures(url: str, server, groups, loop_s: float) -> dict:
    """One robot streaming while the server is killed and restarted, then hung (SIGSTOP) and resumed."""
    import threading

    seconds = 26.0
    processes, out = _start(url, 1, groups, loop_s, seconds)
    start_at = time.time()
    marks = {}

    def script():
        time.sleep(3.0)
        marks["killed"] = time.time()
        server.kill()
        time.sleep(3.0)
        marks["restarting"] = time.time()
        server.start()
        marks["answers"] = time.time()
        time.sleep(max(0.0, start_at + 16.0 - time.time()))
        marks["paused"] = time.time()
        server.pause()
        time.sleep(4.0)
        marks["resumed"] = time.time()
        server.resume()

    driver = threading.Thread(target=script)
    driver.start()
    (result,) = _finish(processes, out, seconds)
    driver.join()
    log = result["log"]
    hung = [end - ready for ready, end, _ in log if marks["paused"] - 1.0 <= ready <= marks["resumed"]]
    return {"marks": {k: round(v - start_at, 3) for k, v in marks.items()},
            "killed_to_local_s": _switch_times(log, marks["killed"], "local"),
            "restart_s": round(marks["answers"] - marks["restarting"], 2),
            "answers_to_remote_s": _switch_times(log, marks["answers"], url),
            "paused_to_local_s": _switch_times(log, marks["paused"], "local"),
            "hung_longest_wait_s": round(max(hung), 3) if hung else None,
            "resumed_to_remote_s": _switch_times(log, marks["resumed"], url),
            "deadline_s": DEADLINE_S, "windows": result["windows"],
            "windows_local": sum(1 for *_, where in log if where == "local")}


def run(robots: tuple[int, ...] = ROBOTS, seconds: float = SECONDS, queue_delay_us: int = QUEUE_DELAY_US,
        failures: bool = True, in_step_row: bool = True) -> dict:
    """`in_step_row`: the largest fleet once more with every robot's windows due at the same instants."""
    from bench.triton_server import TritonServer
    from export.triton import write_triton_repository
    from service.bundle import ModelBundle
    from service.config import DEFAULT_BUNDLE
    from service.inference.triton_engine import TritonEngine, parse_engine_url

    groups, loop_s, per_face_s = clip_windows()
    work = Path(tempfile.mkdtemp(prefix="bench-fleet-"))
    bundle = ModelBundle.load(DEFAULT_BUNDLE)
    write_triton_repository(bundle, work / "models", backend="python", threads=1, max_batch_size=16,
                            max_queue_delay_us=queue_delay_us)
    rows = []
    local = _row(_fleet(None, 1, groups, loop_s, seconds), seconds)
    with TritonServer(work / "models", work / "tritonserver.log") as server:
        url = f"triton://127.0.0.1:{server.grpc_port}/{bundle.spec.name}"
        stats = TritonEngine(parse_engine_url(url))
        stats.connect(timeout=5)
        for n, in_step in [(n, False) for n in robots] + ([(max(robots), True)] if in_step_row else []):
            before, cpu0 = stats.statistics(), _group_cpu_s(server.process.pid)
            row = _row(_fleet(url, n, groups, loop_s, seconds, in_step), seconds)
            row["server_cpu"] = round((_group_cpu_s(server.process.pid) - cpu0) / seconds, 3)
            row["batches"] = _batches(before, stats.statistics())
            row["in_step"] = in_step
            rows.append(row)
        stats.close()
        failed = _failures(url, server, groups, loop_s) if failures else None
    for row in rows:
        row["bytes_per_face_s"] = row["bytes_per_window"] * per_face_s if row["bytes_per_window"] else None
    float_window = bundle.spec.num_frames * bundle.spec.image_size ** 2 * bundle.spec.channels * 4
    return {"model": bundle.spec.name, "seconds": seconds, "deadline_s": DEADLINE_S, "windows_per_face_s": per_face_s,
            "clip_loop_s": round(loop_s, 2), "local": local, "rows": rows, "failures": failed,
            "queue_delay_us": queue_delay_us,
            "goal_p95_ms": GOAL_P95_MS, "float32_window_bytes": float_window,
            "server": "tritonserver 2.51 (nvidia-pytriton 0.7.0 wheel), Python backend, ONNX Runtime CPU, 1 thread "
                      "and 1 instance per model, loopback gRPC"}


def describe(result: dict) -> str:
    local = result["local"]
    lines = [f"fleet: {result['model']} on {result['server']}; each robot streams the sample clip's face windows at "
             f"the live rate ({result['windows_per_face_s']} windows/face-second), {result['seconds']:.0f} s",
             f"  local engine, 1 robot: {local['windows_per_s']} windows/s, latency p50 {local['p50_ms']} ms, p95 "
             f"{local['p95_ms']} ms, CPU {local['cpu_per_robot']:.1%} of a core",
             "  robots | windows/s | added p50 ms | p95 ms | max ms | CPU/robot | server CPU | bytes/window | "
             "bytes/face-s | batches formed (head: size x executions)"]
    for row in result["rows"]:
        head = next((v for k, v in row["batches"].items() if k.endswith("window-head")), {})
        formed = ", ".join(f"{size}x{n}" for size, n in head.items())
        robots = f"{row['robots']}{' in step' if row['in_step'] else ''}"
        lines.append(f"  {robots:>6} | {row['windows_per_s']:>9} | {row['p50_ms']:>12} | {row['p95_ms']:>6} | "
                     f"{row['max_ms']:>6} | {row['cpu_per_robot']:>9.1%} | {row['server_cpu']:>10.0%} | "
                     f"{row['bytes_per_window']:>12} | {row['bytes_per_face_s']:>12} | {formed}")
    biggest = max((r for r in result["rows"] if not r["in_step"]), key=lambda r: r["robots"])
    verdict = "met" if biggest["p95_ms"] <= result["goal_p95_ms"] and biggest["all_remote"] else "NOT met"
    lines.append(f"  goal p95 <= {result['goal_p95_ms']:.0f} ms at {biggest['robots']} robots: {verdict} "
                 f"({biggest['p95_ms']} ms)")
    f = result["failures"]
    if f is None:
        return "\n".join(lines)
    lines.append(f"  server killed: first window local after {f['killed_to_local_s']} s; restarted (ready in "
                 f"{f['restart_s']} s): back on it {f['answers_to_remote_s']} s after it answered")
    lines.append(f"  server hung (SIGSTOP): first window local after {f['paused_to_local_s']} s, longest wait of a "
                 f"window {f['hung_longest_wait_s']} s (deadline {f['deadline_s']} s); resumed: back on it after "
                 f"{f['resumed_to_remote_s']} s")
    return "\n".join(lines)


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(prog="python -m bench.fleet", description=__doc__)
    parser.add_argument("--robots", nargs="+", type=int, default=list(ROBOTS))
    parser.add_argument("--seconds", type=float, default=SECONDS)
    parser.add_argument("--queue-delay-us", type=int, default=QUEUE_DELAY_US, help="Triton's dynamic batcher delay")
    parser.add_argument("--no-failures", action="store_true", help="skip the killed and hung server runs")
    args = parser.parse_args()
    from bench.machine import save

    figures = run(tuple(args.robots), args.seconds, args.queue_delay_us, not args.no_failures)
    print(describe(figures))
    print(f"  -> {save('fleet', figures)}")
