"""`cloudbuffer watch`: one line per change, as it happens."""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import shlex

import httpx

from . import ece
from .api import TIMEOUT, Api, user_agent
from .config import Login, current_login
from .errors import USAGE, ClientError
from .events import open_event
from .live import buffer_events, note
from .transfer import human_size
from .vault import Vault


def describe(event: dict) -> str:
    if event.get("kind") is None:
        return f"{event['seq']}  empty"
    what = event.get("filename") if event["kind"] == "file" else event.get("text")
    if "undecryptable" in event:
        what = f"(encrypted; cannot decrypt: {event['undecryptable']})"
    elif event.get("replayed"):
        what = f"(REPLAYED: an older item sent again as new) {what}"
    if what is None:
        what = f"({human_size(event.get('size', 0))} of text)"
    what = " ".join(str(what).split())
    if len(what) > 120:
        what = what[:119] + "…"
    return f"{event['seq']}  {event['kind']}  {human_size(event.get('size', 0))}  {event.get('from') or '?'}  {what}"


async def _run_exec(argv: list[str], login: Login, event: dict, item_key: bytes | None) -> None:
    """CMD with the item's content on stdin, streamed from the server."""
    env = {**os.environ, "CLOUDBUFFER_KIND": event["kind"], "CLOUDBUFFER_SEQ": str(event["seq"]),
           "CLOUDBUFFER_FILENAME": event.get("filename") or ""}
    try:
        process = await asyncio.create_subprocess_exec(*argv, stdin=asyncio.subprocess.PIPE, env=env)
    except OSError as error:
        raise ClientError(USAGE, f"cannot run {argv[0]!r} ({error.strerror})") from None
    try:
        async with httpx.AsyncClient(base_url=login.url, timeout=TIMEOUT, headers={
                "Authorization": f"Bearer {login.token}", "User-Agent": user_agent()}) as http:
            async with http.stream("GET", f"/file/buffer/items/{event['id']}") as response:
                if response.status_code == 200:
                    chunks = response.aiter_bytes(256 * 1024)
                    if item_key is not None:
                        chunks = ece.adecrypt_stream(chunks, item_key)
                    async for chunk in chunks:
                        process.stdin.write(chunk)
                        await process.stdin.drain()
                else:
                    note(f"item {event['seq']} is gone (HTTP {response.status_code}); CMD gets no input")
    except (httpx.HTTPError, BrokenPipeError, ConnectionResetError, ece.CiphertextError) as error:
        note(f"could not give item {event['seq']} to the command ({type(error).__name__})")
    finally:
        if not process.stdin.is_closing():
            process.stdin.close()
        code = await process.wait()
    if code:
        note(f"the command exited with {code} for item {event['seq']}")


async def watch(args: argparse.Namespace) -> int:
    login = current_login()
    argv = shlex.split(args.exec_command) if args.exec_command else None
    if args.exec_command is not None and not argv:
        raise ClientError(USAGE, "--exec needs a command")
    with Api.for_login(login) as api:
        vault = Vault(api)
        async for event, baseline in buffer_events(login):
            if baseline:
                note(f"watching {login.url} (the buffer is at {event['seq']}); Ctrl-C stops")
                continue
            event, item_key = await open_event(event, vault)
            line = json.dumps(event, ensure_ascii=False) if args.json else describe(event)
            print(line, flush=True)
            if argv and event.get("kind") is not None and "undecryptable" not in event:
                await _run_exec(argv, login, event, item_key)
    return 0


def cmd_watch(args: argparse.Namespace) -> int:
    try:
        return asyncio.run(watch(args))
    except KeyboardInterrupt:
        return 0
