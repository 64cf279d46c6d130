"""Small helpers shared by the handler, unit and end-to-end tests."""
from __future__ import annotations

import base64
import json
import secrets
from pathlib import Path

BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
COOKIE_NAME = "cloudbuffer_session"


def multipart(parts: list[tuple], boundary: str | None = None) -> tuple[bytes, str]:
    """Build a multipart/form-data body by hand, so tests control every byte.

    Each part is (name, value) for a field or (name, filename, data[, content_type])
    for a file; filename may be str (sent as raw UTF-8, as browsers do).
    Returns (body, content_type).
    """
    boundary = boundary or "----cloudbuffer" + secrets.token_hex(8)
    out = bytearray()
    for part in parts:
        out += f"--{boundary}\r\n".encode()
        if len(part) == 2:
            name, value = part
            out += f'Content-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
            out += value.encode() if isinstance(value, str) else value
        else:
            name, filename, data = part[:3]
            content_type = part[3] if len(part) > 3 else "application/octet-stream"
            out += f'Content-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'.encode()
            out += f"Content-Type: {content_type}\r\n\r\n".encode()
            out += data
        out += b"\r\n"
    out += f"--{boundary}--\r\n".encode()
    return bytes(out), f"multipart/form-data; boundary={boundary}"


def session_key_of_cookie(cookie_value: str) -> str:
    """The random session id inside quart-auth's signed cookie
    (itsdangerous: base64url(JSON payload).timestamp.signature)."""
    payload = cookie_value.split(".", 1)[0]
    payload += "=" * (-len(payload) % 4)
    return json.loads(base64.urlsafe_b64decode(payload))


def cookie_value(client) -> str | None:
    """The session cookie a Quart test client holds."""
    for cookie in client.cookie_jar:
        if cookie.name == COOKIE_NAME:
            return cookie.value
    return None


def database_bytes(data_dir: Path) -> bytes:
    """Every byte SQLite keeps for the app: the main file, WAL and journal."""
    blob = b""
    for suffix in ("", "-wal", "-journal", "-shm"):
        path = Path(data_dir) / f"cloudbuffer.sqlite3{suffix}"
        if path.exists():
            blob += path.read_bytes()
    return blob


def table_names(conn) -> list[str]:
    """The app's tables, on either engine (a plain function of a connection)."""
    if conn.dialect.name == "sqlite":
        return conn.column("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
                           " ORDER BY name")
    return conn.column("SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
                       " ORDER BY table_name")


def _every_value(conn) -> bytes:
    blob = bytearray()
    for table in table_names(conn):
        for row in conn.all(f"SELECT * FROM {table}"):
            for value in row:
                blob += value if isinstance(value, bytes) else str(value).encode()
                blob += b"\x00"
    return bytes(blob)


async def database_content(app, settings: dict) -> bytes:
    """Every byte the database keeps for the app: SQLite's files as they are
    on disk (WAL and journal too), or every value of every PostgreSQL table."""
    from server.services import services

    if "DATABASE_URL" not in settings:
        return database_bytes(settings["DATA_DIR"])
    return await services(app).db.read(_every_value)


def stored_files(data_dir: Path) -> list[str]:
    return sorted(p.name for p in (Path(data_dir) / "files").iterdir())


def temp_files(data_dir: Path) -> list[str]:
    return sorted(p.name for p in (Path(data_dir) / "tmp").iterdir())
