"""HTTP to the server with httpx: bodies streamed both ways, and every
failure turned into a ClientError with the right exit code."""
from __future__ import annotations

import contextlib
import json
from typing import Iterator

import httpx

from . import __version__
from .config import Login
from .errors import EMPTY, REFUSED, UNREACHABLE, USAGE, ClientError

TIMEOUT = httpx.Timeout(60.0, connect=10.0)


def user_agent() -> str:
    return f"cloudbuffer-cli/{__version__}"


def unreachable(url: str, error: Exception) -> ClientError:
    reason = str(error) or type(error).__name__
    return ClientError(UNREACHABLE, f"cannot reach {url} ({reason}); check the address and that the server is running")


def server_error(response: httpx.Response) -> tuple[str | None, str]:
    """The server's `error` and `message` from a (small) JSON error body, else the status."""
    try:
        response.read()
        body = json.loads(response.content)
        code, message = body.get("error"), body.get("message")
    except (ValueError, AttributeError, httpx.HTTPError):
        code = message = None
    return (code if isinstance(code, str) else None,
            " ".join(str(message).split()) if message else f"HTTP {response.status_code}")


def server_message(response: httpx.Response) -> str:
    return server_error(response)[1]


ENCRYPTED_ACCOUNT = ("this account is end-to-end encrypted and this computer has no key for it: "
                     "run `cloudbuffer pair` to get it from one of your devices, or `cloudbuffer e2e recover`")


def raise_for_status(response: httpx.Response, not_found: str | None = None) -> None:
    status = response.status_code
    if status < 400:
        return
    code, message = server_error(response)
    if status == 409 and code == "encrypted_account":
        raise ClientError(REFUSED, ENCRYPTED_ACCOUNT, code)
    if status == 401:
        raise ClientError(REFUSED, f"not logged in ({message}); run `cloudbuffer login`")
    if status == 404 and not_found:
        raise ClientError(EMPTY, not_found)
    if status >= 500:
        raise ClientError(UNREACHABLE, f"the server failed ({message}); try again later", code)
    raise ClientError(REFUSED, f"refused: {message}", code)


class Api:
    """One server, one token (or none, for logging in)."""

    def __init__(self, url: str, token: str | None = None) -> None:
        if not url.startswith(("http://", "https://")):
            raise ClientError(USAGE, f"{url!r} is not a server address; give one like https://buffer.example.com")
        self.url = url.rstrip("/")
        headers = {"User-Agent": user_agent(), "Accept": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self.http = httpx.Client(base_url=self.url, headers=headers, timeout=TIMEOUT)

    @classmethod
    def for_login(cls, login: Login) -> "Api":
        return cls(login.url, login.token)

    def __enter__(self) -> "Api":
        return self

    def __exit__(self, *exc_info) -> None:
        self.http.close()

    @contextlib.contextmanager
    def stream(self, method: str, path: str, not_found: str | None = None, **kwargs) -> Iterator[httpx.Response]:
        """A response whose body is not read yet; errors already raised."""
        try:
            with self.http.stream(method, path, **kwargs) as response:
                raise_for_status(response, not_found)
                yield response
        except httpx.TransportError as error:
            raise unreachable(self.url, error) from None

    def json(self, method: str, path: str, not_found: str | None = None, **kwargs):
        with self.stream(method, path, not_found, **kwargs) as response:
            response.read()
            try:
                return response.json()
            except ValueError:
                raise ClientError(UNREACHABLE, f"{self.url} did not answer like a CloudBuffer server "
                                               f"(HTTP {response.status_code}, not JSON); check the address") from None
