"""Running CloudBuffer under Hypercorn: config, workers, graceful shutdown.

Hypercorn's own runner cannot tell the app that shutdown has begun until the
graceful timeout is over, so live sockets would be cut instead of closed with
1001. This runner passes a shutdown trigger that first sets the app's
`shutting_down` event, then lets Hypercorn drain in-flight requests.
"""
from __future__ import annotations

import asyncio
import copy
import functools
import logging
import multiprocessing
import multiprocessing.connection
import os
import re
import resource
import signal
import time
from functools import partial
from http import HTTPStatus
from pathlib import Path
from typing import Any

from hypercorn.asyncio.run import worker_serve
from hypercorn.config import Config
from hypercorn.logging import Logger
from hypercorn.utils import check_multiprocess_shutdown_event, wrap_app

from .live.protocol import max_message_chars
from .config import ConfigError, load_settings
from .data_dir import ensure_data_dir, load_or_create_secret_key
from .instance import check_database
from .log_safety import LogSafeFormatter, escaped, log_safe_path, log_safe_text, redacted_query
from .patches import apply_server_patches
from .services import services

log = logging.getLogger(__name__)
DEFAULT_TOML = Path(__file__).resolve().parent.parent / "hypercorn.toml"
_SECRET_ENV = re.compile(r"secret|key|token|pass|redis_url|database_url|dsn|auth|credential", re.IGNORECASE)
HYPERCORN_LOG_FORMAT = "%(asctime)s [%(process)d] [%(levelname)s] %(message)s"  # Hypercorn's own
HYPERCORN_DATE_FORMAT = "[%Y-%m-%d %H:%M:%S %z]"
_SECRET_HEADERS = ("{authorization}i", "{proxy-authorization}i", "{cookie}i", "{set-cookie}o")


class RedactedAtoms(dict):
    """The access log's atoms (the keys of Hypercorn's AccessLogAtoms), each
    worked out only when the log format asks for it, and never carrying a
    share token, credentials or a secret, whatever the format asks for,
    nor a character that is not printable (server/log_safety.py: the same
    redaction and escaping as every other log line).

    Hypercorn's AccessLogAtoms fills in every atom for every request (each
    request and response header and every environment variable), and
    redacting all of them after that made the access log a fifth of a
    worker's CPU per request (docs/benchmarks.md, #7); the default format
    uses seven. Logging formats the line with `%`, which looks up each key
    it names: the ones not worked out yet land in `__missing__`."""

    def __init__(self, request, response, request_time: float) -> None:
        super().__init__(l="-")  # non-empty: logging only passes a mapping on to `%` if it is truthy
        self.request = request
        self.response = response
        self.request_time = request_time

    def __missing__(self, key: str):
        if key.startswith("{"):
            name = key.lower()  # header and environment names, case-insensitive as in Hypercorn
            value = _braced_atom(self, name)
        else:
            name = key
            atom = _ATOMS.get(key)
            value = atom(self) if atom is not None else "-"
        if isinstance(value, str) and key not in _PATH_ATOMS:
            value = "[redacted]" if _is_secret_atom(name) else log_safe_text(value)
        self[key] = value
        return value

    def get(self, key: str, default=None):
        """What the format would print. Only lookups by key work out atoms:
        iterating, `in` or json.dumps see just the ones already asked for."""
        return self[key]


def _braced_atom(atoms: RedactedAtoms, key: str) -> str:
    name, kind = key[1:-2], key[-1]
    if key[-2:-1] != "}":
        return "-"
    if kind == "i":
        return _last_header(atoms.request.get("headers", ()), name)
    if kind == "o":
        return _last_header(atoms.response.get("headers", ()), name) if atoms.response is not None else "-"
    if kind == "e":  # the last one by that name, as AccessLogAtoms keeps it
        matches = [value for env, value in os.environ.items() if env.lower() == name]
        return matches[-1] if matches else "-"
    return "-"


def _last_header(headers, name: str) -> str:
    """A header's last value (AccessLogAtoms keeps the last), or "-"."""
    try:
        wanted = name.encode("latin1")
    except UnicodeEncodeError:  # no header can have that name
        return "-"
    value = "-"
    for header, header_value in headers:
        if header.lower() == wanted:
            value = header_value.decode("latin1")
    return value


def _client(atoms: RedactedAtoms):
    client = atoms.request.get("client")
    if client is None:
        return None
    if len(client) == 2:
        return f"{client[0]}:{client[1]}"
    return client[0] if len(client) == 1 else f"<???{client}???>"


def _method(atoms: RedactedAtoms) -> str:
    return atoms.request["method"] if atoms.request["type"] == "http" else "GET"


def _query(atoms: RedactedAtoms) -> str:
    # Undecoded, as it came; a byte that is not UTF-8 must not stop the line.
    return atoms.request["query_string"].decode("utf-8", "backslashreplace")


def _path(atoms: RedactedAtoms) -> str:
    return log_safe_path(atoms.request["path"])


def _path_with_query(atoms: RedactedAtoms) -> str:
    return log_safe_path(atoms.request["path"], _query(atoms))


def _protocol(atoms: RedactedAtoms) -> str:
    return atoms.request.get("http_version", "ws")


def _status_phrase(atoms: RedactedAtoms) -> str:
    if atoms.response is None:
        return "-"
    try:
        return HTTPStatus(atoms.response["status"]).phrase
    except ValueError:
        return f"<???{atoms.response['status']}???>"


# Atoms made safe where they are worked out (the path is judged before it is
# joined with anything).
_PATH_ATOMS = frozenset({"r", "R", "U", "Uq", "q"})

_ATOMS = {
    "h": _client,
    "t": lambda atoms: time.strftime("[%d/%b/%Y:%H:%M:%S %z]"),
    "r": lambda atoms: f"{escaped(_method(atoms))} {_path(atoms)} {escaped(_protocol(atoms))}",
    "R": lambda atoms: f"{escaped(_method(atoms))} {_path_with_query(atoms)} {escaped(_protocol(atoms))}",
    "s": lambda atoms: str(atoms.response["status"]) if atoms.response is not None else "-",
    "st": _status_phrase,
    "S": lambda atoms: atoms.request["scheme"],
    "m": _method,
    "U": _path,
    "Uq": _path_with_query,
    "q": lambda atoms: escaped(redacted_query(_query(atoms))),
    "H": _protocol,
    "b": lambda atoms: atoms["{content-length}o"],
    "B": lambda atoms: atoms["{content-length}o"],
    "f": lambda atoms: atoms["{referer}i"],
    "a": lambda atoms: atoms["{user-agent}i"],
    "T": lambda atoms: int(atoms.request_time),
    "D": lambda atoms: int(atoms.request_time * 1_000_000),
    "L": lambda atoms: f"{atoms.request_time:.6f}",
    "p": lambda atoms: f"<{os.getpid()}>",
}


class RedactingLogger(Logger):
    """Access log lines never carry share tokens, credentials or secrets,
    whatever access_log_format asks for (RedactedAtoms), and Hypercorn's
    error log goes through the same LogSafeFormatter as ours."""

    def __init__(self, config: Config) -> None:
        super().__init__(config)
        if self.error_logger is not None:
            for handler in self.error_logger.handlers:
                handler.setFormatter(LogSafeFormatter(HYPERCORN_LOG_FORMAT, HYPERCORN_DATE_FORMAT))

    def atoms(self, request, response, request_time):
        return RedactedAtoms(request, response, request_time)


@functools.lru_cache(maxsize=1024)
def _is_secret_atom(key: str) -> bool:
    return key in _SECRET_HEADERS or (
        key.endswith("}e") and _SECRET_ENV.search(key) is not None)


def _quiet_cut_connections(loop: asyncio.AbstractEventLoop, context: dict) -> None:
    """At the end of the graceful timeout Hypercorn cancels the connections
    still open (a client that never answered the close handshake, an upload
    still running). Python 3.11's stream callback then calls exception() on
    the cancelled task and logs a CancelledError traceback for each, as if
    something had crashed; 3.12 checks for cancellation first. Say it in one
    line instead; everything else goes to the default handler."""
    if isinstance(context.get("exception"), asyncio.CancelledError) and \
            "StreamReaderProtocol.connection_made" in context.get("message", ""):
        log.info("a connection still open at the end of the graceful timeout was cut")
        return
    loop.default_exception_handler(context)


def raise_open_file_limit() -> None:
    """Every live socket is a file descriptor; the usual soft limit (1024)
    would cap a worker at about a thousand devices. Raise it to the hard limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError):
            pass


def build_config(bind: list[str] | None, workers: int | None, toml_path: Path | None = None) -> Config:
    path = toml_path or Path(os.environ.get("CLOUDBUFFER_HYPERCORN_CONFIG", DEFAULT_TOML))
    config = Config.from_toml(str(path)) if path.exists() else Config()
    if bind:
        config.bind = bind
    if workers is not None:
        config.workers = workers
    config.logger_class = RedactingLogger
    settings = load_settings()
    if settings.redis_url is None and config.workers > 1:
        raise ConfigError(
            f"{config.workers} workers need CLOUDBUFFER_REDIS_URL: with the in-process broker a change "
            "posted to one worker would never reach sockets held by another. Set CLOUDBUFFER_REDIS_URL "
            "(e.g. redis://127.0.0.1:6379/0) or run one worker."
        )
    # The largest legitimate message is a `set` of MAX_TEXT_BYTES (JSON may
    # escape some characters, hence the factor 2).
    # Hypercorn's cap is only the memory backstop: over it, an uncompressed
    # message makes Hypercorn stop answering instead of closing with 1009, so
    # the app enforces the real limit itself (live.max_message_chars) and
    # this one sits well above it.
    config.websocket_max_message_size = 4 * max_message_chars(settings.max_text_bytes)
    return config


async def _serve(config: Config, sockets: Any, trigger) -> None:
    from . import create_app

    app = create_app()
    apply_server_patches(services(app).settings)
    raise_open_file_limit()
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(_quiet_cut_connections)
    if trigger is None:
        stop = asyncio.Event()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        trigger = stop.wait

    async def shutdown_trigger() -> None:
        await trigger()
        services(app).shutting_down.set()
        await asyncio.sleep(0.2)  # let open sockets send their 1001 close frames

    # worker_serve takes Hypercorn's app wrapper (it calls app(scope, receive,
    # send, sync_spawn, call_soon)), not the bare ASGI app. It wraps
    # app.asgi_app (the live sockets' middleware around Quart) rather than
    # the app, whose __call__ only calls asgi_app: one coroutine frame less
    # that every open socket would keep for its lifetime (#3).
    await worker_serve(wrap_app(app.asgi_app, config.wsgi_max_body_size, "asgi"), config,
                       sockets=sockets, shutdown_trigger=shutdown_trigger)


def _configure_logging() -> None:
    """Our own modules log to stderr like Hypercorn does; Hypercorn's loggers
    keep their own handlers (routing them through the root too would print
    every line twice)."""
    handler = logging.StreamHandler()
    handler.setFormatter(LogSafeFormatter("[%(asctime)s] [%(process)d] [%(levelname)s] %(name)s: %(message)s"))
    for name in ("server", "redis"):
        logger = logging.getLogger(name)
        if not logger.handlers:
            logger.addHandler(handler)
        logger.setLevel(logging.INFO if name == "server" else logging.WARNING)
        logger.propagate = False


def _worker(config: Config, sockets: Any = None, shutdown_event: Any = None) -> None:
    _configure_logging()
    trigger = None
    if shutdown_event is not None:
        trigger = partial(check_multiprocess_shutdown_event, shutdown_event, asyncio.sleep)
    asyncio.run(_serve(config, sockets, trigger))


def listen(config: Config):
    """Bind every address before anything else starts. Left to Hypercorn,
    the bind came after the app's start-up: an address in use was a
    traceback, then a wait of up to a minute for what had started to stop."""
    try:
        return config.create_sockets()
    except OSError as error:
        raise SystemExit(f"error: cannot listen on {_failing_bind(config)}: {error.strerror or error}; "
                         "choose another address with --bind HOST:PORT (or make run BIND=HOST:PORT)") from None


def _failing_bind(config: Config) -> str:
    """Which of the configured addresses cannot be bound (tried one by one)."""
    for bind in config.bind:
        probe = copy.copy(config)
        probe.bind = [bind]
        try:
            sockets = probe.create_sockets()
        except OSError:
            return bind
        for sock in [*sockets.secure_sockets, *sockets.insecure_sockets, *sockets.quic_sockets]:
            sock.close()
    return ", ".join(config.bind)


def run(config: Config) -> int:
    """Serve until SIGINT/SIGTERM. One worker runs in this process; more run
    as spawned processes sharing the listening sockets, restarted if one dies."""
    _configure_logging()
    sockets = listen(config)
    # Here, before any worker starts, so that tightening an old data dir is
    # said once (each worker's create_app then finds nothing left to do),
    # and a database this host cannot use, or whose other hosts have another
    # secret key, stops it with one line before it listens to anyone.
    settings = load_settings()
    ensure_data_dir(settings.data_dir)
    asyncio.run(check_database(settings, settings.secret_key or load_or_create_secret_key(settings.data_dir)))
    if config.workers <= 1:
        _worker(config, sockets)
        return 0
    ctx = multiprocessing.get_context("spawn")
    shutdown_event = ctx.Event()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # children inherit: the parent decides shutdown

    def spawn():
        process = ctx.Process(target=_worker, kwargs={"config": config, "sockets": sockets,
                                                      "shutdown_event": shutdown_event})
        process.daemon = True
        process.start()
        return process

    processes = [spawn() for _ in range(config.workers)]
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: shutdown_event.set())
    restarts: list[float] = []
    exitcode = 0
    while not shutdown_event.is_set():
        multiprocessing.connection.wait([p.sentinel for p in processes], timeout=0.5)
        for index, process in enumerate(processes):
            if process.is_alive() or shutdown_event.is_set():
                continue
            now = time.monotonic()
            restarts = [t for t in restarts if now - t < 30] + [now]
            if len(restarts) > 5:
                log.error("workers keep dying; giving up")
                shutdown_event.set()
                exitcode = 1
                break
            log.warning("worker %s exited with %s; restarting", process.pid, process.exitcode)
            processes[index] = spawn()
    for process in processes:
        process.join(config.graceful_timeout + 5)
        if process.is_alive():
            process.terminate()
            process.join()
    for sock in [*sockets.secure_sockets, *sockets.insecure_sockets]:
        sock.close()
    return exitcode
