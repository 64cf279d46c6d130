"""The original CloudBuffer's own buffer tests (the Django app's
Files/tests/test_buffer.py), ported to HTTP against the real server.

Its clients post both kinds as a multipart form with one part named `file`;
for text, Django's test client sends a nameless file (a BytesIO), giving
the part its field's name as filename. The bodies below are built the way
Django's test client builds them, byte for byte. Only the answers are ours
(201 with the item, where the original said 200 {"code": 0}).
"""
from __future__ import annotations

import mimetypes

import httpx
import pytest

from tests.conftest import PASSWORD
from tests.live_server import LiveServer

BOUNDARY = "BoUnDaRyStRiNg"  # django.test.client.BOUNDARY
TEST_STRING = b"Hello, world!"


def django_form(files: dict[str, tuple[str | None, bytes]]) -> tuple[bytes, dict[str, str]]:
    """A body as django.test.Client.post(url, {name: file}) sends it: a file
    without a name is given the field's, and its type is guessed from the
    name or else application/octet-stream."""
    lines = []
    for key, (filename, content) in files.items():
        content_type = (mimetypes.guess_type(filename)[0] if filename else None) or "application/octet-stream"
        lines += [f"--{BOUNDARY}".encode(),
                  f'Content-Disposition: form-data; name="{key}"; filename="{filename or key}"'.encode(),
                  f"Content-Type: {content_type}".encode(), b"", content]
    lines += [f"--{BOUNDARY}--".encode(), b""]
    return b"\r\n".join(lines), {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    server = LiveServer(tmp_path_factory.mktemp("original-client"))
    server.start()
    with httpx.Client(base_url=server.base_url, timeout=30) as http:
        assert http.post("/account/register", json={"username": "user", "password": PASSWORD}).status_code == 201
        yield http
    server.stop()


def create_file_request(client: httpx.Client, message: bytes = TEST_STRING) -> httpx.Response:
    body, headers = django_form({"file": ("file-name.ext", message)})
    return client.post("/file/buffer", content=body, headers={**headers, "X-Data-Type": "file"})


def create_text_request(client: httpx.Client, message: bytes = TEST_STRING) -> httpx.Response:
    body, headers = django_form({"file": (None, message)})  # BytesIO(message): no name
    return client.post("/file/buffer", content=body, headers={**headers, "X-Data-Type": "text"})


def test_post_file(client):
    response = create_file_request(client)
    assert response.status_code == 201, response.text
    assert response.json()["type"] == "file"
    response = client.get("/file/buffer")
    assert response.status_code == 200
    assert response.headers["X-Data-Type"] == "file"
    assert response.headers["Content-Disposition"].startswith('attachment; filename="file-name.ext"')
    assert response.content == TEST_STRING


def test_post_text(client):
    response = create_text_request(client)
    assert response.status_code == 201, response.text
    assert response.json()["type"] == "text"
    response = client.get("/file/buffer")
    assert response.status_code == 200
    assert response.headers["X-Data-Type"] == "text"
    assert response.content == TEST_STRING


def test_overrides(client):
    for request, message in [(create_file_request, b"asd"), (create_file_request, b"123"),
                             (create_text_request, b"qwe"), (create_text_request, b"zxc"),
                             (create_file_request, b"mnb")]:
        assert request(client, message).status_code == 201
        response = client.get("/file/buffer")
        assert response.status_code == 200
        assert response.content == message


@pytest.mark.parametrize("data_type", ["file", "text"])
def test_no_file(client, data_type):
    body, headers = django_form({})
    response = client.post("/file/buffer", content=body, headers={**headers, "X-Data-Type": data_type})
    assert response.status_code == 400
    assert response.json()["error"] == "bad_multipart"
