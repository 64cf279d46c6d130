"""`cloudbuffer`: serve the app and manage accounts from the shell."""
from __future__ import annotations

import argparse
import asyncio
import getpass
import sys

from .config import ConfigError, load_settings
from .data_dir import ensure_data_dir


def _read_password(args: argparse.Namespace) -> str:
    if args.password_stdin or not sys.stdin.isatty():
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = getpass.getpass("Password: ")
        if getpass.getpass("Repeat password: ") != password:
            raise SystemExit("error: the passwords do not match")
    return password


async def _with_db(action):
    from .db import database_for

    settings = load_settings()
    ensure_data_dir(settings.data_dir)
    db = database_for(settings)
    await db.open()
    try:
        return await action(db, settings)
    finally:
        await db.close()


def cmd_serve(args: argparse.Namespace) -> int:
    from .serving import build_config, run

    config = build_config(args.bind, args.workers)
    return run(config)


def cmd_user_add(args: argparse.Namespace) -> int:
    from .auth import hash_password
    from .credentials import check_password, check_username
    from .problems import Problem
    from .models import users as users_model

    try:
        username = check_username(args.username)
        password = check_password(_read_password(args), username)
    except Problem as error:
        raise SystemExit(f"error: {error.message}") from None

    async def add(db, settings):
        password_hash = await hash_password(password)
        return await db.write(users_model.insert_user, username, password_hash)

    if asyncio.run(_with_db(add)) is None:
        raise SystemExit(f"error: the username {username!r} is taken")
    print(f"created user {username}")
    return 0


def cmd_user_passwd(args: argparse.Namespace) -> int:
    from .auth import hash_password
    from .credentials import check_password
    from .problems import Problem
    from .models import sessions as sessions_model
    from .models import users as users_model

    try:
        password = check_password(_read_password(args), args.username)
    except Problem as error:
        raise SystemExit(f"error: {error.message}") from None

    async def passwd(db, settings):
        user = await db.read(users_model.select_user_by_username, args.username)
        if user is None:
            return None
        password_hash = await hash_password(password)
        ended = await db.write(sessions_model.change_password, user.id, password_hash, None, args.keep_tokens)
        await _announce_revoked(settings, user.id, ended)
        return ended

    ended = asyncio.run(_with_db(passwd))
    if ended is None:
        raise SystemExit(f"error: no user named {args.username!r}")
    sessions = sum(key.startswith("s") for key in ended)
    tokens = "API tokens kept" if args.keep_tokens else f"{len(ended) - sessions} API token(s) revoked"
    print(f"password changed for {args.username}; {sessions} session(s) ended, {tokens}")
    return 0


async def _announce_revoked(settings, user_id: int, device_keys: list[str]) -> None:
    """Close the live sockets of ended sessions and tokens on running
    servers (with Redis; a single in-process server re-checks them on its own)."""
    if not settings.redis_url or not device_keys:
        return
    import json

    from .broker import create_broker

    broker = create_broker(settings.redis_url)
    await broker.start()
    try:
        # Every worker forgets the user's remembered credentials (server/principal_cache.py) ...
        await broker.publish_account_change(user_id)
        # ... and closes the ended devices' sockets.
        await broker.publish(user_id, json.dumps({"type": "_revoke", "devices": device_keys}, separators=(",", ":")))
    finally:
        await broker.stop()


def cmd_user_del(args: argparse.Namespace) -> int:
    from .models import files as files_model
    from .models import sessions as sessions_model
    from .models import users as users_model
    from .storage import storage_for

    def remove(conn, user_id: int) -> list[str]:
        names = files_model.select_user_stored_names(conn, user_id)  # the rows cascade, the files are unlinked after
        users_model.delete_user(conn, user_id)
        return names

    async def delete(db, settings):
        user = await db.read(users_model.select_user_by_username, args.username)
        if user is None:
            return False
        devices = [f"s{session.id}" for session in await db.read(sessions_model.select_sessions, user.id)]
        devices += [f"t{token.id}" for token in await db.read(sessions_model.select_api_tokens, user.id)]
        names = await db.write(remove, user.id)
        storage = storage_for(settings)
        await storage.start()
        try:
            await storage.remove(names)
        finally:
            await storage.stop()
        # Running servers refuse its credentials at once and close its sockets.
        await _announce_revoked(settings, user.id, devices)
        return True

    if not asyncio.run(_with_db(delete)):
        raise SystemExit(f"error: no user named {args.username!r}")
    print(f"deleted user {args.username} and their files")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cloudbuffer", description="CloudBuffer: copy on one device, paste on all.")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the server with Hypercorn (settings in hypercorn.toml)")
    serve.add_argument("--bind", action="append", metavar="HOST:PORT", help="address to listen on (repeatable)")
    serve.add_argument("--workers", type=int, metavar="N", help="worker processes (more than 1 needs Redis)")
    serve.set_defaults(func=cmd_serve)

    user = commands.add_parser("user", help="manage accounts").add_subparsers(dest="user_command", required=True)
    for name, func, help_text in (
        ("add", cmd_user_add, "create an account"),
        ("passwd", cmd_user_passwd, "set a new password and end the user's sessions and API tokens"),
        ("del", cmd_user_del, "delete an account with all its items and files"),
    ):
        sub = user.add_parser(name, help=help_text)
        sub.add_argument("username")
        if name != "del":
            sub.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
        if name == "passwd":
            sub.add_argument("--keep-tokens", action="store_true",
                             help="keep the user's API tokens working (by default they are revoked too)")
        sub.set_defaults(func=func)
    return parser


SERVER_COMMANDS = ("serve", "user")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] not in SERVER_COMMANDS:
        # The client (client/, a distribution of its own) answers the other
        # commands of the one `cloudbuffer` command when it is installed.
        try:
            from cloudbuffer_client.cli import main as client_main
        except ImportError:
            pass
        else:
            return client_main(argv)
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
