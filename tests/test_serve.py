"""The web page's HTTP API, through Starlette's TestClient: formats and sizes, errors, limits, the queue,
jobs and their files, and the Host and cross-site checks."""

import threading
import time

import numpy as np
import pytest

pytest.importorskip("starlette")
from starlette.testclient import TestClient

from conftest import live_server, wait_for
from superres.api import ImageUpscaler
from superres.imaging.io import Picture, encode_image, read_image
from superres.web.app import Server, create_app


@pytest.fixture
def server():
    made = []

    def make(**options):
        s = Server(device="cpu", **options)
        made.append(s)
        return s

    yield make
    for s in made:
        s.queue.close()


@pytest.fixture
def client(server):
    s = server()
    with TestClient(create_app("127.0.0.1", 8000, s, allowed_hosts=["testserver"])) as c:
        c.server = s
        yield c


def png(picture: Picture) -> bytes:
    return encode_image(picture, "PNG")


def post(client, data: bytes, name="in.png", url="/api/upscale", **fields):
    return client.post(url, files={"image": (name, data)}, data={k: str(v) for k, v in fields.items()})


def decoded(response_or_bytes, tmp_path, name):
    """The picture in a response (or bytes), read as superres reads files."""
    path = tmp_path / name
    path.write_bytes(getattr(response_or_bytes, "content", response_or_bytes))
    return read_image(path)


@pytest.mark.parametrize("kind", ["rgb8", "rgb16", "gray_alpha", "rgba16", "jpeg"])
def test_formats_round_trip_as_the_api_makes_them(client, tmp_path, photo, rng, kind):
    small = photo[:24, :32]
    alpha = np.tile(np.linspace(0, 255, 32).astype(np.uint8), (24, 1))
    pictures = {
        "rgb8": Picture(small),
        "rgb16": Picture(rng.integers(0, 65536, (20, 26, 3), dtype=np.uint16)),
        "gray_alpha": Picture(small[..., 0].copy(), alpha),
        "rgba16": Picture(small.astype(np.uint16) * 257 + 3, alpha.astype(np.uint16) * 257),
        "jpeg": Picture(small),
    }
    picture = pictures[kind]
    name = "in.jpg" if kind == "jpeg" else "in.png"
    data = encode_image(picture, "JPEG" if kind == "jpeg" else "PNG")
    response = post(client, data, name)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == ("image/jpeg" if kind == "jpeg" else "image/png")
    assert 'filename="in_x2' in response.headers["content-disposition"]
    got = decoded(response, tmp_path, name)
    source = decoded(data, tmp_path, "source" + name[2:])
    expected = ImageUpscaler(device="cpu")(source)  # as superres.upscale; a picture read from a file keeps
    # its JPEG quality, which --denoise auto reads
    if kind == "jpeg":  # what the server's JPEG encoder makes of the same pixels
        expected = decoded(encode_image(expected, "JPEG"), tmp_path, "expected.jpg")
    assert got.pixels.dtype == source.pixels.dtype and np.array_equal(got.pixels, expected.pixels)
    assert (got.alpha is None) == (expected.alpha is None)
    if got.alpha is not None:
        assert np.array_equal(got.alpha, expected.alpha)
    assert response.headers["x-superres-width"] == str(got.size[1]) == str(2 * source.size[1])


def test_scale_and_size_fields(client, tmp_path, photo):
    data = png(Picture(photo[:20, :30]))
    r = post(client, data, scale=1.5)
    assert r.status_code == 200 and decoded(r, tmp_path, "a.png").size == (30, 45)
    r = post(client, data, size="50x34", denoise="0.5", self_ensemble="true")
    assert r.status_code == 200 and decoded(r, tmp_path, "b.png").size == (34, 50)
    assert 'filename="in_50x34.png"' in r.headers["content-disposition"]
    r = post(client, data, scale=2, denoise="auto+chain")  # the chain detector's auto (a small picture: not read)
    assert r.status_code == 200 and decoded(r, tmp_path, "c.png").size == (40, 60)


@pytest.mark.parametrize(
    "fields, status, says",
    [
        (dict(scale="two"), 422, "scale must be a number"),
        (dict(scale=40), 422, "at most 16"),
        (dict(scale=2, size="10x10"), 422, "not both"),
        (dict(model="../../weights.pt"), 422, "unknown model '../../weights.pt'"),
        (dict(denoise="lots"), 422, "denoise must be"),
        (dict(colour="red"), 422, "unknown option(s) colour"),
    ],
)
def test_bad_options_are_422_with_a_reason(client, photo, fields, status, says):
    r = post(client, png(Picture(photo[:8, :8])), **fields)
    assert r.status_code == status and says in r.json()["error"]


def test_bad_files_and_bodies(client):
    r = post(client, b"hello, not a picture", "notes.png")
    assert r.status_code == 422 and r.json()["error"] == "notes.png: not an image, or a format that cannot be read"
    r = post(client, b"hello", "notes.txt")
    assert r.status_code == 422 and "notes.txt: give a file named .png" in r.json()["error"]
    r = client.post("/api/upscale", data={"scale": "2"})  # a urlencoded form, no file
    assert r.status_code == 415 and "multipart/form-data" in r.json()["error"]
    r = client.post("/api/upscale", content=b"{}", headers={"content-type": "application/json"})
    assert r.status_code == 415 and "multipart/form-data" in r.json()["error"]
    r = client.post("/api/upscale", files={"picture": ("a.png", b"x")})
    assert r.status_code == 422 and r.json()["error"] == "a file came in the field 'picture'; send the image in 'image'"
    assert list(client.server.queue.folder.iterdir()) == []  # nothing kept of the refused uploads


def test_limits_are_413(server, photo):
    s = server(max_upload=2000, max_pixels=500)
    with TestClient(create_app("127.0.0.1", 8000, s, allowed_hosts=["testserver"])) as c:
        r = post(c, png(Picture(photo)))  # ~13 kB
        assert r.status_code == 413 and "over the limit of 2,000 bytes" in r.json()["error"]
        r = post(c, png(Picture(np.zeros((30, 30), np.uint8))))  # 900 pixels, a small file
        assert r.status_code == 413 and "900 pixels is over the limit of 500" in r.json()["error"]
        assert list(s.queue.folder.iterdir()) == []


class Gate:
    """An upscaler for the queue's worker that waits for a gate to open, band by band."""

    def __init__(self, inner):
        self.inner, self.open, self.size = inner, threading.Event(), inner.size

    def stream(self, picture, denoise=None, cancel=None):
        stream = self.inner.stream(picture, denoise, cancel)
        bands = stream.strips

        def gated():
            for band in bands:
                assert self.open.wait(30)
                yield band

        stream.strips = gated()
        return stream


def gated(client) -> Gate:
    gate = Gate(client.server.runner(superres_options()))
    client.server.queue.make_runner = lambda options: gate
    return gate


def superres_options():
    from superres.inference.options import UpscaleOptions

    return UpscaleOptions()


def test_job_progress_result_once_and_files_removed(client, tmp_path, photo):
    gate = gated(client)
    r = post(client, png(Picture(photo)), url="/api/jobs")
    assert r.status_code == 202 and r.headers["location"] == f"/api/jobs/{r.json()['id']}"
    job = r.json()["id"]
    wait_for(lambda: client.get(f"/api/jobs/{job}").json()["state"] == "running")
    assert client.get(f"/api/jobs/{job}/result").status_code == 409
    gate.open.set()
    wait_for(lambda: client.get(f"/api/jobs/{job}").json()["state"] == "done")
    status = client.get(f"/api/jobs/{job}").json()
    assert status["progress"] == 1.0 and (status["width"], status["height"]) == (160, 128)
    r = client.get(f"/api/jobs/{job}/result")
    assert r.status_code == 200 and decoded(r, tmp_path, "o.png").size == (128, 160)
    assert client.get(f"/api/jobs/{job}/result").status_code == 404  # sent once, then deleted
    assert list(client.server.queue.folder.iterdir()) == []


def test_full_queue_is_503_with_retry_after_and_cancel_frees_it(server, photo):
    s = server(max_waiting=1)
    with TestClient(create_app("127.0.0.1", 8000, s, allowed_hosts=["testserver"])) as c:
        c.server = s
        gate = gated(c)
        data = png(Picture(photo[:16, :16]))
        running = post(c, data, url="/api/jobs").json()["id"]
        wait_for(lambda: c.get(f"/api/jobs/{running}").json()["state"] == "running")
        waiting = post(c, data, url="/api/jobs").json()["id"]
        r = post(c, data, url="/api/jobs")
        assert r.status_code == 503 and int(r.headers["retry-after"]) >= 1 and "busy" in r.json()["error"]
        assert c.delete(f"/api/jobs/{waiting}").status_code == 204
        assert c.get(f"/api/jobs/{waiting}").status_code == 404
        replacement = post(c, data, url="/api/jobs")  # the cancelled job's place is free at once
        assert replacement.status_code == 202 and c.get(f"/api/jobs/{running}").json()["state"] == "running"
        assert c.post(f"/api/jobs/{running}/cancel").status_code == 204  # stops between bands
        gate.open.set()
        job = replacement.json()["id"]
        wait_for(lambda: c.get(f"/api/jobs/{job}").json()["state"] == "done")
        wait_for(lambda: {p.name for p in s.queue.folder.iterdir()} == {f"{job}.png"})  # only the unfetched result


def test_the_worker_outlives_an_unexpected_error(client, photo):
    class Broken:
        size = None

        def stream(self, picture, denoise=None, cancel=None):
            raise TypeError("unexpected")

    real = client.server.queue.make_runner
    client.server.queue.make_runner = lambda options: Broken()
    job = post(client, png(Picture(photo[:8, :8])), url="/api/jobs").json()["id"]
    wait_for(lambda: client.get(f"/api/jobs/{job}").json()["state"] == "failed")
    assert client.get(f"/api/jobs/{job}").json()["error"] == "in.png: failed (TypeError: unexpected)"
    client.server.queue.make_runner = real
    r = post(client, png(Picture(photo[:8, :8])))
    assert r.status_code == 200 and client.server.queue.worker.is_alive()


def test_bodies_over_the_limit_by_fields_or_chunks(server, photo):
    s = server(max_upload=2000)
    with TestClient(create_app("127.0.0.1", 8000, s, allowed_hosts=["testserver"])) as c:
        fields = {f"f{i}": "x" for i in range(40)}
        r = c.post("/api/upscale", files={"image": ("a.png", png(Picture(photo[:4, :4])))}, data=fields)
        assert r.status_code == 413 and "more than 16 form fields" in r.json()["error"]

        def chunks():  # no Content-Length: the size is only known as it arrives
            body = (b'--b\r\nContent-Disposition: form-data; name="pad"\r\n\r\n' + b"x" * 1000 + b"\r\n") * 100
            yield body

        r = c.post("/api/upscale", content=chunks(), headers={"content-type": "multipart/form-data; boundary=b"})
        assert r.status_code == 413 and "over the limit" in r.json()["error"]
        assert list(s.queue.folder.iterdir()) == []


def test_a_result_is_not_spent_by_head_or_range(client, photo):
    job = post(client, png(Picture(photo[:8, :8])), url="/api/jobs").json()["id"]
    wait_for(lambda: client.get(f"/api/jobs/{job}").json()["state"] == "done")
    assert client.head(f"/api/jobs/{job}/result").status_code == 405
    assert client.get(f"/api/jobs/{job}/result", headers={"range": "bytes=0-0"}).status_code == 416
    assert client.get(f"/api/jobs/{job}/result").status_code == 200


def test_a_client_that_goes_away_cancels_its_job(server, photo):
    """The synchronous POST: the client sends the image and hangs up; the server notices and cancels."""
    import socket

    s = server()
    data = png(Picture(photo))
    with live_server(s) as (host, port):
        gate = Gate(s.runner(superres_options()))
        s.queue.make_runner = lambda options: gate
        body = (
            b'--b\r\nContent-Disposition: form-data; name="image"; filename="a.png"\r\n\r\n' + data + b"\r\n--b--\r\n"
        )
        with socket.create_connection((host, port)) as sock:
            sock.sendall(
                f"POST /api/upscale HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: multipart/form-data; "
                f"boundary=b\r\nContent-Length: {len(body)}\r\n\r\n".encode()
                + body
            )
            wait_for(lambda: any(j.state == "running" for j in s.queue.jobs.values()))
            job = next(iter(s.queue.jobs.values()))
        wait_for(lambda: job.cancel.is_set())  # the socket is closed: the job is cancelled
        gate.open.set()
        wait_for(lambda: job.state == "cancelled" and list(s.queue.folder.iterdir()) == [])


def test_a_job_nobody_asks_about_is_cancelled(server, photo):
    """A closed tab stops polling: its job is cancelled after the heartbeat, and its files deleted."""
    s = server(heartbeat=0.5)
    with TestClient(create_app("127.0.0.1", 8000, s, allowed_hosts=["testserver"])) as c:
        c.server = s
        gate = gated(c)
        job = post(c, png(Picture(photo[:16, :16])), url="/api/jobs").json()["id"]
        time.sleep(2.5)
        gate.open.set()
        assert c.get(f"/api/jobs/{job}").status_code == 404
        wait_for(lambda: list(s.queue.folder.iterdir()) == [])


def test_host_and_cross_site_checks(server, photo):
    s = server()
    app = create_app("127.0.0.1", 8765, s)
    data = png(Picture(photo[:8, :8]))
    with TestClient(app, base_url="http://127.0.0.1:8765") as c:
        assert c.get("/api/info").status_code == 200
        assert c.get("/api/info", headers={"host": "localhost:8765"}).status_code == 200
        r = c.get("/", headers={"host": "attacker.example:8765"})
        assert r.status_code == 403 and "DNS rebinding" in r.json()["error"]
        assert c.get("/", headers={"host": "127.0.0.1:9999"}).status_code == 403
        r = c.post("/api/upscale", files={"image": ("a.png", data)}, headers={"origin": "http://attacker.example"})
        assert r.status_code == 403 and r.json()["error"] == "cross-site request refused"
        r = c.post("/api/upscale", files={"image": ("a.png", data)}, headers={"sec-fetch-site": "cross-site"})
        assert r.status_code == 403
        r = c.post("/api/upscale", files={"image": ("a.png", data)}, headers={"origin": "https://127.0.0.1:8765"})
        assert r.status_code == 403  # the page's host, another scheme: another origin
        r = c.post("/api/upscale", files={"image": ("a.png", data)}, headers={"origin": "http://127.0.0.1:8765"})
        assert r.status_code == 200  # the page itself
    with TestClient(create_app("0.0.0.0", 8765, s), base_url="http://192.168.1.20:8765") as c:
        assert c.get("/api/info").status_code == 200  # listening everywhere: any Host


def test_page_and_info(client):
    page = client.get("/")
    assert page.status_code == 200 and "<title>superres</title>" in page.text
    for asset in ("app.js", "zip.js", "style.css"):
        assert client.get(f"/static/{asset}").status_code == 200
    assert "http" not in page.text.replace("http-equiv", "")  # no CDN: everything from this server
    info = client.get("/api/info").json()
    assert any(m["default"] for m in info["models"]) and info["max_upload_bytes"] > 0


def test_the_serve_command_without_its_extra(monkeypatch, capsys):
    import sys

    from superres.cli import main

    monkeypatch.setitem(sys.modules, "uvicorn", None)
    assert main(["serve"]) == 2
    assert "pip install 'superres[serve]'" in capsys.readouterr().err


@pytest.mark.parametrize("host", ["127.0.0.1", "0.0.0.0"])
def test_the_serve_command_serves_and_cleans_up(tmp_path, host):
    """`superres serve --port 0` prints its address (and a warning off loopback), serves, and on SIGTERM
    stops with exit code 0, its private folder removed."""
    import json
    import os
    import re
    import signal
    import subprocess
    import sys
    import urllib.request

    env = dict(os.environ, TMPDIR=str(tmp_path))  # where its private folder goes
    proc = subprocess.Popen(
        [sys.executable, "-m", "superres", "serve", "--host", host, "--port", "0", "--device", "cpu"],
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        first = proc.stderr.readline()
        if host != "127.0.0.1":
            assert first.startswith("warning: listening on 0.0.0.0") and "no login" in first
            first = proc.stderr.readline()
        url = re.search(r"serving on (http://127\.0\.0\.1:\d+/)", first).group(1)
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(url + "api/info", timeout=5) as r:
                    info = json.load(r)
                break
            except OSError:
                assert time.monotonic() < deadline, "the server never answered"
                time.sleep(0.1)
        assert info["queue"] == 8 and len(list(tmp_path.glob("superres-serve-*"))) == 1
    finally:
        proc.send_signal(signal.SIGTERM)
        _, rest = proc.communicate(timeout=60)
    assert proc.returncode == 0 and "Traceback" not in rest
    assert list(tmp_path.glob("superres-serve-*")) == []


def test_read_upload_refusals_and_names(tmp_path):
    """read_upload alone: the file's name is the last component of the browser's, fields are kept as text,
    and each refusal has its status and leaves no file behind."""
    import asyncio

    from superres.web.upload import UploadError, read_upload

    def body(*parts: tuple[str, str | None, bytes]) -> bytes:
        out = b""
        for name, filename, data in parts:
            file = "" if filename is None else f'; filename="{filename}"'
            out += f'--b\r\nContent-Disposition: form-data; name="{name}"{file}\r\n\r\n'.encode() + data + b"\r\n"
        return out + b"--b--\r\n"

    def read(data: bytes, max_bytes: int = 1000):
        async def chunks():
            for i in range(0, len(data), 7):  # in small pieces, as a slow client sends them
                yield data[i : i + 7]

        return asyncio.run(
            read_upload("multipart/form-data; boundary=b", chunks(), "image", max_bytes, lambda n: tmp_path / n)
        )

    upload = read(body(("scale", None, b"2"), ("image", "C:\\photos\\in.png", b"pixels")))
    assert upload.fields == {"scale": "2"} and upload.name == "in.png" and upload.bytes == 6
    assert upload.path == tmp_path / "in.png" and upload.path.read_bytes() == b"pixels"
    upload.path.unlink()
    refused = [
        (body(("image", "a.png", b"x"), ("image", "b.png", b"y")), 422, "send one file per request in 'image'"),
        (body(("scale", None, b"2" * 2000), ("image", "a.png", b"x")), 413, "the field 'scale' is too long"),
        (body(("image", "a.png", b"x" * 1001)), 413, "a.png: the upload is over the limit of 1,000 bytes"),
        (body(("scale", None, b"2")), 422, "no file in the field 'image'"),
        (b"--b\r\nno headers, no end", 400, "could not be read as multipart/form-data"),
    ]
    for data, status, says in refused:
        with pytest.raises(UploadError) as e:
            read(data)
        assert (e.value.status, says in str(e.value)) == (status, True), str(e.value)
        assert list(tmp_path.iterdir()) == []
    with pytest.raises(UploadError) as e:
        asyncio.run(read_upload("text/plain", None, "image", 1000, lambda n: tmp_path / n))
    assert e.value.status == 415


def raw_post(client, head: bytes, data: bytes = b"x", tail: bytes = b""):
    """A multipart body with one part whose header lines are `head`, as a hostile client may write it."""
    body = b"--b\r\n" + head + b"\r\n\r\n" + data + b"\r\n" + tail + b"--b--\r\n"
    return client.post("/api/upscale", content=body, headers={"content-type": "multipart/form-data; boundary=b"})


@pytest.mark.parametrize(
    "head, status, says",
    [
        (
            b'Content-Disposition: form-data; name="image"; filename="x.p\x00ng"',
            400,
            "the file's name 'x.p?ng' has a control",
        ),
        (b'Content-Disposition: form-data; name="image"; filename="a\x00b.png"', 400, "has a control character"),
        (b'Content-Disposition: form-data; name="image"; filename="a\x1bb.png"', 400, "has a control character"),
        (b'Content-Disposition: form-data; name="sca\x00le"', 400, "a field's name 'sca?le' has a control"),
        (b'Content-Disposition: form-data; name="file"; filename="a.png"', 422, "a file came in the field 'file'"),
        (b'Content-Disposition: form-data; filename="a.png"', 400, "a part of the form has no field name"),
        (b"Content-Type: image/png", 400, "a part of the form has no field name"),
        (b'Content-Disposition: form-data; name="image"; filename=""', 422, "no file chosen in the field 'image'"),
    ],
)
def test_malformed_names_and_fields_get_4xx_with_the_reason(client, head, status, says):
    r = raw_post(client, head)
    assert r.status_code == status and says in r.json()["error"], r.text
    assert list(client.server.queue.folder.iterdir()) == []


def test_a_boundary_too_long_for_the_parser_is_a_400(client):
    r = client.post(
        "/api/upscale", content=b"x", headers={"content-type": "multipart/form-data; boundary=" + "a" * 300}
    )
    assert r.status_code == 400 and "could not be read as multipart/form-data" in r.json()["error"]


def test_no_mangled_body_is_a_500(client, photo):
    """A valid upload with random bytes written over its part headers and boundaries, 300 ways: each is
    answered (4xx, or 200 where the damage left a valid request), never 500."""
    body = (
        b'--b\r\nContent-Disposition: form-data; name="scale"\r\n\r\n2\r\n'
        b'--b\r\nContent-Disposition: form-data; name="image"; filename="in.png"\r\nContent-Type: image/png\r\n\r\n'
    )
    tail = png(Picture(photo[:8, :8])) + b"\r\n--b--\r\n"
    rng = np.random.default_rng(1)
    statuses = set()
    for _ in range(300):
        mangled = bytearray(body)
        for i in rng.integers(0, len(body), rng.integers(1, 4)):
            mangled[i] = int(rng.choice([0, 10, 13, 34, 59, 61, 92, 127, 255, int(rng.integers(0, 256))]))
        r = client.post(
            "/api/upscale", content=bytes(mangled) + tail, headers={"content-type": "multipart/form-data; boundary=b"}
        )
        assert r.status_code < 500, (bytes(mangled), r.text)
        statuses.add(r.status_code)
    assert 200 in statuses and len(statuses) > 2  # both kinds were made
    assert list(client.server.queue.folder.iterdir()) == []


def test_work_is_bounded_before_it_starts(server, photo):
    """Output pixels and the network's estimated work are checked before a job is queued: 413 with the numbers."""
    s = server(max_work=1e9)
    with TestClient(create_app("127.0.0.1", 8000, s, allowed_hosts=["testserver"])) as c:
        r = post(c, png(Picture(photo)), size="20000x20000")  # a 64x80 input
        assert r.status_code == 413 and r.json()["error"] == (
            "in.png: the output would be 20000x20000 = 400,000,000 pixels, over this server's limit of 64,000,000"
        )
        r = post(c, png(Picture(np.zeros((10000, 10000), np.uint8))), scale=2)  # a small file, 100 MP decoded
        assert r.status_code == 413 and "20000x20000 = 400,000,000 pixels" in r.json()["error"]
        params = s.runner(superres_options()).work((1, 1))
        r = post(c, png(Picture(photo)), self_ensemble="true")
        work = params * 64 * 80 * 8
        assert r.status_code == 413 and r.json()["error"] == (
            f"in.png: 80x64 with self-ensemble is about {work / 1e12:.1f}e12 multiply-adds of network work, "
            f"over this server's limit of 0.001e12"
        )
        assert post(c, png(Picture(photo[:16, :16]))).status_code == 200  # 16x16: within the limit
        assert list(s.queue.folder.iterdir()) == []


def test_an_upload_must_arrive_in_time_and_stops_with_the_server():
    import asyncio

    from superres.web.upload import UploadError, within

    async def slow():
        yield b"a"
        await asyncio.sleep(5)
        yield b"b"

    async def read(stopping=lambda: False):
        return [chunk async for chunk in within(slow(), 0.3, stopping)]

    with pytest.raises(UploadError) as e:
        asyncio.run(read())
    assert e.value.status == 408 and str(e.value) == "the upload did not arrive within 0.3 s; send it again"
    with pytest.raises(UploadError) as e:
        asyncio.run(read(stopping=lambda: True))
    assert e.value.status == 503 and str(e.value) == "the server is stopping"

    async def stalls():
        return [chunk async for chunk in within(slow(), 60, gap=0.3)]

    with pytest.raises(UploadError) as e:  # within its time, but nothing for longer than the gap
        asyncio.run(stalls())
    assert e.value.status == 408 and str(e.value) == "the upload stalled: nothing arrived for 0.3 s; send it again"


def test_a_result_is_kept_from_its_end_however_often_it_is_asked_about(server, photo):
    s = server(keep=1.0)
    with TestClient(create_app("127.0.0.1", 8000, s, allowed_hosts=["testserver"])) as c:
        job = post(c, png(Picture(photo[:16, :16])), url="/api/jobs").json()["id"]
        wait_for(lambda: c.get(f"/api/jobs/{job}").json()["state"] == "done")
        wait_for(lambda: c.get(f"/api/jobs/{job}").status_code == 404, seconds=10)  # polled all along: gone
        wait_for(lambda: list(s.queue.folder.iterdir()) == [])


def test_a_client_that_never_reads_its_answers_is_dropped(server):
    """Requests pipelined by a client that reads nothing: its answers fill the socket, writing pauses, and after
    write_timeout the connection is dropped (it would otherwise hold its place, busy, for ever)."""
    import socket

    from superres.web.listener import ConnectionLimits

    s = server()
    with live_server(s, limits=ConnectionLimits(write_timeout=1.0)) as (host, port):
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect((host, port))
        request = f"GET /static/app.js HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode()
        sock.sendall(request * 2000)
        time.sleep(3.0)  # past the write timeout, reading nothing
        sock.settimeout(5)
        received = 0
        with pytest.raises((ConnectionResetError, EOFError)):
            while True:  # what was sent before the drop, then the end
                chunk = sock.recv(1 << 16)
                if not chunk:
                    raise EOFError
                received += len(chunk)
        sock.close()
        from superres.web.app import STATIC

        assert received < 2000 * (STATIC / "app.js").stat().st_size / 2  # far from every answer


def test_the_upload_budget_counts_reservations_until_the_file_goes():
    from superres.web.jobs import Busy, UploadBudget

    budget = UploadBudget(1000)
    a = budget.reserve(600)
    with pytest.raises(Busy, match="hold 600 of this server's 1,000 bytes for uploads, and this one needs 500"):
        budget.reserve(500)
    a.shrink(300)  # the stored file is smaller than announced
    b = budget.reserve(500)
    a.release()
    a.release()  # once only
    assert budget.used == 500
    b.release()
    assert budget.used == 0
