"""`cloudbuffer login` / `logout`, the saved config and its overrides."""
from __future__ import annotations

import stat

import httpx

from tests.client.conftest import buffer_of, token_of
from tests.conftest import PASSWORD


def test_login_saves_a_token_named_after_this_host_in_a_0600_file(logged_in, server):
    mode = stat.S_IMODE(logged_in.config_file.stat().st_mode)
    assert mode == 0o600
    assert stat.S_IMODE(logged_in.config_file.parent.stat().st_mode) == 0o700
    token = token_of(logged_in)
    profile = httpx.get(server.base_url + "/account/profile", headers={"Authorization": f"Bearer {token}"}).json()
    assert profile["device"]["kind"] == "token"
    assert profile["device"]["name"].startswith("cloudbuffer on ")
    # The cookie session used to make the token was ended: only the one
    # the registration opened remains.
    assert len(profile["devices"]) == 1


def test_login_with_a_wrong_password_is_refused_and_saves_nothing(cli, server):
    result = cli.run("login", server.base_url, "-u", "alice", input="not the password\n")
    assert result.returncode == 3
    assert b"wrong username or password" in result.stderr
    assert not cli.config_file.exists()


def test_login_token_stdin_keeps_an_existing_token(cli, server):
    with httpx.Client(base_url=server.base_url) as http:
        http.post("/account/login", json={"username": "alice", "password": PASSWORD})
        token = http.post("/account/tokens", json={"name": "ci", "password": PASSWORD}).json()["token"]
    assert cli.run("login", server.base_url, "--token-stdin", input=token + "\n").returncode == 0
    assert token_of(cli) == token
    assert cli.run("copy", input="via a given token").returncode == 0
    assert buffer_of(server, token).text == "via a given token"


def test_logout_revokes_the_token_and_forgets_it(logged_in, server):
    token = token_of(logged_in)
    result = logged_in.run("logout")
    assert result.returncode == 0, result.stderr
    assert not logged_in.config_file.exists()
    assert buffer_of(server, token).status_code == 401
    again = logged_in.run("paste")
    assert again.returncode == 3
    assert b"cloudbuffer login" in again.stderr


def test_environment_overrides_the_saved_login(logged_in, server, live_server_factory):
    other = live_server_factory()
    from tests.client.conftest import register

    register(other, "bob")
    with httpx.Client(base_url=other.base_url) as http:
        http.post("/account/login", json={"username": "bob", "password": PASSWORD})
        bob_token = http.post("/account/tokens", json={"name": "ci", "password": PASSWORD}).json()["token"]
    env = {"CLOUDBUFFER_URL": other.base_url, "CLOUDBUFFER_TOKEN": bob_token}
    assert logged_in.run("copy", input="to bob", env=env).returncode == 0
    assert buffer_of(other, bob_token).text == "to bob"
    assert buffer_of(server, token_of(logged_in)).status_code == 204


def test_exit_codes_for_no_login_a_revoked_token_and_no_server(cli, server):
    result = cli.run("paste")
    assert (result.returncode, result.stdout) == (3, b"")
    assert result.stderr.count(b"\n") == 1 and b"cloudbuffer login" in result.stderr

    revoked = cli.run("paste", env={"CLOUDBUFFER_URL": server.base_url, "CLOUDBUFFER_TOKEN": "cb_not_a_token"})
    assert revoked.returncode == 3

    from tests.live_server import free_port

    nowhere = cli.run("paste", env={"CLOUDBUFFER_URL": f"http://127.0.0.1:{free_port()}", "CLOUDBUFFER_TOKEN": "x"})
    assert nowhere.returncode == 4
    assert b"cannot reach" in nowhere.stderr and nowhere.stderr.count(b"\n") == 1


def test_usage_errors_exit_2(cli):
    assert cli.run("paste", "--bogus").returncode == 2
    assert cli.run("get", "not-a-number").returncode == 2
    assert cli.run().returncode == 2


def test_logout_of_a_token_revoked_elsewhere_still_forgets_it(logged_in, server):
    token = token_of(logged_in)
    with httpx.Client(base_url=server.base_url, headers={"Authorization": f"Bearer {token}"}) as http:
        token_id = http.get("/account/profile").json()["device"]["id"]
        assert http.delete(f"/account/tokens/{token_id}").status_code == 200
    result = logged_in.run("logout")
    assert result.returncode == 0, result.stderr
    assert not logged_in.config_file.exists()
