"""`superres serve` under hostile clients and signals, with the server started for real (a process of its own)
where only a real one can show it: a stop by SIGINT or SIGTERM while clients wait, a second signal, idle and
slow connections at a desktop's limit on open files, the connection cap, and the room for uploads."""

import json
import os
import re
import resource
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from contextlib import contextmanager

import numpy as np
import pytest

pytest.importorskip("uvicorn")
from conftest import wait_for
from superres.imaging.io import Picture, encode_image


@contextmanager
def serving(tmp_path, *flags: str, nofile: int | None = None):
    """`superres serve --port 0` with its private folder under tmp_path (and at most `nofile` open files):
    yields (process, base URL). The process is stopped with SIGKILL if the test leaves it running."""

    def limit_files():
        if nofile is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

    proc = subprocess.Popen(
        [sys.executable, "-m", "superres", "serve", "--port", "0", "--device", "cpu", *flags],
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ, TMPDIR=str(tmp_path)),
        preexec_fn=limit_files,
    )
    try:
        first = proc.stderr.readline()
        url = re.search(r"serving on (http://127\.0\.0\.1:\d+/)", first).group(1)
        deadline = time.monotonic() + 60
        while True:
            try:
                get(url + "api/info")
                break
            except OSError:
                assert time.monotonic() < deadline and proc.poll() is None, "the server never answered"
                time.sleep(0.1)
        yield proc, url
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def get(url: str, timeout: float = 10) -> dict:
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return json.load(r)


def multipart(data: bytes, name: str = "in.png", **fields) -> tuple[bytes, str]:
    body = b""
    for key, value in fields.items():
        body += f'--b\r\nContent-Disposition: form-data; name="{key}"\r\n\r\n{value}\r\n'.encode()
    body += f'--b\r\nContent-Disposition: form-data; name="image"; filename="{name}"\r\n\r\n'.encode()
    return body + data + b"\r\n--b--\r\n", "multipart/form-data; boundary=b"


def post(url: str, data: bytes, **fields) -> tuple[int, dict | bytes]:
    body, kind = multipart(data, **fields)
    request = urllib.request.Request(url, data=body, headers={"Content-Type": kind}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=120) as r:
            content = r.read()
            return r.status, json.loads(content) if r.headers["content-type"] == "application/json" else content
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def answer_of(sock: socket.socket) -> bytes:
    """A whole HTTP answer read from a raw socket: its head, and its body as long as content-length says."""
    sock.settimeout(10)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        assert chunk, f"the connection closed after {data!r}"
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    length = int(re.search(rb"content-length: (\d+)", head, re.IGNORECASE).group(1))
    while len(body) < length:
        chunk = sock.recv(4096)
        assert chunk, "the connection closed in the body"
        body += chunk
    return head + b"\r\n\r\n" + body


def big_png(side: int = 1200) -> bytes:
    """A picture whose job takes many tiles (x4, self-ensemble): seconds on any CPU."""
    rng = np.random.default_rng(0)
    pixels = np.clip(rng.normal(128, 40, (side // 8, side // 8, 3)), 0, 255).astype(np.uint8)
    return encode_image(Picture(np.repeat(np.repeat(pixels, 8, 0), 8, 1)), "PNG")


def folders(tmp_path) -> list:
    return list(tmp_path.glob("superres-serve-*"))


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_one_signal_cancels_answers_503_and_exits_clean_within_2s(tmp_path, photo, sig):
    """A job runs and a client waits on /api/upscale behind it: one signal answers the waiting client 503,
    cancels both, removes the private folder and exits 0, in a bounded time (well under 2 s here: the times
    are measured by benchmarks/serve_limits.py; this bound only tells a stop from a wait for the job)."""
    with serving(tmp_path) as (proc, url):
        status, job = post(url + "api/jobs", big_png(), scale=4, self_ensemble="true")
        assert status == 202, job
        wait_for(lambda: get(url + f"api/jobs/{job['id']}")["state"] == "running", seconds=60, what="the job to run")
        waiting: list = []
        thread = threading.Thread(
            target=lambda: waiting.append(post(url + "api/upscale", encode_image(Picture(photo), "PNG")))
        )
        thread.start()
        wait_for(lambda: get(url + "api/info")["queued"] == 1, seconds=60, what="the second job to queue")
        assert get(url + f"api/jobs/{job['id']}")["progress"] < 0.9, "the job ran too fast to be interrupted"
        start = time.monotonic()
        proc.send_signal(sig)
        proc.wait(timeout=30)
        took = time.monotonic() - start
        thread.join(timeout=10)
        rest = proc.stderr.read()
    assert took < 5.0, f"took {took:.2f} s to stop"
    assert proc.returncode == 0 and "Traceback" not in rest and "superres: stopped" in rest
    status, answer = waiting[0]
    assert status == 503 and "stopping" in answer["error"]
    assert folders(tmp_path) == []


def test_a_second_signal_exits_at_once_and_still_removes_the_folder(tmp_path):
    """While a job runs: SIGINT, then SIGTERM. The second exits at once with status 130 if it comes during
    the first's stop, which may also be over already (status 0: the stop takes a few tenths of a second);
    either way the folder is removed and nothing is left half-done (no traceback). The 130 path is also
    checked alone below."""
    with serving(tmp_path) as (proc, url):
        status, job = post(url + "api/jobs", big_png(), scale=4, self_ensemble="true")
        assert status == 202, job
        wait_for(lambda: get(url + f"api/jobs/{job['id']}")["state"] == "running", seconds=60, what="the job to run")
        assert len(folders(tmp_path)) == 1
        proc.send_signal(signal.SIGINT)
        start = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        took = time.monotonic() - start
        rest = proc.stderr.read()
    assert took < 5.0, f"took {took:.2f} s"
    assert proc.returncode in (0, 130) and "Traceback" not in rest
    assert folders(tmp_path) == []


def test_the_second_signal_removes_the_folder_and_exits_130(tmp_path, monkeypatch):
    """Listener.handle_exit: the first signal asks the queue to stop (in the loop) and uvicorn to shut down;
    the second removes the private folder and exits with status 130 at once."""
    import asyncio

    from superres.web.app import Server, create_app
    from superres.web.listener import Listener

    monkeypatch.setenv("TMPDIR", str(tmp_path))
    server = Server(device="cpu")
    try:
        listener = Listener(create_app("127.0.0.1", 8000, server), server)
        listener.loop = asyncio.new_event_loop()
        exits = []

        def no_exit(code):
            exits.append(code)
            raise SystemExit(code)

        monkeypatch.setattr("superres.web.listener.os._exit", no_exit)
        listener.handle_exit(signal.SIGINT, None)
        assert listener.should_exit and exits == [] and server.queue.folder.exists()
        listener.loop.run_until_complete(asyncio.sleep(0))  # the loop runs what the handler scheduled
        assert server.queue.stopping.is_set()
        with pytest.raises(SystemExit):
            listener.handle_exit(signal.SIGTERM, None)
        assert exits == [130] and not server.queue.folder.exists()
    finally:
        listener.loop.close()
        server.queue.close()


def raise_own_file_limit(need: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= need:
        return
    if hard != resource.RLIM_INFINITY and hard < need:
        pytest.skip(f"this test opens {need} sockets; the hard limit on open files is {hard}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))


def test_1200_idle_and_slow_connections_at_ulimit_1024(tmp_path):
    """At `ulimit -n 1024`, 1,200 connections that send nothing or half a request head: a normal request is
    still answered (in milliseconds; benchmarks/serve_limits.py times it; the bound here only tells an answer
    from none), the slow ones are closed after the header timeout, and the log has one line per kind of
    refusal (and a count at the stop), no tracebacks."""
    raise_own_file_limit(1400)
    with serving(tmp_path, "--header-timeout", "3", nofile=1024) as (proc, url):
        port = int(url.rsplit(":", 1)[1].strip("/"))
        hostile = []
        for i in range(1200):
            s = socket.create_connection(("127.0.0.1", port))
            if i % 2:
                s.sendall(b"GET /api/info HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # a head that never ends
            hostile.append(s)
        start = time.monotonic()
        info = get(url + "api/info", timeout=5)
        took = time.monotonic() - start
        assert info["queue"] == 8 and took < 3.0, f"answered in {took:.2f} s"
        time.sleep(3.5)  # past the header timeout: every hostile connection is closed by now
        for s in hostile:
            s.settimeout(2)
            try:
                assert s.recv(1) == b"", "a hostile connection got an answer"
            except ConnectionResetError:
                pass  # closed, too (the server had unread data from it)
            s.close()
        get(url + "api/info", timeout=5)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        log = proc.stderr.read()
    assert proc.returncode == 0 and "Traceback" not in log and "Too many open files" not in log
    lines = [line for line in log.splitlines() if line.strip()]
    assert len(lines) <= 6, log
    assert "the oldest idle one was closed" in log and "no whole request head within 3 s" in log
    assert "connections refused or closed by the limits:" in log


def test_past_the_cap_with_every_connection_busy_a_newcomer_gets_503(tmp_path):
    with serving(tmp_path, "--max-connections", "2") as (_, url):
        port = int(url.rsplit(":", 1)[1].strip("/"))
        busy = []
        for _ in range(2):  # each in the middle of an upload: a request in flight
            s = socket.create_connection(("127.0.0.1", port))
            s.sendall(b"POST /api/upscale HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Type: multipart/form-data; "
                      b"boundary=b\r\nContent-Length: 5000\r\n\r\n--b\r\n" % port)  # fmt: skip
            busy.append(s)
        time.sleep(0.5)
        newcomer = socket.create_connection(("127.0.0.1", port))
        answer = answer_of(newcomer)
        assert answer.startswith(b"HTTP/1.1 503") and b"too many connections" in answer
        for s in [*busy, newcomer]:
            s.close()
        wait_for(lambda: get(url + "api/info")["queue"] == 8, seconds=60, what="room again")


def test_uploads_in_progress_count_against_the_budget(tmp_path):
    """Two unfinished uploads hold the room (--upload-budget-mb 2, each announcing 1,000,000 bytes): a third
    is answered 503 before its body is sent, and the folder holds no more than the budget; once one goes away,
    the room is free again."""
    with serving(tmp_path, "--max-upload-mb", "1", "--upload-budget-mb", "2") as (_, url):
        port = int(url.rsplit(":", 1)[1].strip("/"))
        head = (b"POST /api/upscale HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Type: multipart/form-data; boundary=b"
                b"\r\nContent-Length: 1000000\r\n\r\n" % port)  # fmt: skip
        part = b'--b\r\nContent-Disposition: form-data; name="image"; filename="a.png"\r\n\r\n'
        slow = []
        for _ in range(2):
            s = socket.create_connection(("127.0.0.1", port))
            s.sendall(head + part + b"x" * 600_000)
            slow.append(s)
        (folder,) = folders(tmp_path)
        wait_for(
            lambda: sum(f.stat().st_size for f in folder.iterdir()) >= 1_200_000, seconds=60, what="both uploads stored"
        )
        third = socket.create_connection(("127.0.0.1", port))
        third.sendall(head)  # no body at all
        answer = answer_of(third)
        assert answer.startswith(b"HTTP/1.1 503") and b"uploads in progress hold 2,000,000" in answer
        assert b"retry-after" in answer.lower()
        assert sum(f.stat().st_size for f in folder.iterdir()) <= 2 * 2**20
        slow[0].close()  # gone: its room is given back
        wait_for(lambda: len(list(folder.iterdir())) == 1, seconds=60, what="the abandoned upload to be deleted")
        status, _ = post(url + "api/upscale", b"not an image")
        assert status == 422  # read, and refused for what it is: there was room for it
        for s in [slow[1], third]:
            s.close()
