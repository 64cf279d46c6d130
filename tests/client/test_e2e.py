"""`cloudbuffer e2e enable | status | recover` and the encrypted buffer
through the real CLI against a real server: what the server holds is
ciphertext, the keys file is private, and a plaintext write is refused."""
from __future__ import annotations

import json
import os
import stat

import httpx

from cloudbuffer_client import keys

from tests.client.conftest import buffer_of, items_of, post_text, token_of
from tests.live_server import wait_for
from tests.conftest import PASSWORD


def enable(cli) -> str:
    """`cloudbuffer e2e enable --yes`; returns the recovery key it printed."""
    result = cli.run("e2e", "enable", "--yes", input=PASSWORD + "\n")
    assert result.returncode == 0, result.stderr
    recovery = result.stdout.decode().strip()
    assert "RECOVERY KEY" in result.stderr.decode()
    return recovery


def keystore_of(cli) -> dict:
    return json.loads((cli.home / "cloudbuffer" / "e2e.json").read_text())


def test_enable_deletes_the_history_and_keeps_keys_private(logged_in, server):
    token = token_of(logged_in)
    post_text(server, token, "plaintext from before")
    recovery = enable(logged_in)
    assert len(recovery.split("-")) == 13 and all(len(group) == 4 for group in recovery.split("-"))
    path = logged_in.home / "cloudbuffer" / "e2e.json"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert keystore_of(logged_in)["epochs"].keys() == {"1"}
    assert items_of(server, token) == []
    state = httpx.get(server.base_url + "/account/e2e", headers={"Authorization": f"Bearer {token}"}).json()
    assert state["enabled"] and state["epoch"] == 1
    own_key = keys.load_pkcs8(keys.unb64u(keystore_of(logged_in)["device_key"]))
    assert [device["public_key"] for device in state["devices"]] == [keys.b64u(keys.spki(own_key))]
    status = logged_in.run("e2e", "status")
    assert status.returncode == 0, status.stderr
    out = status.stdout.decode()
    assert "end-to-end encrypted, epoch 1" in out and "attested" in out and "NOT ATTESTED" not in out
    again = logged_in.run("e2e", "enable", "--yes", input=PASSWORD + "\n")
    assert again.returncode == 3 and b"encrypted already" in again.stderr


def test_enable_asks_before_deleting_and_needs_the_password(logged_in, server):
    token = token_of(logged_in)
    post_text(server, token, "kept")
    refused = logged_in.run("e2e", "enable", input=PASSWORD + "\nno\n")
    assert refused.returncode == 3 and b"nothing changed" in refused.stderr
    wrong = logged_in.run("e2e", "enable", "--yes", input="not the password\n")
    assert wrong.returncode == 3 and b"wrong password" in wrong.stderr
    assert not (logged_in.home / "cloudbuffer" / "e2e.json").exists()
    assert [item["type"] for item in items_of(server, token)] == ["text"]
    yes = logged_in.run("e2e", "enable", input=PASSWORD + "\nyes\n")
    assert yes.returncode == 0, yes.stderr


def test_copy_and_paste_text_encrypted(logged_in, server):
    enable(logged_in)
    token = token_of(logged_in)
    secret = "a distinctive secret: mauve-otter-1729"
    assert logged_in.run("copy", input=secret).returncode == 0
    raw = buffer_of(server, token)
    assert raw.headers["X-Encrypted"] == "aes128gcm" and secret.encode() not in raw.content
    pasted = logged_in.run("paste")
    assert pasted.returncode == 0, pasted.stderr
    assert pasted.stdout.decode() == secret
    history = logged_in.run("history", "--json")
    [item] = json.loads(history.stdout)
    assert item["type"] == "text" and item["size"] == len(secret) and item["encrypted"] == "aes128gcm"


def test_history_search_runs_here_over_what_this_computer_decrypts(logged_in, server):
    """The server cannot search ciphertext (409 for `?q=`): `--search` finds
    texts and file names by decrypting them here, and the history numbers it
    shows are the ones `cloudbuffer get N` takes."""
    enable(logged_in)
    assert logged_in.run("copy", input="the Invoice for March").returncode == 0
    (logged_in.cwd / "invoice-april.pdf").write_bytes(b"%PDF not really")
    assert logged_in.run("copy", "invoice-april.pdf").returncode == 0
    assert logged_in.run("copy", input="nothing to see").returncode == 0
    found = logged_in.run("history", "--search", "INVOICE")
    assert found.returncode == 0, found.stderr
    lines = found.stdout.decode().splitlines()
    assert [line.split()[0] for line in lines] == ["2", "3"] and "invoice-april.pdf" in lines[0]
    assert logged_in.run("get", "3").stdout == b"the Invoice for March"
    listed = json.loads(logged_in.run("history", "--json", "--search", "march").stdout)
    assert [item["type"] for item in listed] == ["text"]
    none = logged_in.run("history", "--search", "zebra")
    assert none.returncode == 1 and b"nothing in the history holds that" in none.stderr
    assert b"INVOICE" not in server.log_path.read_bytes() and b"zebra" not in server.log_path.read_bytes()


def test_files_round_trip_encrypted_with_their_names(logged_in, server):
    enable(logged_in)
    body = os.urandom(3 * 65519 + 11)
    (logged_in.cwd / "photo of me.bin").write_bytes(body)
    assert logged_in.run("copy", "photo of me.bin").returncode == 0
    items = items_of(server, token_of(logged_in))
    assert "photo of me" not in json.dumps(items)
    listing = logged_in.run("history")
    assert "photo of me.bin" in listing.stdout.decode()
    (logged_in.cwd / "out").mkdir()
    saved = logged_in.run("paste", "-o", "out")
    assert saved.returncode == 0, saved.stderr
    assert (logged_in.cwd / "out" / "photo of me.bin").read_bytes() == body
    # stdin that is not text becomes a file whose size the details carry
    assert logged_in.run("copy", "--name", "blob.dat", input=body[:1000]).returncode == 0
    assert logged_in.run("get", "1").stdout == body[:1000]
    assert json.loads(logged_in.run("history", "--json").stdout)[0]["size"] == 1000


def test_a_plaintext_write_to_an_encrypted_account_says_what_to_do(logged_in, server, cli_factory):
    enable(logged_in)
    assert logged_in.run("copy", input="sealed").returncode == 0
    other = cli_factory("other")
    assert other.run("login", server.base_url, "-u", "alice", input=PASSWORD + "\n").returncode == 0
    result = other.run("copy", input="plain")
    assert result.returncode == 3
    message = result.stderr.decode()
    assert "end-to-end encrypted" in message and "cloudbuffer pair" in message
    pasted = other.run("paste")
    assert pasted.returncode == 3 and "cloudbuffer pair" in pasted.stderr.decode()


class RedisWire:
    """Everything the server says to its Redis, as MONITOR reports it."""

    def __init__(self, port: int) -> None:
        import socket
        import threading

        self.data = bytearray()
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.sock.sendall(b"MONITOR\r\n")
        assert self.sock.recv(5) == b"+OK\r\n"
        self.sock.settimeout(None)
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        while chunk := self.sock.recv(65536):
            self.data += chunk

    def close(self) -> bytes:
        import socket

        self.sock.shutdown(socket.SHUT_RDWR)
        self.thread.join(timeout=10)
        self.sock.close()
        return bytes(self.data)


def everything_stored(data_dir) -> dict[str, bytes]:
    """Every file the server wrote: the database and its -wal/-shm, the
    files dir, the server's log."""
    return {str(path): path.read_bytes() for path in sorted(data_dir.rglob("*")) if path.is_file()}


def test_no_plaintext_reaches_the_server_side(live_server_factory, redis_server, cli, cli_factory, tmp_path):
    """Driven by the real CLI with a live watcher: the distinctive texts,
    file names and bodies of an encrypted account appear nowhere in the
    data dir (database, WAL, files, logs) nor on the Redis wire, while a
    plaintext account's control strings do, which shows the search sees."""
    from tests.client.conftest import Background, register
    from tests.live_server import cloudbuffer_executable
    import subprocess

    server = live_server_factory(tmp_path / "data", redis_url=redis_server.url)
    register(server, "alice")
    register(server, "bob")
    wire = RedisWire(redis_server.port)
    assert cli.run("login", server.base_url, "-u", "alice", input=PASSWORD + "\n").returncode == 0
    enable(cli)
    watcher = Background(subprocess.Popen([cloudbuffer_executable(), "watch", "--json"], cwd=cli.cwd, env=cli.env,
                                          stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE))
    try:
        watcher.wait_for_stderr("watching")
        secrets_ = {
            "text": "Zanzibar-plaintext-TEXT-5f1e9",
            "name": "Zanzibar-plaintext-NAME-77c2.txt",
            "body": "Zanzibar-plaintext-BODY-a93d",
            "share name": "Zanzibar-plaintext-SHARE-4b0.pdf",
            "share body": "Zanzibar-plaintext-SHAREBODY-e6",
            "stdin name": "Zanzibar-plaintext-STDIN-19.bin",
        }
        assert cli.run("copy", input=secrets_["text"]).returncode == 0
        assert wait_for(lambda: any(secrets_["text"] in line for line in watcher.stdout))
        (cli.cwd / secrets_["name"]).write_text(secrets_["body"] * 5000)
        assert cli.run("copy", secrets_["name"]).returncode == 0
        (cli.cwd / secrets_["share name"]).write_text(secrets_["share body"] * 100)
        shared = cli.run("share", secrets_["share name"], "--no-qr")
        assert shared.returncode == 0, shared.stderr
        assert "#k=" in shared.stdout.decode()
        assert cli.run("copy", "--name", secrets_["stdin name"], input=b"\xff" + secrets_["body"].encode()).returncode == 0
        assert cli.run("paste", "-O").returncode == 0
        assert cli.run("history").returncode == 0
        assert wait_for(lambda: sum(secrets_["name"] in line for line in watcher.stdout) >= 1)

        bob = cli_factory("bob")
        assert bob.run("login", server.base_url, "-u", "bob", input=PASSWORD + "\n").returncode == 0
        controls = {"text": "Control-plaintext-TEXT-0d4", "body": "Control-plaintext-BODY-88e"}
        assert bob.run("copy", input=controls["text"]).returncode == 0
        (bob.cwd / "control.txt").write_text(controls["body"] * 5000)
        assert bob.run("copy", "control.txt").returncode == 0
        server.wait_for_log("POST /file/buffer")
    finally:
        watcher.stop()
    redis_bytes = wire.close()
    server.stop()  # the log flushed, the WAL left as it is
    stored = everything_stored(server.data_dir)
    assert any(name.endswith("-wal") for name in stored) or any(name.endswith(".sqlite3") for name in stored)
    assert b"PUBLISH" in redis_bytes.upper()

    for what, secret in secrets_.items():
        needle = secret.encode()
        found = [name for name, data in stored.items() if needle in data]
        assert not found, f"the {what} is in {found}"
        assert needle not in redis_bytes, f"the {what} went over the Redis wire"
    # The same search finds a plaintext account's items, in the database or
    # the files dir, and its live text on the wire.
    assert any(controls["text"].encode() in data for data in stored.values())
    assert any(controls["body"].encode() in data for name, data in stored.items() if "/files/" in name)
    assert controls["text"].encode() in redis_bytes


def test_recovery_enrolls_a_new_computer_with_the_recovery_key(logged_in, server, cli_factory):
    recovery = enable(logged_in)
    assert logged_in.run("copy", input="kept through the loss of every device").returncode == 0
    fresh = cli_factory("fresh")
    assert fresh.run("login", server.base_url, "-u", "alice", input=PASSWORD + "\n").returncode == 0
    wrong = fresh.run("e2e", "recover", input="0" * 52 + "\n")
    assert wrong.returncode == 3 and b"recovery key" in wrong.stderr
    typed = recovery.lower().replace("-", " ")  # as a person might type it from paper
    recovered = fresh.run("e2e", "recover", input=typed + "\n")
    assert recovered.returncode == 0, recovered.stderr
    assert fresh.run("paste").stdout == b"kept through the loss of every device"
    assert fresh.run("copy", input="and writes again").returncode == 0
    assert logged_in.run("paste").stdout == b"and writes again"


def test_a_mistyped_recovery_key_is_refused_before_the_server(logged_in, server):
    enable(logged_in)
    result = logged_in.run("e2e", "recover", input="ABCD-EFGH\n")
    assert result.returncode == 2 and b"not a recovery key" in result.stderr


def test_an_old_item_posted_again_is_marked_replayed(server, cli, spawn):
    """The server cannot read items but could show an old one as new: the
    id inside its key blob gives it away (docs/e2e.md)."""
    from tests import e2e_keys
    from tests.client.test_pair import browser, pair_with_browser

    http, account = browser(server)
    pair_with_browser(server, http, account, cli, spawn)
    item = account.item(b"pay 10 euros to Bob")
    for _ in range(2):  # the same three blobs twice: what a replaying server would serve
        assert http.post("/file/buffer", content=item.body, headers=e2e_keys.headers(item)).status_code == 201
    fresh = account.item(b"a new one")
    assert http.post("/file/buffer", content=fresh.body, headers=e2e_keys.headers(fresh)).status_code == 201
    listing = json.loads(cli.run("history", "--json").stdout)
    assert [entry.get("replayed", False) for entry in listing] == [False, True, False]  # newest first
    assert "REPLAYED" in cli.run("history").stdout.decode()
