"""Reading a multipart/form-data upload as it arrives: the file goes straight into the server's private
folder (never the system's temp folder), and the upload is refused as soon as it passes the byte limit."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from python_multipart.multipart import MultipartParser, parse_options_header

from superres.errors import SuperresError

if TYPE_CHECKING:
    from python_multipart.multipart import MultipartCallbacks

MAX_FIELD_BYTES = 1024  # option fields are short
MAX_FIELDS = 16
OVERHEAD_BYTES = 64 * 1024  # the body around the file: boundaries, part headers, fields
UPLOAD_GAP = 30.0  # the most seconds an upload may go without sending anything
POLL = 0.1  # seconds between two looks at the server's state while an upload's next chunk is awaited
CONTROL = re.compile(r"[\x00-\x1f\x7f]")  # NUL, newlines and the like: in no file's or field's name


class UploadError(SuperresError):
    """A bad upload; `status` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class Upload:
    """What read_upload read: the text fields, and the file's name and where it was written, `bytes` long."""

    fields: dict[str, str] = field(default_factory=dict)
    name: str | None = None  # the file's name, as the browser sent it
    path: Path | None = None
    bytes: int = 0


async def read_upload(
    content_type: str, chunks: AsyncIterator[bytes], file_field: str, max_bytes: int, new_path: Callable[[str], Path]
) -> Upload:
    """Parse a multipart/form-data body as it arrives: text fields into .fields, the part named `file_field`
    into a new file at new_path(its name). max_bytes: the largest file, in bytes (the whole body may be
    OVERHEAD_BYTES more). Raises UploadError: 415 for another content type, 413 over a limit, 400 for a
    malformed body, 422 for no file or two; whatever was written is then deleted."""
    kind, params = parse_options_header(content_type or "")
    if kind != b"multipart/form-data" or b"boundary" not in params:
        raise UploadError(415, "send the image as multipart/form-data, in a field named 'image'")
    upload = Upload()
    form = _Form(upload, file_field, max_bytes, new_path)
    try:
        parser = MultipartParser(params[b"boundary"], form.callbacks())  # (a boundary over 256 bytes: refused)
        received = 0
        async for chunk in chunks:  # the whole body counts, chunked or not
            received += len(chunk)
            if received > max_bytes + OVERHEAD_BYTES:
                raise UploadError(413, f"{upload.name or 'the upload'}: over the limit of {max_bytes:,} bytes")
            parser.write(chunk)
        parser.finalize()
    except UploadError:
        form.close_file()
        discard(upload)
        raise
    except Exception as e:
        form.close_file()
        discard(upload)
        raise UploadError(400, f"the upload could not be read as multipart/form-data ({e})") from e
    if upload.path is None:
        raise UploadError(422, f"no file in the field '{file_field}'")
    return upload


class _Form:
    """python-multipart's callbacks for one body, filling `upload`: each part's headers gathered, then its
    data written to the file (the part named file_field) or kept as a field's text, within the limits."""

    def __init__(self, upload: Upload, file_field: str, max_bytes: int, new_path: Callable[[str], Path]) -> None:
        self.upload, self.file_field, self.max_bytes, self.new_path = upload, file_field, max_bytes, new_path
        self.parts = 0
        self.header = b""  # the name of the header being read
        self.headers: dict[bytes, bytes] = {}  # the part's headers, names in lower case
        self.name: str | None = None  # the part's field name
        self.file: BinaryIO | None = None  # open while the file's part is read
        self.value = bytearray()  # a text field's value

    def callbacks(self) -> MultipartCallbacks:
        return {
            "on_part_begin": self.on_part_begin,
            "on_header_field": self.on_header_field,
            "on_header_value": self.on_header_value,
            "on_header_end": self.on_header_end,
            "on_headers_finished": self.on_headers_finished,
            "on_part_data": self.on_part_data,
            "on_part_end": self.on_part_end,
        }

    def on_part_begin(self) -> None:
        self.headers, self.name, self.file, self.value = {}, None, None, bytearray()

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self.header += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        key = self.header.lower()
        self.headers[key] = self.headers.get(key, b"") + data[start:end]

    def on_header_end(self) -> None:
        self.header = b""

    def on_headers_finished(self) -> None:
        self.parts += 1
        if self.parts > MAX_FIELDS:
            raise UploadError(413, f"more than {MAX_FIELDS} form fields")
        _, disposition = parse_options_header(self.headers.get(b"content-disposition", b""))
        if b"name" not in disposition:
            raise UploadError(400, "a part of the form has no field name (Content-Disposition: form-data; name=...)")
        self.name = _text(disposition[b"name"], "a field's name")
        filename = disposition.get(b"filename")
        if self.name == self.file_field:
            self.open_file(_text(filename, "the file's name") if filename is not None else "upload")
        elif filename is not None:
            raise UploadError(422, f"a file came in the field '{self.name}'; send the image in '{self.file_field}'")

    def open_file(self, filename: str) -> None:
        """The file's part begins: a new file named after the browser's file name (its last component)."""
        upload = self.upload
        if upload.path is not None:
            raise UploadError(422, f"send one file per request in '{self.file_field}'")
        if not filename.strip():  # what a browser sends for a file input with nothing chosen
            raise UploadError(422, f"no file chosen in the field '{self.file_field}'")
        upload.name = Path(filename.replace("\\", "/")).name or "upload"
        upload.path = self.new_path(upload.name)
        self.file = open(upload.path, "wb")  # noqa: SIM115 - closed at the part's end, or by close_file

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self.file is not None:
            self.upload.bytes += end - start
            if self.upload.bytes > self.max_bytes:
                raise UploadError(413, f"{self.upload.name}: the upload is over the limit of {self.max_bytes:,} bytes")
            self.file.write(data[start:end])
        else:
            self.value += data[start:end]
            if len(self.value) > MAX_FIELD_BYTES:
                raise UploadError(413, f"the field '{self.name}' is too long")

    def on_part_end(self) -> None:
        if self.file is not None:
            self.close_file()
        elif self.name:
            self.upload.fields[self.name] = self.value.decode("utf-8", "replace")

    def close_file(self) -> None:
        if self.file is not None:
            self.file.close()
            self.file = None


def _text(raw: bytes, what: str) -> str:
    """A name from a part's headers as text: UploadError 400 if it holds a control character (a NUL can name
    no file, and a newline would end a header line when the name is sent back)."""
    text = raw.decode("utf-8", "replace")
    if CONTROL.search(text):
        shown = CONTROL.sub("?", text)[:80]
        raise UploadError(400, f"{what} '{shown}' has a control character (NUL, newline or the like); rename it")
    return text


async def within(
    chunks: AsyncIterator[bytes],
    seconds: float,
    stopping: Callable[[], bool] = lambda: False,
    gap: float = UPLOAD_GAP,
) -> AsyncIterator[bytes]:
    """`chunks` as they arrive, if they all arrive within `seconds` and none comes more than `gap` seconds
    after the one before: UploadError 408 otherwise, so that a client that sends slowly, or stops sending,
    holds no connection or upload room for long; 503 as soon as `stopping()` says the server is stopping
    (checked every POLL seconds while a chunk is awaited)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds
    iterator = aiter(chunks)
    while True:
        step = asyncio.ensure_future(anext(iterator))
        due = min(end, loop.time() + gap)
        while not step.done():
            left = due - loop.time()
            if left <= 0 or stopping():
                step.cancel()
                if left > 0:
                    raise UploadError(503, "the server is stopping")
                if due < end:
                    raise UploadError(408, f"the upload stalled: nothing arrived for {_seconds(gap)} s; send it again")
                raise UploadError(408, f"the upload did not arrive within {_seconds(seconds)} s; send it again")
            await asyncio.wait({step}, timeout=min(left, POLL))
        try:
            chunk = step.result()
        except StopAsyncIteration:
            return
        yield chunk


def _seconds(value: float) -> str:
    return f"{value:.0f}" if value >= 10 else f"{value:.1f}"


def discard(upload: Upload) -> None:
    """Delete the file an upload wrote, if any."""
    if upload.path is not None:
        upload.path.unlink(missing_ok=True)
