"""Safe names, RFC 6266 headers and atomic, size-limited uploads on disk."""
from __future__ import annotations

import asyncio
import os
import threading

import pytest
from werkzeug.http import parse_options_header

from server.data_dir import ensure_data_dir
from server.errors import APIError
from server.storage import (
    MAX_FILENAME_CHARS,
    Storage,
    content_disposition,
    guess_mime,
    iter_body,
    sanitize_filename,
    served_mime,
)


@pytest.mark.parametrize(
    "raw, clean",
    [
        ("report.pdf", "report.pdf"),
        ("dir/sub/report.pdf", "report.pdf"),
        ("C:\\Users\\me\\report.pdf", "report.pdf"),
        ("../../etc/passwd", "passwd"),
        ("..\\..\\boot.ini", "boot.ini"),
        (".bashrc", "bashrc"),
        ("...hidden", "hidden"),
        ("  spaced out.txt  ", "spaced out.txt"),
        ("bell\x07\x00null\n\r\t.txt", "bellnull.txt"),
        ("\u202egnp.exe", "gnp.exe"),  # right-to-left override (a Cf character)
        ('a<b>c:d"e|f?g*h.txt', "abcdefgh.txt"),
        ("été 📋.txt", "été 📋.txt"),
        ("e\u0301te\u0301.txt", "été.txt"),  # NFC: one code point per letter
        ("", ""),
        ("..", ""),
        ("/", ""),
        ("\x00\x01", ""),
        (". ..", ""),  # was "..", then "" on a second pass
        (".\x00.\u200b.x", "x"),
        ("a" * 199 + " b", "a" * 199),  # cut short, then its trailing space
    ],
)
def test_sanitize_filename(raw, clean):
    assert sanitize_filename(raw) == clean


def test_long_names_keep_their_extension():
    name = sanitize_filename("a" * 500 + ".tar.gz")
    assert len(name) == MAX_FILENAME_CHARS
    assert name.endswith("a.gz")
    no_ext = sanitize_filename("b" * 500)
    assert no_ext == "b" * MAX_FILENAME_CHARS
    long_ext = sanitize_filename("c" * 300 + "." + "d" * 40)  # not a real extension: cut plainly
    assert len(long_ext) == MAX_FILENAME_CHARS


@pytest.mark.parametrize(
    "name, fallback",
    [
        ("report.pdf", "report.pdf"),
        ("Relevé.pdf", "Releve.pdf"),
        ('say "hi"; 100%\\.txt', "say _hi__ 100__.txt"),
        ("日本語", "download"),
        ("日本語.txt", "download.txt"),  # not a dotfile
        ("．．／．．／．bashrc", "bashrc"),  # NFKD makes it ../../.bashrc: cleaned again
        ("．ssh／authorized_keys", "authorized_keys"),
        ("＼＼server＼share＼x.txt", "__server_share_x.txt"),  # no separator left
        ("é．．", "e.."),
    ],
)
def test_content_disposition_round_trips(name, fallback):
    header = content_disposition(name)
    assert header.startswith("attachment; ")
    assert f'filename="{fallback}"' in header
    assert header.isascii()
    disposition, options = parse_options_header(header)
    assert disposition == "attachment"
    assert options["filename"] == name  # filename* wins for every modern client


def test_content_disposition_inline():
    assert content_disposition("a.png", "inline").startswith("inline; ")


@pytest.mark.parametrize(
    "filename, declared, mime",
    [
        ("a.png", None, "image/png"),
        ("a.png", "application/octet-stream", "image/png"),
        ("a.bin", "Image/JPEG; charset=x", "image/jpeg"),
        ("noext", None, "application/octet-stream"),
        ("noext", "nonsense", "application/octet-stream"),
        ("a.txt", "text/plain; charset=\"utf-8\"; format=flowed", "text/plain"),
        ("a.txt", "  text/plain ;", "text/plain"),
        ("a.png", "", "image/png"),
        # Not a media type (RFC 9110 token "/" token, valid parameters): octet-stream, whatever the name says.
        ("a.png", "a/b\x0bc", "application/octet-stream"),
        ("a.png", "a/b\x1bc", "application/octet-stream"),
        ("a.png", "a/b\x7fc", "application/octet-stream"),
        ("a.png", "image/png\r\nX-Evil: 1", "application/octet-stream"),
        ("a.png", "image/png; charset=\"open", "application/octet-stream"),
        ("a.png", "image/png; =x", "application/octet-stream"),
        ("a.png", "image/png x", "application/octet-stream"),
        ("a.png", "image/", "application/octet-stream"),
        ("a.png", "/png", "application/octet-stream"),
        ("a.png", "image/png/x", "application/octet-stream"),
        ("a.png", "imagé/png", "application/octet-stream"),
        ("a.png", "image/" + "x" * 300, "application/octet-stream"),
    ],
)
def test_guess_mime(filename, declared, mime):
    assert guess_mime(filename, declared) == mime


@pytest.mark.parametrize("stored, served", [
    ("image/png", "image/png"),
    ("text/plain; charset=utf-8", "text/plain; charset=utf-8"),
    ("a/b\x0bc", "application/octet-stream"),
    ("a/b\x1b[31m", "application/octet-stream"),
    ("", "application/octet-stream"),
    (None, "application/octet-stream"),
])
def test_a_stored_type_is_served_only_if_valid(stored, served):
    assert served_mime(stored) == served


# --- Upload --------------------------------------------------------------------------------------


@pytest.fixture
def storage(tmp_path):
    ensure_data_dir(tmp_path)
    return Storage(tmp_path)


def too_large():
    return APIError(413, "too_large", "too big")


def listing(storage):
    return sorted(os.listdir(storage.files_dir)), sorted(os.listdir(storage.tmp_dir))


async def test_upload_is_written_then_moved_into_place(storage):
    data = os.urandom(3 * 1024 * 1024 + 17)  # several write batches
    async with storage.new_upload(10 * 1024 * 1024, too_large) as upload:
        assert upload.tmp_path.parent == storage.tmp_dir
        assert upload.tmp_path.name.startswith(f"{os.getpid()}-") and upload.tmp_path.name.endswith(".part")
        for start in range(0, len(data), 65536):
            await upload.write(data[start:start + 65536])
        stored_name = await upload.commit()
    assert upload.size == len(data)
    assert len(stored_name) == 32 and all(c in "0123456789abcdef" for c in stored_name)
    assert storage.path_of(stored_name).read_bytes() == data
    assert listing(storage) == ([stored_name], [])


@pytest.mark.skipif(not hasattr(os, "setpriority"), reason="nice values are POSIX")
async def test_upload_bytes_are_written_by_threads_below_the_loops_priority(tmp_path):
    ensure_data_dir(tmp_path)
    storage = Storage(tmp_path, upload_nice=7)
    loop_nice = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    seen = []

    def write_sync(data):
        seen.append((threading.get_native_id(), os.getpriority(os.PRIO_PROCESS, threading.get_native_id())))
        real_write(data)

    async with storage.new_upload(10 * 1024 * 1024, too_large) as upload:
        real_write = upload._write_sync
        upload._write_sync = write_sync
        await upload.write(os.urandom(2 * 1024 * 1024))
        await upload.commit()
    storage.close()
    assert seen, "the batch was not written through the upload threads"
    for tid, nice in seen:
        assert tid != threading.get_native_id()
        assert nice == min(loop_nice + 7, 19)
    # Only the pool's threads were lowered, never the loop's.
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == loop_nice
    # A closed storage starts a new pool when it is used again (a restarted app).
    async with storage.new_upload(10, too_large) as upload:
        await upload.write(b"again")
        assert storage.path_of(await upload.commit()).read_bytes() == b"again"
    storage.close()


async def test_names_are_never_reused(storage):
    names = set()
    for _ in range(20):
        async with storage.new_upload(10, too_large) as upload:
            await upload.write(b"x")
            names.add(await upload.commit())
    assert len(names) == 20


async def test_leaving_without_commit_removes_the_temp_file(storage):
    async with storage.new_upload(100, too_large) as upload:
        await upload.write(b"abc")
        assert upload.tmp_path.exists()
    assert listing(storage) == ([], [])


async def test_an_error_inside_the_block_removes_the_temp_file(storage):
    with pytest.raises(RuntimeError):
        async with storage.new_upload(100, too_large) as upload:
            await upload.write(b"abc")
            raise RuntimeError("client went away")
    assert listing(storage) == ([], [])


async def test_the_limit_is_exact_and_enforced_while_writing(storage):
    async with storage.new_upload(10, too_large) as upload:
        await upload.write(b"12345")
        await upload.write(b"67890")  # exactly the limit is fine
        await upload.commit()
    with pytest.raises(APIError) as caught:
        async with storage.new_upload(10, too_large) as upload:
            await upload.write(b"12345")
            await upload.write(b"678901")
    assert caught.value.status == 413
    assert len(listing(storage)[0]) == 1 and listing(storage)[1] == []


async def test_a_cancelled_upload_removes_its_temp_file(storage):
    started = asyncio.Event()

    async def slow_upload():
        async with storage.new_upload(1000, too_large) as upload:
            await upload.write(b"abc")
            started.set()
            await asyncio.sleep(10)

    task = asyncio.create_task(slow_upload())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert listing(storage) == ([], [])


async def test_remove_ignores_missing_files(storage):
    async with storage.new_upload(10, too_large) as upload:
        await upload.write(b"x")
        name = await upload.commit()
    await storage.remove([name, "does-not-exist"])
    await storage.remove([])
    assert listing(storage) == ([], [])


async def test_iter_body_drops_an_idle_client():
    async def stalls():
        yield b"first"
        await asyncio.sleep(10)
        yield b"never"

    received = []
    with pytest.raises(APIError) as caught:
        async for chunk in iter_body(stalls(), idle_seconds=0.1):
            received.append(chunk)
    assert received == [b"first"]
    assert caught.value.status == 408 and caught.value.code == "upload_timeout"


async def test_iter_body_skips_empty_chunks():
    async def body():
        for chunk in (b"a", b"", b"b"):
            yield chunk

    assert [chunk async for chunk in iter_body(body(), 1)] == [b"a", b"b"]
