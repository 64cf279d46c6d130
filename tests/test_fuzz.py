"""Fuzzing the API from its own description (schemathesis, Python API).

Every operation in /openapi.json gets schema-valid cases (positive) and
schema-breaking ones (negative), sent to the real server with a real bearer
token, and every built-in check runs on every answer: no 5xx, status codes,
content types, headers and bodies as described, valid data accepted, invalid
data rejected, auth not ignored, unsupported methods refused, and the rest.

Examples per operation and mode are bounded so the whole run stays well
under a minute on 2 cores; the number of cases run is printed and recorded
in docs/security.md. Rate limits are off for this server: they are tested
on their own (tests/test_ratelimits.py) and would only turn the fuzzer's
cases into 429s.
"""
from __future__ import annotations

import time

import httpx
import hypothesis
import hypothesis.errors
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase
from schemathesis import GenerationMode
from schemathesis.checks import CHECKS, load_all_checks

from tests.conftest import PASSWORD
from tests.live_server import live_server_factory  # noqa: F401  (fixture)

EXAMPLES_PER_OPERATION_AND_MODE = 15
# Each case here costs the server real argon2 hashes (~0.25 s each on 2 busy
# cores, and several checks re-send the request), so fewer examples.
PASSWORD_HASHING = {"POST /account/login": 5, "POST /account/register": 5, "POST /account/password": 4,
                    "POST /account/tokens": 5}
USERNAME = "fuzzer"

# The two places the description cannot say everything, where a
# schema-valid case is rightly answered 400:
# - a raw file body to POST /file/buffer needs a name from X-File-Name *or*
#   Content-Disposition (or a multipart part), an either-or that OpenAPI
#   parameters cannot state;
# - a new account's password must also not be a commonly used one, a
#   repeated pattern or the username (server/credentials.py): a list and a
#   comparison with another field, which no JSON Schema keyword expresses;
# - end-to-end encryption (docs/e2e.md): a public key must be a point on the
#   P-256 curve, a wrap holds one, and a blob's bytes must be aes128gcm
#   (record size, key id, last record): arithmetic and binary structure
#   inside base64url strings, beyond any JSON Schema keyword.
SCHEMA_VALID_BUT_400 = ["2xx", "400", "401", "403", "404", "409", "429"]
# tus (resumable uploads) has statuses of its own: 412 for a request
# without Tus-Resumable: 1.0.0 (the protocol says so, where a missing header
# elsewhere is 400), 460 for a body whose random Upload-Checksum does not
# match it, 409 for a random Upload-Offset; and a schema-valid Upload-Metadata
# (a filename's base64) may decode to no valid name (400).
TUS_NEGATIVE = ["400", "401", "403", "404", "405", "406", "409", "412", "413", "415", "422", "428", "429", "460"]
TUS_POSITIVE = ["2xx", "400", "401", "403", "404", "409", "413", "429", "460"]
_TUS = [("/file/uploads", "POST"), ("/file/uploads/{upload_id}", "PATCH"), ("/file/uploads/{upload_id}", "DELETE"),
        ("/file/uploads/{upload_id}", "GET")]
_ACCEPTING_400 = [("/file/buffer", "POST"), ("/account/register", "POST"), ("/file/load", "POST"),
                  ("/account/e2e/enable", "POST"), ("/account/e2e/device", "PUT"), ("/account/e2e/epochs", "POST"),
                  ("/account/pairings", "POST"), ("/account/pairings/claim", "POST"), ("/pair/requests", "POST"),
                  ("/share-target", "POST")]
# Bodies holding a list (the wraps of a rotation): a schema-breaking case
# can make the body bigger than the 64 KiB every JSON body is limited to,
# and that is 413 before its content is looked at.
SCHEMA_BREAKING_OR_413 = ["400", "401", "403", "404", "405", "406", "409", "413", "415", "422", "428", "429"]
_LISTS = [("/account/e2e/enable", "POST"), ("/account/e2e/device", "PUT"), ("/account/e2e/epochs", "POST")]
CONFIG = {
    "operations": [
        *({"include-path": path, "include-method": method,
           "checks": {"negative_data_rejection": {"expected-statuses": TUS_NEGATIVE},
                      "positive_data_acceptance": {"expected-statuses": TUS_POSITIVE}}}
          for path, method in _TUS),
        *({"include-path": path, "include-method": method,
           "checks": {"positive_data_acceptance": {"expected-statuses": SCHEMA_VALID_BUT_400},
                      **({"negative_data_rejection": {"expected-statuses": SCHEMA_BREAKING_OR_413}}
                         if (path, method) in _LISTS else {})}}
          for path, method in _ACCEPTING_400),
    ],
}

# A tus PATCH body (docs/api.md, resumable uploads) is raw bytes like any
# file's; schemathesis knows the type only by its generic name.
schemathesis.serializer.alias("application/offset+octet-stream", "application/octet-stream")


class Credentials:
    """The fuzzer's bearer token; minted again if a case revokes it (the
    fuzzer is free to DELETE /account/tokens/{id} with our own id)."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.token_id: int | None = None
        self.token = ""
        self.mint()

    def mint(self) -> None:
        with httpx.Client(base_url=self.base_url, timeout=10) as client:
            response = client.post("/account/login", json={"username": USERNAME, "password": PASSWORD})
            assert response.status_code == 200, response.text
            created = client.post("/account/tokens", json={"name": "fuzzer", "password": PASSWORD}).json()
        self.token_id, self.token = created["id"], created["token"]

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def revoked_by(self, case, response) -> bool:
        return (case.method == "DELETE" and case.path == "/account/tokens/{token_id}"
                and case.path_parameters.get("token_id") == self.token_id and response.status_code == 200)


@pytest.fixture
def fuzz_target(live_server_factory):  # noqa: F811
    server = live_server_factory(env={"CLOUDBUFFER_RATE_LIMITS": "false"})
    response = httpx.post(server.base_url + "/account/register", json={"username": USERNAME, "password": PASSWORD})
    assert response.status_code == 201
    credentials = Credentials(server.base_url)
    # Something to find: a text, a file and a share link of the fuzzer's own.
    with httpx.Client(base_url=server.base_url, headers=credentials.headers) as client:
        client.post("/file/buffer", content=b"hello", headers={"X-Data-Type": "text"})
        client.post("/file/buffer", content=b"\x00\x01", headers={"X-Data-Type": "file", "X-File-Name": "a.bin"})
        client.post("/file/load", files={"file": ("b.txt", b"shared")}, headers={"Accept": "application/json"})
    schema = schemathesis.openapi.from_url(server.base_url + "/openapi.json",
                                           config=schemathesis.Config.from_dict(CONFIG))

    # Given to schemathesis as the bearerAuth scheme's provider, so it knows
    # which header is the credential (and leaves it intact in negative cases).
    @schema.auth(refresh_interval=None)
    class BearerToken:
        def get(self, case, context):
            return credentials.token

        def set(self, case, token, context):
            case.headers = {**(case.headers or {}), "Authorization": f"Bearer {token}"}

    return server, schema, credentials


def test_every_operation_survives_fuzzing(fuzz_target, pytestconfig):
    server, schema, credentials = fuzz_target
    load_all_checks()
    checks = CHECKS.get_all()  # all of them, not just the defaults
    runs: dict[str, int] = {}
    timings: list[str] = []
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 20, "the description lost operations"

    for operation in operations:
        # An operation with no parameters and no body has nothing to break.
        breakable = bool(list(operation.iter_parameters()) or operation.body)
        modes = (GenerationMode.POSITIVE, GenerationMode.NEGATIVE) if breakable else (GenerationMode.POSITIVE,)
        for mode in modes:
            started, before = time.monotonic(), runs.get(operation.label, 0)
            examples = PASSWORD_HASHING.get(operation.label, EXAMPLES_PER_OPERATION_AND_MODE)

            @hypothesis.settings(max_examples=examples, deadline=None, database=None,
                                 derandomize=True, phases=[Phase.explicit, Phase.generate],
                                 suppress_health_check=list(HealthCheck))
            @hypothesis.given(case=operation.as_strategy(generation_mode=mode, auth_storage=schema.auth))
            def run(case):
                response = case.call(base_url=server.base_url, timeout=10)
                runs[operation.label] = runs.get(operation.label, 0) + 1
                try:
                    case.validate_response(response, checks=checks,
                                           transport_kwargs={"base_url": server.base_url})
                finally:
                    if credentials.revoked_by(case, response):
                        credentials.mint()

            try:
                run()
            except hypothesis.errors.Unsatisfiable:
                # Every value the description allows is also valid over HTTP
                # (e.g. any string is a valid path segment): nothing to break.
                assert mode is GenerationMode.NEGATIVE, operation.label
            timings.append(f"{operation.label} {mode.value}: {runs.get(operation.label, 0) - before} cases, "
                           f"{time.monotonic() - started:.1f} s")

    total = sum(runs.values())
    reporter = pytestconfig.pluginmanager.get_plugin("terminalreporter")
    summary = f"schemathesis: {total} cases over {len(runs)} operations, every check on each"
    if reporter is not None:
        reporter.write_line("\n" + summary)
    print(summary, *timings, sep="\n")
    assert len(runs) == len(operations)
    assert "internal_error" not in server.log_text()
