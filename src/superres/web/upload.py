"""Reading a multipart/form-data upload as it arrives: the file goes straight into the server's private
folder (never the system's temp folder), and the upload is refused as soon as it passes the byte limit."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import AsyncIterator, Callable

from python_multipart.multipart import MultipartParser, parse_options_header

MAX_FIELD_BYTES = 1024  # option fields are short
MAX_FIELDS = 16
OVERHEAD_BYTES = 64 * 1024  # the body around the file: boundaries, part headers, fields


class UploadError(Exception):
    """A bad upload; `status` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class Upload:
    fields: dict[str, str] = field(default_factory=dict)
    name: str | None = None  # the file's name, as the browser sent it
    path: Path | None = None
    bytes: int = 0


async def read_upload(
    content_type: str, chunks: AsyncIterator[bytes], file_field: str, max_bytes: int, new_path: Callable[[str], Path]
) -> Upload:
    """Parse the body: text fields into .fields, the part named `file_field` into a new file at
    new_path(its name). Raises UploadError (413 over max_bytes, 400/415 for a malformed body)."""
    kind, params = parse_options_header(content_type or "")
    if kind != b"multipart/form-data" or b"boundary" not in params:
        raise UploadError(415, "send the image as multipart/form-data, in a field named 'image'")
    upload = Upload()
    state: dict = {"headers": {}, "name": None, "file": None, "value": bytearray(), "field": b"", "header": b""}

    def on_part_begin() -> None:
        state.update(headers={}, name=None, file=None, value=bytearray())

    def on_header_field(data: bytes, start: int, end: int) -> None:
        state["header"] += data[start:end]

    def on_header_value(data: bytes, start: int, end: int) -> None:
        key = state["header"].lower()
        state["headers"][key] = state["headers"].get(key, b"") + data[start:end]

    def on_header_end() -> None:
        state["header"] = b""

    def on_headers_finished() -> None:
        state["parts"] = state.get("parts", 0) + 1
        if state["parts"] > MAX_FIELDS:
            raise UploadError(413, f"more than {MAX_FIELDS} form fields")
        _, disposition = parse_options_header(state["headers"].get(b"content-disposition", b""))
        name = disposition.get(b"name", b"").decode("utf-8", "replace")
        state["name"] = name
        if name == file_field:
            if upload.path is not None:
                raise UploadError(422, f"send one file per request in '{file_field}'")
            filename = disposition.get(b"filename", b"upload").decode("utf-8", "replace")
            upload.name = Path(filename.replace("\\", "/")).name or "upload"
            upload.path = new_path(upload.name)
            state["file"] = open(upload.path, "wb")

    def on_part_data(data: bytes, start: int, end: int) -> None:
        if state["file"] is not None:
            upload.bytes += end - start
            if upload.bytes > max_bytes:
                raise UploadError(413, f"{upload.name}: the upload is over the limit of {max_bytes:,} bytes")
            state["file"].write(data[start:end])
        else:
            state["value"] += data[start:end]
            if len(state["value"]) > MAX_FIELD_BYTES:
                raise UploadError(413, f"the field '{state['name']}' is too long")

    def on_part_end() -> None:
        if state["file"] is not None:
            state["file"].close()
            state["file"] = None
        elif state["name"]:
            upload.fields[state["name"]] = state["value"].decode("utf-8", "replace")

    parser = MultipartParser(
        params[b"boundary"],
        {
            "on_part_begin": on_part_begin,
            "on_header_field": on_header_field,
            "on_header_value": on_header_value,
            "on_header_end": on_header_end,
            "on_headers_finished": on_headers_finished,
            "on_part_data": on_part_data,
            "on_part_end": on_part_end,
        },
    )
    try:
        received = 0
        async for chunk in chunks:  # the whole body counts, chunked or not
            received += len(chunk)
            if received > max_bytes + OVERHEAD_BYTES:
                raise UploadError(413, f"{upload.name or 'the upload'}: over the limit of {max_bytes:,} bytes")
            parser.write(chunk)
        parser.finalize()
    except UploadError:
        discard(upload, state)
        raise
    except Exception as e:  # noqa: BLE001 - python-multipart's errors for a malformed body
        discard(upload, state)
        raise UploadError(400, f"the upload could not be read as multipart/form-data ({e})") from e
    if upload.path is None:
        raise UploadError(422, f"no file in the field '{file_field}'")
    return upload


def discard(upload: Upload, state: dict | None = None) -> None:
    """Close and delete what an upload wrote."""
    if state is not None and state.get("file") is not None:
        state["file"].close()
    if upload.path is not None:
        upload.path.unlink(missing_ok=True)
