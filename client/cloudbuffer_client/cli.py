"""The one `cloudbuffer` command: the client's commands here, and `serve` and
`user` handed to the server when it is installed beside the client."""
from __future__ import annotations

import argparse
import importlib
import sys

from .errors import USAGE, ClientError

SERVER_COMMANDS = ("serve", "user")

# command -> (module, function, help); modules are imported only when used,
# so `cloudbuffer paste` does not load websockets or qrcode.
COMMANDS = {
    "login": ("account", "cmd_login", "log in to a server and keep a token for this computer"),
    "logout": ("account", "cmd_logout", "revoke this computer's token and forget it"),
    "copy": ("transfer", "cmd_copy", "put stdin, or files, into the buffer"),
    "paste": ("transfer", "cmd_paste", "print the buffer, or save its file"),
    "history": ("transfer", "cmd_history", "list the buffer's history, newest first"),
    "get": ("transfer", "cmd_get", "fetch item N of the history (1 is the newest)"),
    "watch": ("watch", "cmd_watch", "print one line per change of the buffer, live"),
    "share": ("share", "cmd_share", "upload a file and print its share link and QR code"),
    "agent": ("agent", "cmd_agent", "keep this computer's clipboard and the buffer in step"),
    "e2e": ("e2e", "cmd_e2e", "end-to-end encryption: enable, status, recover"),
    "pair": ("pair", "cmd_pair", "join an account from this terminal, or approve another device (with the key)"),
}


def _add_save_options(parser: argparse.ArgumentParser) -> None:
    where = parser.add_mutually_exclusive_group()
    where.add_argument("-O", "--remote-name", action="store_true",
                       help="save a file under its own name in the current directory")
    where.add_argument("-o", "--output", metavar="PATH", help="save it at PATH (a directory: under its own name)")
    parser.add_argument("--force", action="store_true", help="replace an existing file")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cloudbuffer", description="CloudBuffer: copy on one device, paste on all.",
                                     epilog="exit codes: 0 ok, 1 empty or nothing found, 2 usage, "
                                            "3 not logged in or refused, 4 cannot reach the server")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sub = {name: commands.add_parser(name, help=help_text) for name, (_, _, help_text) in COMMANDS.items()}
    for name in SERVER_COMMANDS:
        commands.add_parser(name, help="(server) " + ("run the server" if name == "serve" else "manage accounts"),
                            add_help=False)

    sub["login"].add_argument("url", nargs="?", metavar="URL", help="the server, e.g. https://buffer.example.com")
    sub["login"].add_argument("--username", "-u", help="the account (asked for otherwise)")
    sub["login"].add_argument("--token-stdin", action="store_true", help="read an existing API token from stdin")

    sub["copy"].add_argument("files", nargs="*", metavar="FILE", help="files to send (the last one becomes the buffer)")
    sub["copy"].add_argument("--name", help="the file name for data from stdin (makes it a file)")

    _add_save_options(sub["paste"])
    sub["get"].add_argument("number", type=int, metavar="N", help="1 is the newest item")
    _add_save_options(sub["get"])
    sub["history"].add_argument("--json", action="store_true", help="the items as JSON")
    sub["history"].add_argument("--search", metavar="TEXT",
                                help="only the items whose text or file name holds TEXT, in any case (on an "
                                     "encrypted account the search runs here, over what this computer decrypts)")

    sub["watch"].add_argument("--json", action="store_true", help="one JSON object per line")
    sub["watch"].add_argument("--exec", metavar="CMD", dest="exec_command",
                              help="run CMD (split like a shell would, not run by one) with the item on stdin")

    sub["share"].add_argument("file", metavar="FILE")
    sub["share"].add_argument("--expires", metavar="DURATION",
                              help="how long the link lives, e.g. 90s, 10m, 1h, 2d (at most the server's limit)")
    sub["share"].add_argument("--no-qr", action="store_true", help="print only the link")
    limit = sub["share"].add_mutually_exclusive_group()
    limit.add_argument("--max-downloads", type=int, metavar="N", help="the link works for N downloads, then it is gone")
    limit.add_argument("--burn", action="store_true", help="burn after reading: one download")
    sub["share"].add_argument("--password-stdin", action="store_true",
                              help="the link asks for a password, read from the first line of stdin")

    sub["agent"].add_argument("--print-service", action="store_true", help="print a systemd user unit and exit")
    sub["agent"].add_argument("--interval", type=float, default=0.3, metavar="SECONDS",
                              help="how often to look at the clipboard (default 0.3)")
    e2e = sub["e2e"].add_subparsers(dest="e2e_command", required=True, metavar="ACTION")
    enable = e2e.add_parser("enable", help="encrypt this account's buffer (deletes its history on the server)")
    enable.add_argument("--yes", action="store_true", help="do not ask before deleting the history")
    e2e.add_parser("status", help="the account's key state and this computer's keys")
    e2e.add_parser("recover", help="enroll this computer with the recovery key (from the terminal or stdin)")

    sub["pair"].add_argument("code", nargs="?", metavar="CODE-OR-URL",
                             help="approve the device showing this code or link (from an enrolled computer); "
                                  "without it, this terminal shows a code to join an account")
    sub["pair"].add_argument("--server", metavar="URL", help="the server to join (default: the saved one)")
    return parser


def _run_server_command(argv: list[str]) -> int:
    try:
        server_cli = importlib.import_module("server.cli")
    except ImportError:
        print(f"cloudbuffer: `{argv[0]}` is part of the CloudBuffer server, which is not installed here "
              "(this is the client only); install the server from the repository with `pip install .`",
              file=sys.stderr)
        return USAGE
    return server_cli.main(argv)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] in SERVER_COMMANDS:
        return _run_server_command(argv)
    args = build_parser().parse_args(argv)
    module_name, function_name, _ = COMMANDS[args.command]
    try:
        module = importlib.import_module(f".{module_name}", __package__)
        return getattr(module, function_name)(args)
    except ClientError as error:
        print(f"cloudbuffer: {error.message}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (`cloudbuffer paste | head`): not an error.
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
