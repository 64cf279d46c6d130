"""This computer's clipboard through whichever tool is present: wl-clipboard
(Wayland), xclip or xsel (X11), pbcopy/pbpaste (macOS). Contents are
(kind, bytes) with kind "text" (UTF-8) or "image" (PNG)."""
from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass

from .errors import USAGE, ClientError

TOOL_TIMEOUT = 5.0
PNG = "image/png"
TEXT_TARGETS = ("UTF8_STRING", "text/plain;charset=utf-8", "text/plain", "STRING", "TEXT")


@dataclass(frozen=True)
class Content:
    kind: str  # "text" or "image"
    data: bytes


async def _run(argv: list[str], data: bytes | None = None) -> bytes | None:
    """The tool's stdout, or None if it failed (an empty clipboard, no owner)."""
    process = await asyncio.create_subprocess_exec(
        *argv, stdin=subprocess.PIPE if data is not None else subprocess.DEVNULL,
        # Writers (xclip -i, wl-copy) stay behind to serve the selection: they
        # must not hold our pipes, or communicate() would wait for them.
        stdout=subprocess.PIPE if data is None else subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        out, _ = await asyncio.wait_for(process.communicate(data), TOOL_TIMEOUT)
    except asyncio.TimeoutError:
        process.kill()
        await process.wait()
        return None
    return out if process.returncode == 0 else None


class Clipboard:
    name = ""
    images = True

    async def targets(self) -> list[str]:
        raise NotImplementedError

    async def read(self) -> Content | None:
        targets = await self.targets()
        if self.images and PNG in targets:
            data = await self._read(PNG)
            return Content("image", data) if data else None
        target = next((name for name in TEXT_TARGETS if name in targets), None)
        if target is None:
            return None
        data = await self._read(target)
        if not data:
            return None
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            return None
        return Content("text", data)

    async def write(self, content: Content) -> None:
        raise NotImplementedError

    async def _read(self, target: str) -> bytes | None:
        raise NotImplementedError


class XClip(Clipboard):
    name = "xclip"

    async def targets(self) -> list[str]:
        out = await _run(["xclip", "-selection", "clipboard", "-o", "-t", "TARGETS"])
        return out.decode(errors="replace").split() if out else []

    async def _read(self, target: str) -> bytes | None:
        return await _run(["xclip", "-selection", "clipboard", "-o", "-t", target])

    async def write(self, content: Content) -> None:
        target = PNG if content.kind == "image" else "UTF8_STRING"
        await _run(["xclip", "-selection", "clipboard", "-i", "-t", target], content.data)


class WlClipboard(Clipboard):
    name = "wl-clipboard"

    async def targets(self) -> list[str]:
        out = await _run(["wl-paste", "--list-types"])
        types = out.decode(errors="replace").split() if out else []
        return types + (["text/plain"] if any(t.startswith("text/plain") for t in types) else [])

    async def _read(self, target: str) -> bytes | None:
        return await _run(["wl-paste", "--no-newline", "--type", "image/png" if target == PNG else "text/plain"])

    async def write(self, content: Content) -> None:
        await _run(["wl-copy", "--type", PNG if content.kind == "image" else "text/plain;charset=utf-8"],
                   content.data)


class TextOnlyTool(Clipboard):
    """A tool that carries text only: xsel cannot serve images, and
    pbcopy/pbpaste carry none."""
    images = False
    read_argv: list[str] = []
    write_argv: list[str] = []

    async def targets(self) -> list[str]:
        return ["UTF8_STRING"]

    async def _read(self, target: str) -> bytes | None:
        return await _run(self.read_argv)

    async def write(self, content: Content) -> None:
        if content.kind == "text":
            await _run(self.write_argv, content.data)


class Xsel(TextOnlyTool):
    name = "xsel"
    read_argv = ["xsel", "--clipboard", "--output"]
    write_argv = ["xsel", "--clipboard", "--input"]


class MacPasteboard(TextOnlyTool):
    name = "pbcopy/pbpaste"
    read_argv = ["pbpaste"]
    write_argv = ["pbcopy"]


def find_clipboard() -> Clipboard:
    """The tool for this session, or a USAGE error naming what to install."""
    if os.environ.get("WAYLAND_DISPLAY") and shutil.which("wl-copy") and shutil.which("wl-paste"):
        return WlClipboard()
    if os.environ.get("DISPLAY"):
        if shutil.which("xclip"):
            return XClip()
        if shutil.which("xsel"):
            return Xsel()
    if sys.platform == "darwin" and shutil.which("pbcopy") and shutil.which("pbpaste"):
        return MacPasteboard()
    raise ClientError(USAGE, "no clipboard tool found: install wl-clipboard (Wayland) or xclip or xsel (X11), "
                             "e.g. `sudo apt install wl-clipboard xclip`, and run the agent in your desktop session")
