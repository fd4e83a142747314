"""`superres serve` against the issue-26 targets, timed on a real server process (tests check the behaviour;
this measures the times):

- stop: a job runs (x4, self-ensemble) and a client waits on /api/upscale behind it; one SIGINT or SIGTERM:
  seconds until the process has exited (target 2), the waiting client's status (503), and the folder gone;
- second signal: SIGINT, then SIGTERM 0.05 s later: seconds from the second to the exit (target: at once)
  and the exit status (130: the second signal ended it);
- cancel: DELETE of the running job, then seconds until a tiny job queued behind it is done (the network stops
  within one tile of the cancel);
- idle connections: at `ulimit -n 1024`, 1,200 connections that send nothing or half a request head, then a
  normal GET /api/info: seconds to its answer (target 1), and the lines the server logged.

    python benchmarks/serve_limits.py [--repeat 3] [--json docs/results/serve-limits.json]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np

from common import cpu_name
from superres.imaging.io import Picture, encode_image


def start(folder: Path, *flags: str, nofile: int | None = None) -> tuple[subprocess.Popen, str]:
    def limit() -> None:
        if nofile is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

    proc = subprocess.Popen(
        [sys.executable, "-m", "superres", "serve", "--port", "0", "--device", "cpu", *flags],
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ, TMPDIR=str(folder)),
        preexec_fn=limit,
    )
    assert proc.stderr is not None
    url = re.search(r"serving on (http://127\.0\.0\.1:\d+/)", proc.stderr.readline()).group(1)  # type: ignore[union-attr]
    until(lambda: _answers(url), "the server to answer")
    return proc, url


def _answers(url: str) -> bool:
    try:
        info(url)
        return True
    except OSError:
        return False


def info(url: str, timeout: float = 10) -> dict:
    with urllib.request.urlopen(url + "api/info", timeout=timeout) as r:
        return json.load(r)


def job(url: str, job_id: str) -> dict:
    with urllib.request.urlopen(url + f"api/jobs/{job_id}", timeout=10) as r:
        return json.load(r)


def post(url: str, path: str, data: bytes, **fields: str) -> tuple[int, dict]:
    body = b"".join(
        f'--b\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode() for k, v in fields.items()
    )
    body += b'--b\r\nContent-Disposition: form-data; name="image"; filename="in.png"\r\n\r\n' + data + b"\r\n--b--\r\n"
    request = urllib.request.Request(
        url + path, body, {"Content-Type": "multipart/form-data; boundary=b"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=300) as r:
            content = r.read()
            return r.status, json.loads(content) if r.headers["content-type"] == "application/json" else {}
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def until(condition, what: str, seconds: float = 120) -> None:
    end = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > end:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.02)


def big_png() -> bytes:
    rng = np.random.default_rng(0)
    pixels = np.clip(rng.normal(128, 40, (150, 150, 3)), 0, 255).astype(np.uint8)
    return encode_image(Picture(np.repeat(np.repeat(pixels, 8, 0), 8, 1)), "PNG")  # 1200x1200


def running_job(url: str) -> str:
    status, answer = post(url, "api/jobs", big_png(), scale="4", self_ensemble="true")
    assert status == 202, answer
    until(lambda: job(url, answer["id"])["state"] == "running", "the job to run")
    return answer["id"]


def stop(sig: int) -> dict:
    with tempfile.TemporaryDirectory() as folder:
        proc, url = start(Path(folder))
        running_job(url)
        waiting: list = []
        small = encode_image(Picture(np.zeros((16, 16, 3), np.uint8)), "PNG")
        threading.Thread(target=lambda: waiting.append(post(url, "api/upscale", small))).start()
        until(lambda: info(url)["queued"] == 1, "the second job to queue")
        begin = time.monotonic()
        proc.send_signal(sig)
        proc.wait(timeout=60)
        took = time.monotonic() - begin
        until(lambda: bool(waiting), "the waiting client's answer", 10)
        left = list(Path(folder).glob("superres-serve-*"))
    status = waiting[0][0]
    return {"seconds": round(took, 3), "exit": proc.returncode, "waiting_client": status, "folder_left": bool(left)}


def second_signal() -> dict:
    with tempfile.TemporaryDirectory() as folder:
        proc, url = start(Path(folder))
        running_job(url)
        proc.send_signal(signal.SIGINT)
        time.sleep(0.05)  # within the first signal's stop (which takes a few tenths of a second)
        begin = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
        took = time.monotonic() - begin
        left = list(Path(folder).glob("superres-serve-*"))
    return {"seconds_after_second": round(took, 3), "exit": proc.returncode, "folder_left": bool(left)}


def cancel() -> dict:
    with tempfile.TemporaryDirectory() as folder:
        proc, url = start(Path(folder))
        big = running_job(url)
        status, tiny = post(url, "api/jobs", encode_image(Picture(np.zeros((16, 16, 3), np.uint8)), "PNG"))
        assert status == 202, tiny
        time.sleep(1.0)
        begin = time.monotonic()
        urllib.request.urlopen(urllib.request.Request(url + f"api/jobs/{big}", method="DELETE"), timeout=10)
        until(lambda: job(url, tiny["id"])["state"] == "done", "the job behind it")
        took = time.monotonic() - begin
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    return {"seconds_to_the_next_job_done": round(took, 3)}


def idle_connections(count: int = 1200) -> dict:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, count + 200)), hard))
    with tempfile.TemporaryDirectory() as folder:
        proc, url = start(Path(folder), "--header-timeout", "10", nofile=1024)
        port = int(url.rsplit(":", 1)[1].strip("/"))
        hostile = []
        for i in range(count):
            s = socket.create_connection(("127.0.0.1", port))
            if i % 2:
                s.sendall(b"GET /api/info HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            hostile.append(s)
        times = []
        for _ in range(5):
            begin = time.monotonic()
            info(url, timeout=30)
            times.append(round(time.monotonic() - begin, 4))
        for s in hostile:
            s.close()
        proc.send_signal(signal.SIGTERM)
        _, log = proc.communicate(timeout=60)
    lines = [line for line in log.splitlines() if line.strip()]
    return {"connections": count, "ulimit_n": 1024, "answer_seconds": times, "log_lines": lines}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()
    results = {
        "machine": f"{os.cpu_count()} CPU cores ({cpu_name()}), no GPU",
        "command": "python benchmarks/serve_limits.py",
        "stop_sigint": [stop(signal.SIGINT) for _ in range(args.repeat)],
        "stop_sigterm": [stop(signal.SIGTERM) for _ in range(args.repeat)],
        "second_signal": [second_signal() for _ in range(args.repeat)],
        "cancel": [cancel() for _ in range(args.repeat)],
        "idle_connections": idle_connections(),
    }
    text = json.dumps(results, indent=1)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
