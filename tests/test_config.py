"""Settings: every CLOUDBUFFER_* value is validated with a message naming it;
sessions survive restarts (the generated key: tests/test_data_dir.py)."""
from __future__ import annotations

from pathlib import Path

import pytest

from server import config as config_module
from server.config import SETTINGS, ConfigError, load_settings

# Values each kind of setting must refuse. A new setting with a new parser
# has to be added here (test_every_parser_has_bad_values makes sure).
BAD_VALUES = {
    "_positive_int": ["0", "-1", "ten", "1.5", "1e3"],
    "_non_negative_int": ["-1", "many", "2.5"],
    "_url": ["buffer.example.com", "ftp://buffer.example.com", "https://", "/relative"],
    "_redis_url": ["http://127.0.0.1:6379", "127.0.0.1:6379"],
    "_storage_url": ["file:///srv/files", "s3:///no-bucket", "bucket/prefix"],
    "_endpoint": ["minio:9000", "ftp://minio"],
    "_database_url": ["sqlite:///x.db", "mysql://db/x", "127.0.0.1:5432"],
    "_origins": ["evil.example", "https://ok.example, not-a-url"],
    "_bool": ["maybe", "2", "yess"],
    "_secret": ["short", " " * 40, "x" * 31],
    "_nice": ["-1", "20", "low", "2.5"],
    "_patch_names": ["no_such_patch", "ws_pings,typo"],
}
# Settings whose values are free-form (a path is checked by data_dir.ensure_data_dir).
FREE_FORM = {"str"}


def cases():
    for setting in SETTINGS:
        for value in BAD_VALUES.get(setting.parse.__name__, []):
            yield pytest.param(setting.name, value, id=f"{setting.name}={value}")


def test_defaults(tmp_path):
    settings = load_settings(environ={})
    assert settings.data_dir == Path("user_files").resolve()
    assert settings.expire_seconds == 7200
    assert settings.max_files == 10
    assert settings.max_upload_bytes == 1024**3
    assert settings.quota_bytes == 5 * 1024**3
    assert settings.upload_nice == 10
    assert settings.public_url is None and settings.redis_url is None and settings.secret_key is None
    assert {s.attribute for s in SETTINGS} == set(vars(settings))


def test_every_parser_has_bad_values():
    for setting in SETTINGS:
        name = setting.parse.__name__
        assert name in BAD_VALUES or name in FREE_FORM, f"add bad values for {setting.name} ({name}) to BAD_VALUES"


@pytest.mark.parametrize("name, value", list(cases()))
def test_bad_values_are_refused_with_a_clear_message(name, value):
    with pytest.raises(ConfigError) as caught:
        load_settings(environ={f"CLOUDBUFFER_{name}": value})
    message = str(caught.value)
    assert message.startswith(f"CLOUDBUFFER_{name}={value!r} is invalid: ")
    assert len(message.split(": ", 1)[1]) > 10  # says what is expected


@pytest.mark.parametrize("name, value, expected", [
    ("MAX_FILES", "ten", "must be a positive integer"),
    ("MIN_FREE_BYTES", "2.5", "must be zero or a positive integer"),
    ("UPLOAD_NICE", "low", "must be a whole number from 0 to 19"),
])
def test_a_number_that_is_not_one_says_what_is_expected(name, value, expected):
    with pytest.raises(ConfigError) as caught:
        load_settings(environ={f"CLOUDBUFFER_{name}": value})
    assert str(caught.value) == f"CLOUDBUFFER_{name}={value!r} is invalid: {expected}"


def test_every_validated_setting_was_tried():
    tried = {param.values[0] for param in cases()}
    validated = {s.name for s in SETTINGS if s.parse.__name__ not in FREE_FORM}
    assert tried == validated


def test_good_values_are_parsed():
    settings = load_settings(environ={
        "CLOUDBUFFER_DATA_DIR": "/srv/buffer",
        "CLOUDBUFFER_EXPIRE_SECONDS": "60",
        "CLOUDBUFFER_MAX_UPLOAD_BYTES": "1048576",
        "CLOUDBUFFER_PUBLIC_URL": "https://buffer.example.com/",
        "CLOUDBUFFER_REDIS_URL": "redis://127.0.0.1:6379/0",
        "CLOUDBUFFER_ALLOWED_ORIGINS": "https://a.example/, https://b.example",
        "CLOUDBUFFER_SECURE_COOKIES": "off",
        "CLOUDBUFFER_SECRET_KEY": "k" * 40,
        "CLOUDBUFFER_UPLOAD_NICE": "0",
    })
    assert settings.data_dir == Path("/srv/buffer")
    assert settings.expire_seconds == 60
    assert settings.max_upload_bytes == 1048576
    assert settings.public_url == "https://buffer.example.com"  # no trailing slash
    assert settings.redis_url == "redis://127.0.0.1:6379/0"
    assert settings.allowed_origins == ("https://a.example", "https://b.example")
    assert settings.secure_cookies is False
    assert settings.secret_key == "k" * 40
    assert settings.upload_nice == 0


def test_empty_values_mean_the_default():
    assert load_settings(environ={"CLOUDBUFFER_EXPIRE_SECONDS": ""}).expire_seconds == 7200


def test_unknown_overrides_are_refused():
    with pytest.raises(ConfigError, match="EXPIRE_SECOND"):
        load_settings(environ={}, overrides={"EXPIRE_SECOND": 5})


def test_overrides_win_over_the_environment():
    settings = load_settings(environ={"CLOUDBUFFER_MAX_FILES": "3"}, overrides={"MAX_FILES": 7})
    assert settings.max_files == 7


async def test_sessions_survive_a_restart(tmp_path):
    """Two apps on one data dir (a restart) share the generated key, so a
    cookie from the first is still valid on the second."""
    from server import create_app
    from tests.conftest import register

    settings = {"DATA_DIR": str(tmp_path / "data")}
    first = create_app(settings)
    async with first.test_app():
        client = first.test_client()
        await register(client, "alice")
        cookies = [(c.name, c.value) for c in client.cookie_jar]
    second = create_app(settings)
    assert second.secret_key == first.secret_key
    async with second.test_app():
        client = second.test_client()
        header = "; ".join(f"{name}={value}" for name, value in cookies)
        assert (await client.get("/file/buffer", headers={"Cookie": header})).status_code == 204


def test_configured_secret_key_is_used_as_is(tmp_path):
    from server import create_app

    app = create_app({"DATA_DIR": str(tmp_path), "SECRET_KEY": "s" * 40})
    assert app.secret_key == "s" * 40
    assert not (tmp_path / "secret_key").exists()


def test_the_parsers_module_names_are_stable():
    # BAD_VALUES is keyed by parser name; a rename must update this test.
    assert {name for name in BAD_VALUES} <= {name for name in dir(config_module) if name.startswith("_")}


def test_settings_are_frozen():
    """Read once at start-up and shared by every service: nothing may change
    them while the server runs."""
    import dataclasses

    settings = load_settings(environ={})
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.max_files = 1  # type: ignore[misc]
