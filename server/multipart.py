"""Streaming multipart/form-data: file parts go straight to temp files.

Quart's request.files reads the whole body first; this feeds the body chunk by
chunk to python-multipart's push parser and writes each file part into an
Upload as it arrives, so memory stays flat whatever the size.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import AsyncIterable, Callable, Union

from python_multipart import MultipartParser
from python_multipart.exceptions import MultipartParseError
from werkzeug.http import parse_options_header

from .errors import APIError
from .storage import Upload

MAX_HEADER_BYTES = 8 * 1024
MAX_PARTS = 64


class MemoryPart:
    """A file part kept in memory instead of a temp file, up to `limit`
    bytes: the text that the original clients post as a form's one file
    part. It takes the place of an Upload for parse_form."""

    def __init__(self, limit: int, too_large: Callable[[], APIError]) -> None:
        self._limit = limit
        self._too_large = too_large
        self.data = bytearray()

    @property
    def size(self) -> int:
        return len(self.data)

    async def __aenter__(self) -> "MemoryPart":
        return self

    async def __aexit__(self, exc_type, exc, tb) -> None:
        pass

    async def write(self, data: bytes) -> None:
        if len(self.data) + len(data) > self._limit:
            raise self._too_large()
        self.data += data


@dataclass
class FilePart:
    field_name: str
    filename: str
    content_type: str
    upload: Union[Upload, MemoryPart]


@dataclass
class FormResult:
    fields: dict[str, list[str]] = field(default_factory=dict)
    files: list[FilePart] = field(default_factory=list)


def _bad(message: str) -> APIError:
    return APIError(400, "bad_multipart", message)


def boundary_of(content_type: str) -> bytes:
    mimetype, options = parse_options_header(content_type)
    boundary = options.get("boundary", "")
    if mimetype != "multipart/form-data" or not boundary or len(boundary) > 200:
        raise _bad("Expected multipart/form-data with a boundary.")
    return boundary.encode("latin-1")


async def parse_form(
    chunks: AsyncIterable[bytes],
    boundary: bytes,
    open_upload: Callable[[], Union[Upload, MemoryPart]],
    fields_limit: int,
) -> FormResult:
    """Parse the whole body. Every Upload in the result is open (entered) and
    holds its data; the caller commits or closes them. On any error all the
    uploads opened so far are closed, removing their temp files.

    The text fields are held in memory, so they are bounded together, not
    each: fields_limit bytes for all of them (a bound per field let 64
    fields of a megabyte each through, and a few such requests at once took
    hundreds of MiB)."""
    result = FormResult()
    events: list[tuple] = []
    header: dict[str, bytearray] = {"field": bytearray(), "value": bytearray()}
    headers: dict[str, str] = {}
    header_bytes = 0

    def on_header_field(data: bytes, start: int, end: int) -> None:
        header["field"] += data[start:end]

    def on_header_value(data: bytes, start: int, end: int) -> None:
        header["value"] += data[start:end]

    def on_header_end() -> None:
        nonlocal header_bytes
        header_bytes += len(header["field"]) + len(header["value"])
        if header_bytes > MAX_HEADER_BYTES:
            raise MultipartParseError("part headers too large")
        name = bytes(header["field"]).decode("latin-1").strip().lower()
        raw = bytes(header["value"])
        try:
            value = raw.decode("utf-8")  # browsers send UTF-8 filenames raw
        except UnicodeDecodeError:
            value = raw.decode("latin-1")
        headers[name] = value.strip()
        header["field"].clear()
        header["value"].clear()

    def on_headers_finished() -> None:
        nonlocal header_bytes
        events.append(("begin", dict(headers)))
        headers.clear()
        header_bytes = 0

    def on_part_data(data: bytes, start: int, end: int) -> None:
        # A view, not a slice: most of a file part is whole megabyte chunks,
        # and a slice would copy each once more on the event loop (#4).
        events.append(("data", memoryview(data)[start:end]))

    def on_part_end() -> None:
        events.append(("end",))

    parser = MultipartParser(
        boundary,
        callbacks={
            "on_header_field": on_header_field,
            "on_header_value": on_header_value,
            "on_header_end": on_header_end,
            "on_headers_finished": on_headers_finished,
            "on_part_data": on_part_data,
            "on_part_end": on_part_end,
        },
    )
    current_upload: Upload | None = None
    current_field: tuple[str, bytearray] | None = None
    parts = 0
    field_bytes = 0
    ended = False
    try:
        async for chunk in chunks:
            try:
                parser.write(chunk)
            except MultipartParseError as error:
                raise _bad(f"The multipart body is malformed ({error}).") from None
            for event in events:
                if event[0] == "begin":
                    parts += 1
                    if parts > MAX_PARTS:
                        raise _bad(f"Too many parts (at most {MAX_PARTS}).")
                    disposition, options = parse_options_header(event[1].get("content-disposition", ""))
                    name = options.get("name")
                    if disposition != "form-data" or name is None:
                        raise _bad("Each part needs Content-Disposition: form-data with a name.")
                    if "filename" in options:
                        current_upload = open_upload()
                        await current_upload.__aenter__()
                        result.files.append(
                            FilePart(name, options["filename"], event[1].get("content-type", ""), current_upload)
                        )
                    else:
                        current_field = (name, bytearray())
                elif event[0] == "data":
                    if current_upload is not None:
                        await current_upload.write(event[1])
                    elif current_field is not None:
                        field_bytes += len(event[1])
                        if field_bytes > fields_limit:
                            raise APIError(413, "too_large",
                                           f"The form's text fields are limited to {fields_limit} bytes in all "
                                           f"(more arrived with {current_field[0]!r}); send big content as a file.")
                        current_field[1].extend(event[1])
                else:
                    if current_field is not None:
                        try:
                            text = current_field[1].decode("utf-8")
                        except UnicodeDecodeError:
                            raise _bad(f"The form field {current_field[0]!r} is not valid UTF-8.") from None
                        result.fields.setdefault(current_field[0], []).append(text)
                    current_upload = None
                    current_field = None
            events.clear()
            ended = ended or parser.state.name == "END"
        try:
            parser.finalize()
        except MultipartParseError:
            pass
        if not ended and parser.state.name != "END":
            raise _bad("The multipart body ended before its closing boundary.")
    except BaseException:
        for part in result.files:
            await part.upload.__aexit__(None, None, None)
        raise
    return result
