"""The streaming multipart parser: parts go to temp files as they arrive."""
from __future__ import annotations

import os

import pytest

from server.data_dir import ensure_data_dir
from server.errors import APIError
from server.multipart import MAX_PARTS, boundary_of, parse_form
from server.storage import Storage
from tests.helpers import multipart


@pytest.fixture
def storage(tmp_path):
    ensure_data_dir(tmp_path)
    return Storage(tmp_path)


def leftovers(storage) -> list[str]:
    return sorted(os.listdir(storage.tmp_dir)) + sorted(os.listdir(storage.files_dir))


async def chunked(body: bytes, size: int):
    for start in range(0, len(body), size):
        yield body[start:start + size]


async def parse(storage, body: bytes, content_type: str, *, chunk=65536, limit=10_000_000, fields_limit=4096):
    def open_upload():
        return storage.new_upload(limit, lambda: APIError(413, "too_large", "too big"))

    return await parse_form(chunked(body, chunk), boundary_of(content_type), open_upload, fields_limit)


async def contents(part) -> bytes:
    await part.upload.commit()
    return part.upload._storage.path_of(part.upload.stored_name).read_bytes()


async def test_fields_and_files(storage):
    data = os.urandom(200_000)
    body, content_type = multipart([("title", "holiday"), ("file", "beach.jpg", data, "image/jpeg"),
                                    ("title", "second value")])
    form = await parse(storage, body, content_type)
    assert form.fields == {"title": ["holiday", "second value"]}
    assert len(form.files) == 1
    part = form.files[0]
    assert (part.field_name, part.filename, part.content_type) == ("file", "beach.jpg", "image/jpeg")
    assert await contents(part) == data
    assert os.listdir(storage.tmp_dir) == []


@pytest.mark.parametrize("chunk", [1, 3, 7, 64, 1000])
async def test_a_file_split_across_many_small_chunks(storage, chunk):
    # Data full of near-boundaries: CRLFs, dashes, and the boundary minus its last byte.
    boundary = "XyZ123"
    tricky = b"\r\n--XyZ12\r\n-\r\n--\r\n--XyZ12" + bytes(range(256)) + b"\r\n\r\n--"
    data = tricky * 40
    body, content_type = multipart([("file", "tricky.bin", data), ("after", "field")], boundary=boundary)
    form = await parse(storage, body, content_type, chunk=chunk)
    assert form.fields == {"after": ["field"]}
    assert await contents(form.files[0]) == data


async def test_utf8_filenames_as_browsers_send_them(storage):
    body, content_type = multipart([("file", "Größe 日本 📋.txt", b"x")])
    form = await parse(storage, body, content_type)
    assert form.files[0].filename == "Größe 日本 📋.txt"
    await form.files[0].upload.__aexit__(None, None, None)


async def test_rfc_2231_filename_star(storage):
    body = (b'--b\r\nContent-Disposition: form-data; name="file"; filename*=UTF-8\'\'%E2%82%AC.txt\r\n\r\n'
            b"euro\r\n--b--\r\n")
    form = await parse(storage, body, "multipart/form-data; boundary=b")
    assert form.files[0].filename == "€.txt"
    assert await contents(form.files[0]) == b"euro"


async def test_empty_file_part(storage):
    body, content_type = multipart([("file", "empty.txt", b"")])
    form = await parse(storage, body, content_type)
    assert await contents(form.files[0]) == b""


async def test_an_epilogue_is_ignored(storage):
    body, content_type = multipart([("file", "a.txt", b"data")], boundary="bb")
    form = await parse(storage, body + b"epilogue after the closing boundary", content_type)
    assert await contents(form.files[0]) == b"data"


# --- malformed bodies ------------------------------------------------------------------------------


async def expect_bad(storage, body, content_type, *, status=400, code="bad_multipart", **kwargs) -> str:
    with pytest.raises(APIError) as caught:
        form = await parse(storage, body, content_type, **kwargs)
        for part in form.files:  # pragma: no cover - only reached if parsing wrongly succeeded
            await part.upload.__aexit__(None, None, None)
    assert (caught.value.status, caught.value.code) == (status, code)
    assert leftovers(storage) == []  # every temp file opened so far is gone
    return caught.value.message


async def test_missing_closing_boundary(storage):
    body, content_type = multipart([("file", "a.bin", b"a" * 10_000)])
    message = await expect_bad(storage, body[: -len(b"--\r\n") - 10], content_type)
    assert "closing boundary" in message


async def test_body_cut_in_the_middle_of_a_second_file(storage):
    body, content_type = multipart([("first", "a.bin", b"a" * 5000), ("second", "b.bin", b"b" * 5000)])
    await expect_bad(storage, body[:7000], content_type, chunk=1000)


async def test_an_empty_body(storage):
    await expect_bad(storage, b"", "multipart/form-data; boundary=abc")


async def test_garbage_instead_of_a_boundary(storage):
    message = await expect_bad(storage, b"this is not multipart at all\r\n" * 10, "multipart/form-data; boundary=abc")
    assert "malformed" in message or "closing boundary" in message


async def test_a_part_without_a_name(storage):
    body = b'--b\r\nContent-Disposition: form-data; filename="a.txt"\r\n\r\nx\r\n--b--\r\n'
    assert "name" in await expect_bad(storage, body, "multipart/form-data; boundary=b")


async def test_a_part_that_is_not_form_data(storage):
    body = b'--b\r\nContent-Disposition: attachment; name="file"\r\n\r\nx\r\n--b--\r\n'
    await expect_bad(storage, body, "multipart/form-data; boundary=b")


async def test_too_many_parts(storage):
    body, content_type = multipart([(f"f{n}", "v") for n in range(MAX_PARTS + 1)])
    assert "Too many parts" in await expect_bad(storage, body, content_type)
    body, content_type = multipart([(f"f{n}", "v") for n in range(MAX_PARTS)])
    assert len((await parse(storage, body, content_type)).fields) == MAX_PARTS


async def test_too_many_file_parts_removes_the_ones_already_written(storage):
    body, content_type = multipart([(f"f{n}", f"{n}.bin", b"x" * 100) for n in range(MAX_PARTS + 1)])
    await expect_bad(storage, body, content_type)


async def test_a_field_too_large(storage):
    body, content_type = multipart([("file", "a.bin", b"x" * 100), ("note", "n" * 5000)])
    message = await expect_bad(storage, body, content_type, status=413, code="too_large", fields_limit=4096)
    assert "note" in message


async def test_the_fields_are_limited_together_not_each(storage):
    # 64 fields each well under the limit: held in memory together, they
    # are what the limit is about (issue 14: 64 fields of 1 MiB per request).
    body, content_type = multipart([(f"f{n}", "v" * 1000) for n in range(MAX_PARTS)])
    message = await expect_bad(storage, body, content_type, status=413, code="too_large", fields_limit=4096)
    assert "4096 bytes in all" in message and "'f4'" in message
    exactly, content_type = multipart([(f"f{n}", "v" * 1024) for n in range(4)])
    assert len((await parse(storage, exactly, content_type, fields_limit=4096)).fields) == 4


async def test_a_field_that_is_not_utf8(storage):
    body, content_type = multipart([("note", b"\xff\xfe")])
    await expect_bad(storage, body, content_type)


async def test_part_headers_too_large(storage):
    body = b"--b\r\nContent-Disposition: form-data; name=\"f\"\r\nX-Padding: " + b"p" * 10_000 + b"\r\n\r\nx\r\n--b--\r\n"
    await expect_bad(storage, body, "multipart/form-data; boundary=b")


async def test_a_file_over_the_upload_limit(storage):
    body, content_type = multipart([("file", "big.bin", b"b" * 2000)])
    await expect_bad(storage, body, content_type, status=413, code="too_large", limit=1000, chunk=100)


@pytest.mark.parametrize(
    "content_type",
    [
        "multipart/form-data",
        "multipart/form-data; boundary=",
        "multipart/mixed; boundary=abc",
        "application/octet-stream",
        "",
        "multipart/form-data; boundary=" + "a" * 201,
    ],
)
def test_boundary_of_refuses_bad_content_types(content_type):
    with pytest.raises(APIError) as caught:
        boundary_of(content_type)
    assert (caught.value.status, caught.value.code) == (400, "bad_multipart")


def test_boundary_of_accepts_quoted_boundaries():
    assert boundary_of('multipart/form-data; boundary="----WebKitFormBoundaryABC"') == b"----WebKitFormBoundaryABC"
