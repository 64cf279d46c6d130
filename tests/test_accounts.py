"""The account service without HTTP: each refusal is its domain problem
(errors.py gives the status; tests/blueprints/test_account.py the answers)."""
from __future__ import annotations

import pytest

from server import accounts
from server.auth import Principal
from server.errors import PROBLEM_STATUSES, status_of
from server.problems import Conflict, InvalidCredentials, InvalidInput, NotFound, Problem, WrongPassword
from tests.conftest import PASSWORD


@pytest.fixture
async def context(app):
    async with app.app_context():
        yield


def _principal(user, device_kind="token", device_id=1) -> Principal:
    return Principal(user_id=user.id, username=user.username, device_kind=device_kind, device_id=device_id,
                     device_name="test")


async def test_register_then_authenticate(context):
    user = await accounts.register("alice", PASSWORD)
    assert (await accounts.authenticate("alice", PASSWORD)).id == user.id


async def test_a_taken_username_is_a_conflict(context):
    await accounts.register("alice", PASSWORD)
    with pytest.raises(Conflict) as caught:
        await accounts.register("alice", PASSWORD + " again")
    assert caught.value.code == "username_taken" and status_of(caught.value) == 409


async def test_a_password_built_on_the_username_is_invalid_input(context):
    with pytest.raises(InvalidInput) as caught:
        await accounts.register("mallorie", "Mallorie2024!")
    assert caught.value.code == "invalid_password" and "username" in caught.value.message


@pytest.mark.parametrize("username, password", [("alice", "not the password"), ("nobody", PASSWORD)])
async def test_wrong_credentials_match_no_account(context, username, password):
    await accounts.register("alice", PASSWORD)
    with pytest.raises(InvalidCredentials):
        await accounts.authenticate(username, password)


async def test_the_current_password_is_asked_again(context):
    user = await accounts.register("alice", PASSWORD)
    principal = _principal(user)
    with pytest.raises(WrongPassword):
        await accounts.change_password(principal, "not it at all", "a new and better passphrase", False)
    with pytest.raises(WrongPassword):
        await accounts.create_token(principal, None, "not it at all")
    made = await accounts.create_token(principal, None, PASSWORD)
    assert made.record.name == accounts.DEFAULT_TOKEN_NAME and made.token.startswith("cb_")


async def test_what_is_not_the_users_is_not_found(context):
    alice = _principal(await accounts.register("alice", PASSWORD))
    bob = _principal(await accounts.register("bob", PASSWORD))
    token = await accounts.create_token(alice, "script", PASSWORD)
    for attempt in (accounts.revoke_token(bob, token.record.id), accounts.revoke_device(bob, 999),
                    accounts.rename_device(bob, 999, "x"), accounts.delete_share(bob, 999)):
        with pytest.raises(NotFound):
            await attempt
    await accounts.revoke_token(alice, token.record.id)  # still alice's until now


def test_every_problem_has_a_status():
    kinds = set(Problem.__subclasses__())
    assert kinds == set(PROBLEM_STATUSES)
    assert sorted(PROBLEM_STATUSES.values()) == [400, 401, 403, 404, 409]
