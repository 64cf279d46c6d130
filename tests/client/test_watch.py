"""`cloudbuffer watch`: one line per change, --json, --exec, reconnecting."""
from __future__ import annotations

import json

from tests.client.conftest import post_text, token_of
from tests.live_server import wait_for


def test_watch_prints_one_line_per_change_and_not_what_was_already_there(logged_in, server, background):
    token = token_of(logged_in)
    post_text(server, token, "before watching")
    watch = background("watch")
    watch.wait_for_stderr("watching")
    post_text(server, token, "first change")
    post_text(server, token, "second\nchange")
    assert wait_for(lambda: len(watch.stdout) >= 2)
    assert "first change" in watch.stdout[0]
    assert watch.stdout[1].endswith("second change")  # one line, whatever the text
    assert not any("before watching" in line for line in watch.stdout)


def test_watch_json_and_exec_get_the_item(logged_in, server, background, tmp_path):
    token = token_of(logged_in)
    out = tmp_path / "exec-out"
    watch = background("watch", "--json", "--exec", f"sh -c 'cat >> {out}; echo \" [$CLOUDBUFFER_KIND]\" >> {out}'")
    watch.wait_for_stderr("watching")
    post_text(server, token, "piped to a command")
    (logged_in.cwd / "data.bin").write_bytes(b"\x00\x01binary" * 1000)
    assert logged_in.run("copy", "data.bin").returncode == 0
    assert wait_for(lambda: len(watch.stdout) >= 2)
    events = [json.loads(line) for line in watch.stdout[:2]]
    assert [event["kind"] for event in events] == ["text", "file"]
    assert events[1]["filename"] == "data.bin"
    expected = b"piped to a command [text]\n" + b"\x00\x01binary" * 1000 + b" [file]\n"
    assert wait_for(lambda: out.exists() and out.read_bytes() == expected), out.read_bytes()


def test_watch_reconnects_after_a_server_restart_and_resyncs_to_the_latest(logged_in, server, background,
                                                                           live_server_factory):
    token = token_of(logged_in)
    watch = background("watch")
    watch.wait_for_stderr("watching")
    server.stop()
    watch.wait_for_stderr("reconnecting")
    # Changes made while the watcher is away, through another server on the
    # same data (another host): only the latest may show once it is back.
    other = live_server_factory(server.data_dir)
    post_text(other, token, "missed one")
    post_text(other, token, "the latest")
    other.stop()
    server.start()
    watch.wait_for_stderr("connected to", timeout=90)
    assert wait_for(lambda: any("the latest" in line for line in watch.stdout), timeout=30)
    post_text(server, token, "after the restart")
    assert wait_for(lambda: any("after the restart" in line for line in watch.stdout))
    assert not any("missed one" in line for line in watch.stdout)
    assert sum("the latest" in line for line in watch.stdout) == 1


def test_watch_exits_3_when_its_token_is_revoked(logged_in, server, background):
    watch = background("watch")
    watch.wait_for_stderr("watching")
    assert logged_in.run("logout").returncode == 0
    assert watch.process.wait(timeout=30) == 3
    assert wait_for(lambda: any("cloudbuffer login" in line for line in watch.stderr))
