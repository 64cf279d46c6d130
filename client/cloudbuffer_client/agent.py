"""`cloudbuffer agent`: this computer's clipboard and the buffer, in step
both ways. Contents are compared by hash, so what the agent wrote into the
clipboard is not sent back (no echo loop) and nothing is sent twice; only
live changes and each (re)connect's latest item reach the clipboard, never
older history."""
from __future__ import annotations

import argparse
import asyncio
import hashlib
import shutil
import sys
import time

import httpx

from . import ece, sealed
from .api import ENCRYPTED_ACCOUNT, TIMEOUT, Api, server_error, user_agent
from .clipboard import Clipboard, Content, find_clipboard
from .config import Login, current_login
from .errors import REFUSED, USAGE, ClientError
from .events import open_event
from .live import buffer_events, note
from .vault import Vault

MAX_IMAGE_BYTES = 64 * 1024 * 1024
RETRY_SECONDS = 2.0
# How long a clipboard write may take to show in reads. xclip and wl-copy
# serve the new content from a child that takes the selection only after the
# command returned: a read in between still gets the old owner's content.
SETTLE_SECONDS = 3.0


def digest(content: Content) -> str:
    return hashlib.sha256(content.kind.encode() + b"\0" + content.data).hexdigest()


class Agent:
    def __init__(self, login: Login, clipboard: Clipboard, interval: float) -> None:
        self.login = login
        self.clipboard = clipboard
        self.interval = interval
        # The hash of what the clipboard and the buffer last agreed on: a
        # clipboard read with this hash is no change.
        self.current: str | None = None
        self.pending: Content | None = None  # a local copy not yet accepted by the server
        self.writing = False  # a write from the buffer is taking the clipboard: reads are stale
        self.http = httpx.AsyncClient(base_url=login.url, timeout=TIMEOUT, headers={
            "Authorization": f"Bearer {login.token}", "User-Agent": user_agent()})
        # Key state over a blocking client, used from worker threads only.
        self.api = Api.for_login(login)
        self.vault = Vault(self.api)

    async def run(self) -> None:
        first = await self.clipboard.read()
        self.current = digest(first) if first else None  # what was there before the agent is not news
        note(f"agent: syncing the clipboard ({self.clipboard.name}) with {self.login.url}")
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self.watch_clipboard())
                group.create_task(self.watch_buffer())
        except* ClientError as errors:
            raise errors.exceptions[0] from None
        finally:
            await self.http.aclose()
            self.api.http.close()

    async def watch_clipboard(self) -> None:
        next_try = 0.0
        while True:
            if self.writing:
                await asyncio.sleep(self.interval)
                continue
            content = await self.clipboard.read()
            if self.writing:
                continue  # the read may have raced the write's start
            if content is not None and digest(content) != self.current:
                self.current = digest(content)
                self.pending = content
                next_try = 0.0
            if self.pending is not None and time.monotonic() >= next_try:
                if not await self.send(self.pending):
                    next_try = time.monotonic() + RETRY_SECONDS
            await asyncio.sleep(self.interval)

    async def send(self, content: Content) -> bool:
        if content.kind == "image":
            name = time.strftime("clipboard-%Y%m%d-%H%M%S.png")
            headers = {"X-Data-Type": "file", "X-File-Name": name, "Content-Type": "image/png"}
        else:
            headers = {"X-Data-Type": "text", "Content-Type": "text/plain; charset=utf-8"}
        body = content.data
        try:
            if self.vault.enrolled:
                # Rotates first when the account asks (a device was revoked).
                epoch, ikm = await asyncio.to_thread(self.vault.for_write)
                kind = "file" if content.kind == "image" else "text"
                item = sealed.seal(ikm, epoch, kind, len(body), headers.get("X-File-Name"), "image/png")
                headers, body = item.headers(kind), ece.encrypt(body, item.item_key)
            response = await self.http.post("/file/buffer", content=body, headers=headers)
        except httpx.TransportError as error:
            note(f"agent: cannot reach {self.login.url} ({type(error).__name__}); will retry")
            return False
        except ClientError as error:
            if error.exit_code == REFUSED and "not logged in" in error.message:
                raise
            note(f"agent: {error.message}; will retry")
            return False
        if response.status_code == 401:
            raise ClientError(REFUSED, "the server refused this login; run `cloudbuffer login`")
        if response.status_code >= 500 or response.status_code == 429:
            return False
        if response.status_code >= 400:
            code, _ = server_error(response)
            if code == "stale_key":
                return False  # the key changed meanwhile: the retry seals under the new one
            if code == "encrypted_account":
                note(f"agent: {ENCRYPTED_ACCOUNT}; the clipboard stays here only")
            else:
                note(f"agent: the server refused the clipboard ({response.status_code}); it stays here only")
        if self.pending is content:
            self.pending = None
        return True

    async def watch_buffer(self) -> None:
        async for event, baseline in buffer_events(self.login, key_changes=True):
            if event.get("type") == "e2e":
                await self.key_changed(event)
                continue
            if baseline:
                # A revoke heard by no enrolled device (all were offline) is
                # still due: the first to connect rotates before it writes.
                await self.key_changed({"rotation_needed": True})
                # Until this first snapshot, a post elsewhere would be taken
                # for what the buffer already held (and never pasted here).
                note("agent: live: what your other devices copy now reaches this clipboard")
                continue
            if event.get("kind") is None:
                continue
            content = await self.fetch(event)
            if content is None or digest(content) == self.current:
                continue
            self.current = digest(content)
            self.pending = None  # a newer change from elsewhere wins over an unsent copy
            self.writing = True
            try:
                await self.clipboard.write(content)
                await self.settled(content)
            finally:
                self.writing = False

    async def settled(self, content: Content) -> None:
        """Wait (up to SETTLE_SECONDS) until reads give what was written, so
        the old content, still served meanwhile, is not taken for a copy and
        sent again (a CI run under load caught the agent doing that)."""
        deadline = time.monotonic() + SETTLE_SECONDS
        while time.monotonic() < deadline:
            read = await self.clipboard.read()
            if read is not None and digest(read) == self.current:
                return
            await asyncio.sleep(0.05)

    async def key_changed(self, event: dict) -> None:
        """A device was revoked (rotation due) or the key changed: the first
        enrolled device to hear it rotates, before it posts anything new."""
        if not self.vault.enrolled:
            return
        try:
            if event.get("rotation_needed"):
                await asyncio.to_thread(self.vault.for_write)
            else:
                await asyncio.to_thread(self.vault.refresh)
        except ClientError as error:
            note(f"agent: {error.message}")

    async def fetch(self, event: dict) -> Content | None:
        event, item_key = await open_event(event, self.vault)
        if "undecryptable" in event:
            note(f"agent: item {event.get('seq')} stays in the buffer: cannot decrypt it ({event['undecryptable']})")
            return None
        if event.get("replayed"):
            note(f"agent: item {event.get('seq')} is an older item sent again as new (replayed); not pasted")
            return None
        if event["kind"] == "text" and event.get("text") is not None:
            return Content("text", event["text"].encode())
        is_png = (event.get("mime") or "").split(";")[0].strip() == "image/png"
        if event["kind"] == "file" and (not is_png or event.get("size", 0) > MAX_IMAGE_BYTES):
            return None  # other files stay in the buffer: `cloudbuffer paste` fetches them
        try:
            response = await self.http.get(f"/file/buffer/items/{event['id']}")
        except httpx.TransportError:
            return None  # the next (re)connect's snapshot brings the latest again
        if response.status_code != 200:
            return None
        data = response.content
        if item_key is not None:
            try:
                data = ece.decrypt(data, item_key)
            except ece.CiphertextError as error:
                note(f"agent: item {event.get('seq')} does not decrypt ({error})")
                return None
        return Content("image" if is_png else "text", data)


SERVICE_UNIT = """\
[Unit]
Description=CloudBuffer clipboard agent (copy here, paste on your other devices)
PartOf=graphical-session.target
After=graphical-session.target

[Service]
ExecStart={command} agent
Restart=always
RestartSec=5

[Install]
WantedBy=graphical-session.target
"""


def service_unit() -> str:
    command = shutil.which("cloudbuffer") or sys.argv[0]
    return SERVICE_UNIT.format(command=command)


def cmd_agent(args: argparse.Namespace) -> int:
    if args.print_service:
        sys.stdout.write(service_unit())
        return 0
    if not 0.05 <= args.interval <= 60:
        raise ClientError(USAGE, "--interval is in seconds, between 0.05 and 60")
    login = current_login()
    clipboard = find_clipboard()
    try:
        asyncio.run(Agent(login, clipboard, args.interval).run())
    except KeyboardInterrupt:
        pass
    return 0
