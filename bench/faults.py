"""Reliability suite: the service as a real process on loopback (bench/service_process.py), faults injected, one
row per check with what was expected and what was seen, and a table at the end. Bounded in time: every wait has a
deadline, a case that overruns fails its row and the suite goes on.

    python -m bench faults [--groups inputs live lifecycle budgets] [--out bench/results/faults.json]

Groups (one service process each, the lifecycle group two):
- inputs: bad uploads (empty, text, random bytes, no field, not multipart, over the limit), a wrong token, oversized
  and malformed headers (JSON 431/400), bad-request warnings rate-limited and never quoting the request, and
  Retry-After before any clip has been measured against the running clip's real analysis time;
- live: 10 concurrent uploads while 50 websocket clients listen (answers, metrics exact, events lost), a source
  that disappears and comes back, SIGSTOP/SIGCONT of the service, a client that never reads, a client that leaves
  and comes back (the gap its seq numbers show);
- lifecycle: SIGKILL mid-upload then a restart (leftovers removed), a short clip beside long background jobs that
  hold every clip worker (against its solo time), SIGTERM with a long clip in flight (bounded, 503s, spool empty);
- budgets: the upload budgets of issue 35 (bench/faults_budgets.py): decoding bombs, one client filling the queue
  and DELETE, slow and idle clients by the thousand, a full disk, a job id after a restart; with the sample clip's
  answer time beside each, memory peak, descriptors and files left.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
import statistics
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from bench.faults_budgets import budgets
from bench.hostile_clips import looped_clip
from bench.service_process import ServiceProcess, never_reading_websocket, wait_until

TOKEN = "faults-s3cret"
GROUPS = ("inputs", "live", "lifecycle", "budgets")
WORKERS = 2  # clip workers of the lifecycle service; it gets one more long background job than that
# The lifecycle cases send all their background jobs from one address: more than the default share of one client
ONE_CLIENT_FILLS_THE_WORKERS = {"max_background_clips_per_client": WORKERS + 1}


class Rows:
    """The suite's table: check, expected, observed, ok; `figures` keeps the numbers worth quoting."""

    def __init__(self):
        self.rows: list[dict] = []
        self.figures: dict = {}

    def add(self, check: str, expected: str, observed: str, ok: bool) -> None:
        self.rows.append({"check": check, "expected": expected, "observed": observed, "ok": bool(ok)})
        print(f"  {'ok  ' if ok else 'FAIL'} {check}: {observed}", flush=True)

    def attempt(self, check: str, expected: str, body: Callable[[], tuple[str, bool]]) -> None:
        """Run one check; an exception (a deadline passed) is a failed row, not the end of the suite."""
        try:
            observed, ok = body()
        except Exception as exc:  # noqa: BLE001 - a fault suite reports, it does not stop
            observed, ok = f"{type(exc).__name__}: {exc}"[:160], False
        self.add(check, expected, observed, ok)


# ---- footage and requests ---------------------------------------------------------------------------------------

def long_clip(path: Path, seconds: float) -> Path:
    """The bundled 6-s sample clip repeated (no re-encoding) to `seconds`."""
    from service.config import SAMPLE_CLIP

    return looped_clip(SAMPLE_CLIP, path, seconds)


def post_clip(base: str, name: str, data: bytes, headers: dict | None = None, background: bool = False,
              timeout: float = 300) -> httpx.Response:
    return httpx.post(base + "/v1/clips", files={"file": (name, data, "video/mp4")}, headers=headers or {},
                      params={"background": "true"} if background else None, timeout=timeout)


def detail(response: httpx.Response) -> str:
    try:
        return str(response.json().get("detail"))[:70]
    except ValueError:
        return f"(not JSON: {response.text[:40]!r})"


def raw_request(base: str, data: bytes) -> tuple[int, str]:
    """Send a whole raw request, then read the answer: status and JSON detail (or a note that it was not JSON)."""
    host, port = base.removeprefix("http://").split(":")
    answer = b""
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        try:
            sock.sendall(data)
        except OSError as exc:  # reset while sending: no answer at all
            return 0, f"connection {exc.strerror or exc} while sending"
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    status = int(head.split()[1]) if head.startswith(b"HTTP/") else 0
    try:
        return status, str(json.loads(body)["detail"])[:70]
    except (ValueError, KeyError):
        return status, f"(not JSON: {body[:40]!r})"


def oversized_header(size: int) -> bytes:
    return (f"GET /healthz HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\nX-Big: ".encode()
            + b"a" * size + b"\r\n\r\n")


# ---- inputs -----------------------------------------------------------------------------------------------------

def inputs(rows: Rows, work: Path, clip: Path) -> None:
    service = ServiceProcess(work / "inputs.log", token=TOKEN, spool_dir=work / "spool-inputs", max_upload_mb=3,
                             clip_workers=1, max_queued_clips=0)
    auth = service.headers
    try:
        sample = (Path(__file__).resolve().parents[1] / "service/assets/samples/astronaut.mp4").read_bytes()
        uploads = [("empty upload", lambda: post_clip(service.base, "e.mp4", b"", auth), 400),
                   ("text file", lambda: post_clip(service.base, "t.mp4", b"not a video\n" * 100, auth), 422),
                   ("random bytes", lambda: post_clip(service.base, "r.mp4", os.urandom(50_000), auth), 422),
                   ("no 'file' field", lambda: httpx.post(service.base + "/v1/clips", headers=auth, timeout=30,
                                                          files={"other": ("a.mp4", sample, "video/mp4")}), 400),
                   ("not multipart", lambda: httpx.post(service.base + "/v1/clips", headers=auth, timeout=30,
                                                        content=b'{"a": 1}'), 400),
                   ("over max_upload_mb (3.5 MB of 3)", lambda: post_clip(service.base, "big.mp4",
                                                                          os.urandom(3_500_000), auth), 413),
                   ("wrong token", lambda: httpx.get(service.base + "/v1/state", timeout=30,
                                                     headers={"Authorization": "Bearer wrong"}), 401)]
        for check, send, expected in uploads:
            def body(send=send, expected=expected):
                response = send()
                return f"{response.status_code} {detail(response)}", response.status_code == expected
            rows.attempt(check, f"{expected}, JSON detail", body)
        for check, data, expected in (("1 MB of headers", oversized_header(1 << 20), 431),
                                      ("20 MB of headers", oversized_header(20 << 20), 431),
                                      ("malformed header line", b"GET / HTTP/1.1\r\nHost: x\r\nno colon\r\n\r\n", 400)):
            def body(data=data, expected=expected):
                status, text = raw_request(service.base, data)
                return f"{status} {text}", status == expected and not text.startswith("(not JSON")
            rows.attempt(check, f"{expected}, JSON detail", body)

        def rate_limited():
            for _ in range(20):
                raw_request(service.base, oversized_header(40_000))
            log = service.log_text()
            warnings = log.count("malformed request from")
            return (f"{warnings} warning(s) for 23 bad requests from one address; token in log: {TOKEN in log}",
                    warnings == 1 and TOKEN not in log)
        rows.attempt("bad-request warnings", "1 per address a minute, no request content", rate_limited)

        def retry_after():
            first = post_clip(service.base, "long.mp4", clip.read_bytes(), auth, background=True)
            job_url = service.base + first.headers["location"]
            wait_until(lambda: httpx.get(job_url, headers=auth).json()["status"] == "running", 60)
            refused = post_clip(service.base, "b.mp4", sample, auth)
            job = wait_until(lambda: (j := httpx.get(job_url, headers=auth).json())["status"] in ("done", "failed")
                             and j, 600, 0.5)
            took = job["finished_at"] - job["started_at"]
            said = int(refused.headers.get("retry-after", 0))
            rows.figures["retry_after"] = {"said_s": said, "running_clip_took_s": round(took, 1),
                                           "clip_s": job["report"]["duration"] if job["report"] else None}
            return (f"{refused.status_code}, Retry-After {said} s; the running {job['report']['duration']:.0f}-s "
                    f"clip took {took:.1f} s", refused.status_code == 429 and took / 4 - 1 <= said <= 4 * took + 2)
        rows.attempt("Retry-After before any clip measured", "429; within 4x of the running clip's time",
                     retry_after)
    finally:
        service.stop()


# ---- live -------------------------------------------------------------------------------------------------------

async def _listen(url: str, stop: asyncio.Event, headers: dict) -> dict:
    """A websocket client that reads until `stop`; what it got and the gaps its seq numbers showed."""
    import websockets

    from client.gaps import SequenceGaps

    gaps, count = SequenceGaps(), 0
    async with websockets.connect(url, additional_headers=headers) as ws:
        while not stop.is_set():
            try:
                message = await asyncio.wait_for(ws.recv(), 0.5)
            except asyncio.TimeoutError:
                continue
            gaps.observe(json.loads(message))
            count += 1
    return {"events": count, "missed": gaps.missed}


def live(rows: Rows, work: Path, clip: Path) -> None:
    from service.config import SAMPLE_CLIP

    source = shutil.copy(SAMPLE_CLIP, work / "door.mp4")
    service = ServiceProcess(work / "live.log", args=["--source", f"door={source}"], token=TOKEN,
                             spool_dir=work / "spool-live", heartbeat_s=0.5, reconnect_backoff_s=0.2,
                             reconnect_max_s=1, ws_ping_interval_s=2, ws_ping_timeout_s=2)
    auth, ws_url = service.headers, service.base.replace("http", "ws") + "/v1/stream"
    state = lambda: httpx.get(service.base + "/v1/state", headers=auth, timeout=10).json()  # noqa: E731
    sample = SAMPLE_CLIP.read_bytes()
    try:
        wait_until(lambda: state()["sources"]["door"]["frames_read"] > 0, 60)

        def concurrent():
            async def scenario():
                stop = asyncio.Event()
                listeners = [asyncio.create_task(_listen(ws_url, stop, auth)) for _ in range(50)]
                await asyncio.sleep(1.0)
                started = time.perf_counter()
                with ThreadPoolExecutor(10) as pool:
                    futures = [asyncio.wrap_future(pool.submit(lambda: (post_clip(service.base, "s.mp4", sample,
                                                                                  auth), time.perf_counter())))
                               for _ in range(10)]
                    answers = await asyncio.gather(*futures)
                stop.set()
                return answers, started, await asyncio.gather(*listeners)

            done_before = service.metric('emotion_uploads_total{outcome="done"}')
            answers, started, listened = asyncio.run(scenario())
            codes = Counter(r.status_code for r, _ in answers)
            latencies = sorted(t - started for r, t in answers if r.status_code == 200)
            done = service.metric('emotion_uploads_total{outcome="done"}') - done_before
            missed = sum(l["missed"] for l in listened)
            heard = min(l["events"] for l in listened)
            rows.figures["concurrent"] = {"codes": dict(codes), "p50_s": round(statistics.median(latencies), 2),
                                          "max_s": round(latencies[-1], 2), "ws_missed": missed,
                                          "ws_min_events": heard}
            return (f"{dict(codes)}; p50 {statistics.median(latencies):.1f} s, max {latencies[-1]:.1f} s; metric "
                    f"done +{done:.0f}; 50 clients each heard >= {heard} events, {missed} lost",
                    set(codes) <= {200, 429} and done == codes[200] and heard > 0 and missed == 0)
        rows.attempt("10 uploads + 50 websocket clients", "200 or 429; metrics exact; no events lost", concurrent)

        def source_loss():
            os.rename(source, work / "away.mp4")
            gone = wait_until(lambda: (s := state()["sources"]["door"])["status"] == "reconnecting" and s, 60)
            os.rename(work / "away.mp4", source)
            back_at = time.monotonic()
            wait_until(lambda: (s := state()["sources"]["door"])["status"] == "open"
                       and s["frames_read"] > gone["frames_read"], 60)
            return (f"reconnecting ({gone['last_error'].split(':')[0]}), open again {time.monotonic() - back_at:.1f} "
                    f"s after the file came back", True)
        rows.attempt("a source lost and back", "reopened, frames flow again", source_loss)

        def stop_and_continue():
            async def scenario():
                stop = asyncio.Event()
                listener = asyncio.create_task(_listen(ws_url, stop, auth))
                await asyncio.sleep(1.0)
                service.signal(signal.SIGSTOP)
                await asyncio.sleep(3.0)
                service.signal(signal.SIGCONT)
                resumed = time.monotonic()
                await asyncio.to_thread(wait_until, service.ready, 30)
                healthy_after = time.monotonic() - resumed
                await asyncio.sleep(2.0)
                stop.set()
                return healthy_after, await listener

            healthy_after, heard = asyncio.run(scenario())
            return (f"healthy {healthy_after:.2f} s after SIGCONT; the websocket client stayed connected, "
                    f"{heard['events']} events, {heard['missed']} lost", heard["events"] > 0)
        rows.attempt("SIGSTOP 3 s, SIGCONT", "answers again; websocket clients carry on", stop_and_continue)

        def never_reads():
            before = service.metric('emotion_websocket_disconnects_total{reason="lost"}')
            silent = never_reading_websocket(service.base, TOKEN)
            started = time.monotonic()
            try:
                async def reader():
                    stop = asyncio.Event()
                    task = asyncio.create_task(_listen(ws_url, stop, auth))
                    await asyncio.to_thread(wait_until, lambda: service.metric(
                        'emotion_websocket_disconnects_total{reason="lost"}') > before, 30, 0.25)
                    stop.set()
                    return await task

                heard = asyncio.run(reader())
            finally:
                silent.close()
            return (f"disconnected after {time.monotonic() - started:.1f} s (ping 2 s + timeout 2 s); a reading "
                    f"client meanwhile: {heard['events']} events, {heard['missed']} lost",
                    heard["events"] > 0 and heard["missed"] == 0)
        rows.attempt("a websocket client that never reads", "disconnected, counted; others unaffected", never_reads)

        def leaves_and_returns():
            from client.gaps import SequenceGaps

            async def read(gaps, seconds):
                import websockets

                async with websockets.connect(ws_url, additional_headers=auth) as ws:
                    deadline = time.monotonic() + seconds
                    while time.monotonic() < deadline:
                        try:
                            gaps.observe(json.loads(await asyncio.wait_for(ws.recv(), 0.5)))
                        except asyncio.TimeoutError:
                            pass

            gaps = SequenceGaps()
            asyncio.run(read(gaps, 1.5))
            published_before = state()["events_published"]
            time.sleep(2.0)
            published_away = state()["events_published"] - published_before
            asyncio.run(read(gaps, 1.5))
            rows.figures["reconnect_gap"] = {"missed": gaps.missed, "published_while_away_at_least": published_away}
            return (f"{gaps.missed} events reported lost ({published_away} published in the 2 s away)",
                    gaps.missed >= published_away > 0)
        rows.attempt("a client away 2 s and back", "the gap reported from seq", leaves_and_returns)
    finally:
        service.stop()


# ---- lifecycle --------------------------------------------------------------------------------------------------

def _uploads_in(spool: Path) -> list[Path]:
    from service.spool import GUARD_NAME, LOCK_NAME

    return [p for p in spool.rglob("*") if p.is_file() and p.name not in (LOCK_NAME, GUARD_NAME)]


def lifecycle(rows: Rows, work: Path, clip: Path) -> None:
    from service.config import SAMPLE_CLIP

    spool, log = work / "spool-lifecycle", work / "lifecycle.log"
    sample = SAMPLE_CLIP.read_bytes()
    service = ServiceProcess(log, spool_dir=spool, clip_workers=WORKERS, **ONE_CLIENT_FILLS_THE_WORKERS)
    try:
        def crash():
            sock = socket.create_connection(("127.0.0.1", service.port))
            sock.sendall(b"POST /v1/clips HTTP/1.1\r\nHost: [::1]\r\nContent-Type: multipart/form-data; boundary=zz\r\n"
                         b"Content-Length: 3000000\r\n\r\n--zz\r\nContent-Disposition: form-data; name=\"file\"; "
                         b"filename=\"private.mp4\"\r\n\r\n" + os.urandom(1_500_000))
            wait_until(lambda: _uploads_in(spool) and _uploads_in(spool)[0].stat().st_size > 1_000_000, 30)
            service.signal(signal.SIGKILL)
            service.process.wait(30)
            sock.close()
            left = len(_uploads_in(spool))
            return f"{left} upload of {_uploads_in(spool)[0].stat().st_size / 1e6:.1f} MB left by the crash", left == 1
        rows.attempt("SIGKILL mid-upload", "the partial upload is in the spool", crash)
    finally:
        service.stop()

    service = ServiceProcess(log, spool_dir=spool, clip_workers=WORKERS, **ONE_CLIENT_FILLS_THE_WORKERS)
    try:
        rows.attempt("restart after the SIGKILL", "leftovers removed, logged", lambda: (
            f"log: {[l.split(': ', 1)[1] for l in service.log_text().splitlines() if 'leftover' in l][-1]}; "
            f"{len(_uploads_in(spool))} uploads in the spool", not _uploads_in(spool)
            and "removed 1 leftover upload(s)" in service.log_text()))

        def beside_background():
            def timed() -> tuple[httpx.Response, float]:
                started = time.perf_counter()
                return post_clip(service.base, "s.mp4", sample), time.perf_counter() - started

            timed()  # warm-up
            solo = min(timed()[1], timed()[1])
            background = [post_clip(service.base, f"bg{i}.mp4", clip.read_bytes(), background=True)
                          for i in range(WORKERS + 1)]
            wait_until(lambda: service.metric("emotion_clip_workers_busy") == WORKERS, 60)
            answer, beside = timed()
            still = sum(httpx.get(service.base + b.headers["location"]).json()["status"] in ("queued", "running")
                        for b in background)
            rows.figures["sync_beside_background"] = {"solo_s": round(solo, 2), "beside_s": round(beside, 2),
                                                      "workers": WORKERS, "background_jobs": len(background)}
            return (f"{beside:.2f} s beside {len(background)} long background jobs on {WORKERS} workers, {solo:.2f} s "
                    f"alone ({beside / solo:.1f}x); {still} background jobs still unfinished",
                    answer.status_code == 200 and still == len(background))
        rows.attempt("a 6-s clip while background jobs hold every worker", "about its solo time", beside_background)

        def sigterm():
            answers: dict = {}
            # Five minutes of video: longer than shutdown_grace_s takes to analyse even on a quiet machine (the 60-s
            # clip took 3.6 s on 2026-12-07 and finished within the grace).
            longer = long_clip(work / "longer.mp4", 300).read_bytes()
            poster = threading.Thread(target=lambda: answers.update(long=post_clip(
                service.base, "long.mp4", longer, timeout=120)))
            poster.start()
            time.sleep(1.0)  # taken by a worker (it goes before the queued background job, or beside one)
            sent = time.monotonic()
            service.signal(signal.SIGTERM)
            wait_until(lambda: "new uploads refused" in service.log_text(), 30, 0.05)
            late = post_clip(service.base, "late.mp4", sample, timeout=30)
            poster.join(60)
            service.process.wait(60)
            took = time.monotonic() - sent
            long = answers.get("long")
            rows.figures["sigterm"] = {"exit_s": round(took, 1), "grace_s": 5.0}
            observed = (f"new upload {late.status_code}; clip in flight {long.status_code if long else None} "
                        f"({detail(long) if long else ''}); exit {took:.1f} s after SIGTERM; "
                        f"{len(_uploads_in(spool))} uploads left")
            return observed, (late.status_code == 503 and long is not None and long.status_code == 503
                              and not _uploads_in(spool) and took < 10)
        rows.attempt("SIGTERM with long clips in flight", "503s, exit within Docker's 10 s, spool empty", sigterm)
    finally:
        service.stop()


# ---- the suite --------------------------------------------------------------------------------------------------

def run(groups: list[str] | None = None) -> dict:
    rows = Rows()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="faults-") as tmp:
        work = Path(tmp)
        clip = long_clip(work / "long.mp4", 60)
        for group in groups or GROUPS:
            print(f"{group}:", flush=True)
            try:
                {"inputs": inputs, "live": live, "lifecycle": lifecycle, "budgets": budgets}[group](rows, work, clip)
            except Exception as exc:  # noqa: BLE001 - a service that would not start fails the group's row
                rows.add(group, "the group runs", f"{type(exc).__name__}: {exc}"[:160], False)
    return {"rows": rows.rows, "figures": rows.figures, "passed": sum(r["ok"] for r in rows.rows),
            "checks": len(rows.rows), "seconds": round(time.monotonic() - started, 1)}


def describe(result: dict) -> str:
    lines = ["| check | expected | observed | |", "|---|---|---|---|"]
    lines += [f"| {r['check']} | {r['expected']} | {r['observed']} | {'ok' if r['ok'] else 'FAIL'} |"
              for r in result["rows"]]
    lines.append(f"{result['passed']} of {result['checks']} checks passed in {result['seconds']} s")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench faults", description=__doc__.splitlines()[0])
    parser.add_argument("--groups", nargs="+", choices=GROUPS, help="default: all")
    parser.add_argument("--out", type=Path, help="also write the result here (default bench/results/faults.json "
                        "for a full run)")
    args = parser.parse_args(argv)
    from bench.machine import machine_facts, save

    facts = machine_facts()
    print(f"machine: {facts['cpu']}, {facts['cores']} cores, {facts['date']}")
    result = run(args.groups)
    print(describe(result))
    if args.out:
        args.out.write_text(json.dumps({"machine": facts} | result, indent=2) + "\n")
        print(f"  -> {args.out}")
    elif not args.groups:
        print(f"  -> {save('faults', result)}")
    return 0 if result["passed"] == result["checks"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
