"""The API's description (OpenAPI 3.1 at /openapi.json, via quart-schema),
and the checks that keep the handlers to it.

Handlers declare what they take and give with two decorators:

- `@accepts(Model)`: the JSON object (or urlencoded form) body, validated
  against the model before the handler runs, which gets it as `data`; a
  failure is problems.InvalidInput (400 `invalid_input`, or the field's own
  code such as `invalid_username`). A form view validates its body with
  the same model through `accepted(Model)` and shows the refusal in its
  page: one validation per field, in the model. Fields with a rule of
  their own (username, new password, device name) run the check of
  server/credentials.py as their validator, and the description states
  the rule as a pattern and lengths.
- `@responds({201: Model, ...})`: the JSON answer for each status, for the
  description. The tests validate every answer against it (check_responses,
  installed by tests/conftest.py); a mismatch is our bug, logged and
  answered 500, never sent half-right. Production does not check again.

Error answers, auth, rate limits and path parameters are added to every
operation by `CloudBufferOpenAPI` from what the route already says about
itself (login_required, rate limits, converters), so the description cannot
forget them. Endpoints that are not JSON (files, the QR code, the raw
/file/buffer body) describe themselves with `@openapi(...)`, merged as is.
Pages for people (forms, the app shell) are left out of the description.
"""
from __future__ import annotations

import logging
from functools import cache, wraps
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (AfterValidator, BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, WithJsonSchema,
                      WrapValidator)
from quart import Quart, request
from quart_schema import Info, QuartSchema
from quart_schema.openapi import APIKeySecurityScheme, HttpSecurityScheme, OpenAPIProvider
from quart_schema.validation import (
    QUART_SCHEMA_REQUEST_ATTRIBUTE,
    QUART_SCHEMA_RESPONSE_ATTRIBUTE,
    DataSource,
    ResponseSchemaValidationError,
)

from .credentials import (DEVICE_NAME_PATTERN, MAX_DEVICE_NAME, MAX_PASSWORD, MIN_PASSWORD, PASSWORD_PATTERN,
                          PASSWORD_RULE, USERNAME_PATTERN, USERNAME_RULE, check_device_name, check_new_password,
                          check_username)
from .problems import InvalidInput
from .log_safety import request_for_log
from .pairing import MAX_APPROVAL_CHARS, MAX_PAYLOAD_CHARS
from .ratelimits import is_rate_limited

log = logging.getLogger(__name__)

OPENAPI_EXTRA_ATTRIBUTE = "_cloudbuffer_openapi"
ERRORS_ATTRIBUTE = "_cloudbuffer_errors"


# --- models -------------------------------------------------------------------

class Strict(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class Error(Strict):
    """Every error: a machine code and a sentence for people."""

    error: str = Field(description="Machine-readable code, e.g. `invalid_input`, `rate_limited`.")
    message: str


# The fields with a rule of their own: the check in credentials.py is the
# validation; the JSON schema only states it for the description.
Username = Annotated[str, AfterValidator(check_username),
                     WithJsonSchema({"type": "string", "pattern": USERNAME_PATTERN, "description": USERNAME_RULE})]
NewPassword = Annotated[str, AfterValidator(check_new_password),
                        WithJsonSchema({"type": "string", "minLength": MIN_PASSWORD, "maxLength": MAX_PASSWORD,
                                        "pattern": PASSWORD_PATTERN, "description": PASSWORD_RULE})]
# Control characters are dropped and the rest trimmed; what is left is the name.
DeviceName = Annotated[str, AfterValidator(check_device_name),
                       WithJsonSchema({"type": "string", "minLength": 1, "maxLength": MAX_DEVICE_NAME,
                                       "pattern": DEVICE_NAME_PATTERN})]


def coded(code: str, message: str) -> WrapValidator:
    """A field whose every refusal is its own InvalidInput (`invalid_expiry`)
    rather than the generic `invalid_input`: its constraints still come from
    its Field, which the description states."""

    def validate(value, handler):
        try:
            return handler(value)
        except ValidationError:
            raise InvalidInput(code, message) from None

    return WrapValidator(validate)


def _optional_name(name: str) -> str:
    # Left empty on the form: the default name; anything else must be a name.
    return check_device_name(name) if name else name


class Registration(Strict):
    username: Username
    password: NewPassword
    next: str | None = Field(None, max_length=2048, description="Where a browser goes afterwards (a local path).")


class Credentials(Strict):
    # Any name is worth a try (a longer one matches no account): trimmed, as typed on a phone.
    username: Annotated[str, Field(min_length=1, max_length=64), AfterValidator(str.strip)]
    password: str = Field(min_length=1, max_length=MAX_PASSWORD)
    device_name: str | None = Field(None, max_length=64,
                                    description="A name for this device; by default one from its User-Agent.")
    next: str | None = Field(None, max_length=2048)


class PasswordChange(Strict):
    current_password: str = Field(min_length=1, max_length=MAX_PASSWORD)
    new_password: NewPassword
    keep_tokens: bool = Field(False, description="Keep the API tokens working; by default they end too "
                                                 "(a new password usually answers a leak).")


class NewToken(Strict):
    name: Annotated[str, AfterValidator(_optional_name)] | None = Field(
        None, max_length=MAX_DEVICE_NAME, description="A label; control characters are dropped.")
    password: str = Field(min_length=1, max_length=MAX_PASSWORD,
                          description="The account's password, asked again: a stolen session alone cannot "
                                      "mint a token that outlives it.")


class DeviceRename(Strict):
    name: DeviceName


class DeviceRef(Strict):
    id: int
    name: str


class Account(Strict):
    """The account and the new session (the cookie is set too)."""

    id: int
    username: str
    device: DeviceRef


class Ok(Strict):
    ok: Literal[True]


class PasswordChanged(Strict):
    ok: Literal[True]
    sessions_ended: int = Field(ge=0, description="Other sessions logged out (their sockets close with 4401).")
    tokens_ended: int = Field(ge=0, description="API tokens revoked (none with keep_tokens); their sockets close too.")


class LoggedOutOthers(Strict):
    ok: Literal[True]
    sessions_ended: int = Field(ge=0, description="Other sessions logged out (their sockets close with 4401).")


class Item(Strict):
    """A buffer item. Its content is at GET /file/buffer/items/{id}."""

    id: int
    seq: int = Field(description="The user's sequence number after this write; strictly increasing.")
    type: Literal["text", "file"]
    size: int = Field(ge=0, description="Bytes stored: for an encrypted item, the body blob's.")
    mime: str | None = Field(None, description="Missing for an encrypted item (it is in the meta blob).")
    from_: str = Field(alias="from", description="Name of the device that wrote it.")
    created_at: float
    expires_at: float
    filename: str | None = None
    encrypted: Literal["aes128gcm"] | None = Field(None, description="Set for an end-to-end encrypted item "
                                                                     "(docs/e2e.md), with `key` and `meta`.")
    key: str | None = Field(None, description="The item's key blob, b64u (encrypted items).")
    meta: str | None = Field(None, description="The item's meta blob, b64u (encrypted items).")
    links: list["LiveLink"] | None = Field(
        None, description="A file's live share links, most time left first (in GET /file/buffer/items).")


class Items(Strict):
    items: list[Item]


_MAX_DOWNLOADS = Field(None, ge=1, description="Downloads the link allows (1: burn after reading); null: no limit.")
_DOWNLOADS_LEFT = Field(None, ge=0, description="Downloads it has left; null: no limit.")
_PASSWORD = Field(False, description="Whether the link asks for a password.")


class LiveLink(Strict):
    """A live share link of a file. url and token are missing only for links
    made before this server could hand a link out again."""

    id: int
    created_at: float
    expires_at: float
    max_downloads: int | None = _MAX_DOWNLOADS
    downloads_left: int | None = _DOWNLOADS_LEFT
    password: bool = _PASSWORD
    url: str | None = None
    token: str | None = None


Item.model_rebuild()  # its `links` names LiveLink, defined just above


class ShareRequest(Strict):
    expires_in: Annotated[int, Field(ge=60),
                          coded("invalid_expiry", "expires_in is a whole number of seconds, at least 60.")] | None = Field(
        None, description="Seconds the link lives, up to CLOUDBUFFER_SHARE_MAX_SECONDS; "
                                 "default CLOUDBUFFER_EXPIRE_SECONDS. Ignored when a live link is reused.")
    new: bool = Field(False, description="Make a new link even when the file has a live one.")
    max_downloads: Annotated[int, Field(ge=1, le=1_000_000), coded(
        "invalid_max_downloads", "max_downloads is a whole number of downloads from 1 to 1000000.")] | None = Field(
        None, description="Downloads the new link allows; then it is gone (a limited link is always a new one).")
    burn: bool = Field(False, description="Burn after reading: one download (max_downloads 1).")
    password: str | None = Field(None, max_length=200, description="A password the link asks for (kept as its "
                                                                  "argon2id hash); a link with one is always new.")


class LinkPassword(Strict):
    password: str = Field(min_length=1, max_length=200, description="The link's password.")


class Share(Strict):
    """A share link: anyone with the URL may download until expires_at."""

    id: int = Field(description="Delete it with DELETE /account/shares/{id}.")
    token: str
    url: str
    qr_url: str
    filename: str
    size: int = Field(ge=0)
    created_at: float
    expires_at: float = Field(description="When the link ends; the file is kept at least this long.")
    reused: bool = Field(description="True when this is the file's existing live link (200), not a new one (201).")
    max_downloads: int | None = _MAX_DOWNLOADS
    downloads_left: int | None = _DOWNLOADS_LEFT
    password: bool = _PASSWORD


class UploadState(Strict):
    """A resumable upload (tus): how far it is and, once finished, what it became."""

    id: str
    url: str = Field(description="The upload's address: HEAD, PATCH and DELETE it.")
    offset: int = Field(ge=0, description="Bytes received and on disk (Upload-Offset).")
    length: int = Field(ge=0)
    filename: str
    target: Literal["buffer", "share"]
    expires_at: float = Field(description="When an unfinished upload is dropped (Upload-Expires).")
    finished: bool
    item: Item | None = Field(None, description="The buffer item a finished upload to the buffer became.")
    share: Share | None = Field(None, description="The share link a finished upload to a link became.")


class PairingCode(Strict):
    """A one-time code for "Add a device" (single use, 2 minutes)."""

    id: int
    code: str = Field(description="ABCDE-FGHJK: 10 Crockford base32 characters; case, dashes, O/0 and I/L/1 are forgiven.")
    url: str = Field(description="The link the QR code holds: /pair?code=….")
    qr_svg: str = Field(description="The QR code of `url`, as an SVG document.")
    expires_at: float


class PairingState(Strict):
    """A pairing as its account sees it; also the live `pairing` message."""

    type: Literal["pairing"]
    id: int
    status: Literal["open", "claimed", "approved", "refused"]
    device_name: str | None = Field(description="The name the new device asked for, once it has claimed the code.")
    request_payload: str | None = Field(description="The new device's opaque payload (e.g. its public key), until answered.")
    expires_at: float


class PairingApproval(Strict):
    payload: str | None = Field(None, max_length=MAX_APPROVAL_CHARS,
                                description="Opaque, handed to the new device once (e.g. a key wrapped for it).")


class PairingRequest(Strict):
    code: str = Field(min_length=1, max_length=32)
    device_name: DeviceName
    payload: str | None = Field(None, max_length=MAX_PAYLOAD_CHARS,
                                description="Opaque, shown to the approving device (e.g. this device's public key).")


class PairingClaim(Strict):
    """The code is used up; wait with `claim` (also set as a cookie on /pair)."""

    claim: str = Field(description="Send it back as X-Pairing-Claim (or the cookie) to /pair/status and /pair/complete.")
    status: Literal["claimed"]
    expires_at: float


class PairingStatus(Strict):
    status: Literal["open", "claimed", "approved", "refused"] = Field(
        description="`open` only for a new device's own request (docs/e2e.md, flow B) not yet taken.")
    expires_at: float
    offer_payload: str | None = Field(None, description="The enrolled device's ephemeral key, for the SAS.")


class PairingDone(Strict):
    """The new session (its cookie is set) and the approving device's payload."""

    id: int
    username: str
    device: "PairedDevice"
    payload: str | None
    token: str | None = Field(None, description='With {"as": "token"}: the new API token, shown once.')


class PairedDevice(DeviceRef):
    kind: Literal["session", "token"]


PairingDone.model_rebuild()


class TokenCreated(Strict):
    """Shown once: only a hash of the token is stored."""

    id: int
    name: str
    token: str
    created_at: float


class Renamed(Strict):
    id: int
    name: str


class ProfileDevice(Strict):
    kind: Literal["session", "token"]
    id: int
    name: str


class Session(Strict):
    id: int
    name: str
    created_at: float
    last_seen_at: float
    current: bool


class TokenInfo(Strict):
    id: int
    name: str
    created_at: float
    last_used_at: float | None


class ShareInfo(Strict):
    id: int
    filename: str
    size: int
    created_at: float
    expires_at: float
    max_downloads: int | None = _MAX_DOWNLOADS
    downloads_left: int | None = _DOWNLOADS_LEFT
    password: bool = _PASSWORD


class Profile(Strict):
    username: str
    device: ProfileDevice
    devices: list[Session]
    tokens: list[TokenInfo]
    shares: list[ShareInfo]
    used_bytes: int = Field(ge=0)
    quota_bytes: int = Field(gt=0)


class BrokerHealth(Strict):
    backend: str
    status: str


class Health(Strict):
    status: Literal["ok", "degraded", "down"]
    version: str
    db: Literal["ok", "down"]
    broker: BrokerHealth


# --- end-to-end encryption (docs/e2e.md) --------------------------------------

_B64U = r"^[A-Za-z0-9_-]+$"


def _b64u(description: str, max_length: int):
    return Field(min_length=1, max_length=max_length, pattern=_B64U, description=description)


class RecoveryKey(Strict):
    public_key: str = _b64u("The recovery key pair's public key: P-256 SPKI.", 200)
    sealed_private_key: str = _b64u("Its PKCS#8 private key sealed under the recovery key R.", 1024)


class DeviceKey(Strict):
    public_key: str = _b64u("This device's long-lived P-256 public key (SPKI).", 200)
    attest: str = Field(min_length=43, max_length=43, pattern=_B64U,
                        description='b64u(HMAC-SHA256(IKM_e, "device " || device || " " || public_key)).')


class EnableWrap(Strict):
    recipient: Literal["self", "recovery"]
    epoch: Literal[1]
    blob: str = Field(min_length=1, max_length=256, description="A wrap of the epoch-1 key (docs/e2e.md).")


class E2EEnable(Strict):
    password: str = Field(min_length=1, max_length=MAX_PASSWORD,
                          description="The account's password: enabling deletes the plaintext history.")
    recovery: RecoveryKey
    device: DeviceKey
    wraps: list[EnableWrap] = Field(min_length=2, max_length=2)


class EpochWrap(Strict):
    epoch: int = Field(ge=1)
    blob: str = Field(min_length=1, max_length=256)


class E2EDeviceRegistration(DeviceKey):
    wraps: list[EpochWrap] | None = Field(None, max_length=100,
                                          description="The caller's own wraps of each epoch's key, to its own key.")


class RecipientWrap(Strict):
    recipient: str = Field(max_length=32, pattern=r"^(session:[0-9]+|token:[0-9]+|recovery)$")
    blob: str = Field(min_length=1, max_length=256)


class E2ERotation(Strict):
    epoch: int = Field(ge=2, description="The current epoch + 1 (else 409 stale_key).")
    proof: str = Field(min_length=43, max_length=43, pattern=_B64U,
                       description='b64u(HMAC-SHA256(IKM_e, "epoch " || (e+1) || " " || b64u(K_e+1))): devices '
                                   "accept the new key only if it verifies under the key they hold.")
    wraps: list[RecipientWrap] = Field(min_length=1, max_length=100,
                                       description="One per registered device and one for recovery.")


class E2EDevice(Strict):
    device: str
    name: str
    public_key: str
    attest: str


class RecoveryState(RecoveryKey):
    wraps: list["EpochWrap"] = Field(description="Each epoch's key wrapped to the recovery key (for a recovery).")


class E2EState(Strict):
    """The account's key state as the calling device sees it."""

    enabled: bool
    device: str = Field(description="The caller as a recipient: session:<id> or token:<id>.")
    user_id: int = Field(description="The account's id, which the item keys are bound to (docs/e2e.md).")
    epoch: int | None = None
    rotation_needed: bool | None = None
    recovery: RecoveryState | None = None
    devices: list[E2EDevice] | None = None
    wraps: list[EpochWrap] | None = Field(None, description="The wrapped keys addressed to the caller.")
    epochs: list["EpochProof"] | None = Field(None, description="Each rotation's proof, epoch 2 onwards.")


class EpochProof(Strict):
    epoch: int
    proof: str


E2EState.model_rebuild()


class PairingPayload(Strict):
    payload: str
    expires_at: float


class PairingOffer(Strict):
    payload: str | None = Field(None, max_length=MAX_PAYLOAD_CHARS,
                                description="The showing device's ephemeral P-256 SPKI (b64u); the code is "
                                            "derived from it. Without it the code is random.")


class PairingJoinRequest(Strict):
    device_name: DeviceName
    payload: str = Field(min_length=1, max_length=MAX_PAYLOAD_CHARS, description="The new device's ephemeral P-256 SPKI (b64u).")


class PairingRequested(Strict):
    code: str
    url: str
    qr_svg: str
    claim: str
    expires_at: float


class PairingTake(Strict):
    code: str = Field(min_length=1, max_length=32)
    payload: str = Field(min_length=1, max_length=MAX_PAYLOAD_CHARS, description="This device's ephemeral P-256 SPKI (b64u).")


class PairingCompletion(Strict):
    as_: Literal["session", "token"] | None = Field(None, alias="as",
                                                    description="token: become an API token (the CLI).")


# --- decorators ---------------------------------------------------------------

M = TypeVar("M", bound=BaseModel)


def accepts(model: type[BaseModel]):
    """Document the body as `model` (JSON or a form), validate it and hand
    it to the handler as `data`."""

    def decorator(func):
        @wraps(func)
        async def wrapper(*args, **kwargs):
            return await func(*args, data=await accepted(model), **kwargs)

        setattr(wrapper, QUART_SCHEMA_REQUEST_ATTRIBUTE, (model, DataSource.JSON))
        return wrapper

    return decorator


async def accepted(model: type[M], trimmed: tuple[str, ...] = ()) -> M:
    """The request's body (JSON or a form, forms.read_input) validated as
    `model`; InvalidInput naming the first field that breaks its rule.
    `trimmed`: text fields a form view trims first (a browser's autofill
    may add a space around a username; an API call's value is taken as sent)."""
    from .forms import read_input

    data = await read_input()
    if trimmed:
        data = {**data, **{name: data[name].strip() for name in trimmed if isinstance(data.get(name), str)}}
    try:
        return model.model_validate(data)
    except ValidationError as error:
        raise _input_error(error) from None


def _input_error(error: ValidationError) -> InvalidInput:
    first = error.errors()[0]
    field = ".".join(str(part) for part in first["loc"]) or "body"
    if first["type"] == "missing":
        return InvalidInput("invalid_input", f"'{field}' is required.")
    if first["type"] in ("string_type", "int_type", "bool_type", "model_type", "dict_type"):
        return InvalidInput("invalid_input", f"'{field}' must be a {first['type'].split('_')[0]}.")
    if first["type"] == "string_too_short" and first.get("ctx", {}).get("min_length") == 1:
        return InvalidInput("invalid_input", f"'{field}' is required.")
    if first["type"] == "bool_parsing":
        return InvalidInput("invalid_input", f"'{field}' must be true or false.")
    return InvalidInput("invalid_input", f"'{field}': {first['msg']}.")


def responds(models: dict[int, type[BaseModel]]):
    """Document the JSON answer per status. The answers are checked against
    it by check_responses, which the tests install: checking every answer
    in production read each body back and validated it again, about 34 µs
    per request on the text post (docs/benchmarks.md, #7), for a mismatch
    that is a bug the tests (and schemathesis' response conformance) catch."""

    def decorator(func):
        setattr(func, QUART_SCHEMA_RESPONSE_ATTRIBUTE, {status: (model, None) for status, model in models.items()})
        return func

    return decorator


@cache
def _adapter(model: type[BaseModel]) -> TypeAdapter:
    return TypeAdapter(model)


def check_responses(app: Quart) -> None:
    """Validate every JSON answer of a `@responds` route against its model:
    a mismatch is logged (where, never the values: an answer may hold a
    share or API token) and answered 500 instead of half-right. Installed
    last, so it sees the answer before compression or other hooks touch it."""

    @app.after_request
    async def check(response):
        rule = request.url_rule
        view = app.view_functions.get(rule.endpoint) if rule is not None else None
        models = getattr(view, QUART_SCHEMA_RESPONSE_ATTRIBUTE, None) or {}
        model = models.get(response.status_code, (None, None))[0]
        if model is not None and response.mimetype == "application/json":
            try:
                _adapter(model).validate_python(await response.get_json())
            except ValidationError as error:
                problems = "; ".join(f"{'.'.join(map(str, problem['loc']))}: {problem['msg']}"
                                     for problem in error.errors(include_url=False, include_input=False))
                log.error("%s answered outside its schema: %s", request_for_log(request), problems)
                raise ResponseSchemaValidationError() from None
        return response


def openapi(extra: dict[str, Any] | None = None, errors: tuple[int, ...] = ()):
    """Extra OpenAPI for one operation (merged into what is generated), and
    error statuses beyond those derived from the route."""

    def decorator(func):
        if extra:
            setattr(func, OPENAPI_EXTRA_ATTRIBUTE, extra)
        if errors:
            setattr(func, ERRORS_ATTRIBUTE, tuple(errors))
        return func

    return decorator


# --- the description ----------------------------------------------------------

# Pages for people and the app shell: not part of the API.
HIDDEN_ENDPOINTS = {
    "account.get_register", "account.get_login", "files.get_load", "api_docs.get_docs",
    "api_docs.get_openapi", "static", "pairing.get_pair_page", "pairing.get_join_page", "pairing.get_wait_page",
}
HIDDEN_BLUEPRINTS = {"pwa"}
# Aliases for HTML forms (which can only GET and POST) and the original spelling.
HIDDEN_RULE_SUFFIXES = ("/delete", "/rename", "/registet")

ERROR_DESCRIPTIONS = {
    400: "The request is malformed or a value is invalid.",
    401: "Not logged in, or the API token is not valid.",
    403: "Refused (another site's request, or a wrong password).",
    404: "No such item, link or token (or it has expired).",
    408: "The upload stalled or trickled and was dropped.",
    409: "Conflict (the username is taken; an upload at another offset or busy).",
    412: "Tus-Resumable is missing or names a version other than 1.0.0.",
    413: "Too large, or over the storage quota.",
    415: "The body's Content-Type is not one this endpoint reads.",
    460: "Upload-Checksum does not match the body (tus checksum extension); nothing of it was kept.",
    429: "Rate limited: wait Retry-After seconds.",
    503: "The database is unreachable.",
    507: "The server is short of disk space; nothing was stored.",
}


class CloudBufferOpenAPI(OpenAPIProvider):
    def generate_rules(self):
        for rule in super().generate_rules():
            blueprint = rule.endpoint.split(".", 1)[0] if "." in rule.endpoint else None
            if (rule.endpoint in HIDDEN_ENDPOINTS or blueprint in HIDDEN_BLUEPRINTS
                    or rule.rule.endswith(HIDDEN_RULE_SUFFIXES)):
                continue
            yield rule

    def build_paths(self, rule):
        paths, components = super().build_paths(rule)
        func = self._app.view_functions[rule.endpoint]
        for operations in paths.values():
            for method, operation in list(operations.items()):
                operations[method] = self._complete(rule, func, method, dict(operation))
        components["Error"] = Error.model_json_schema()
        return paths, components

    def _complete(self, rule, func, method: str, operation: dict) -> dict:
        operation["parameters"] = list(operation.get("parameters", []))
        operation["responses"] = dict(operation.get("responses", {}))
        statuses = set(getattr(func, ERRORS_ATTRIBUTE, ()))
        if method != "get":
            statuses.add(403)  # a write from another site (auth.check_same_origin)
        if getattr(func, "login_required", False):
            statuses.add(401)
            operation["security"] = [{"bearerAuth": []}, {"cookieAuth": []}]
        else:
            operation["security"] = []
        if is_rate_limited(func):
            statuses.add(429)
        if rule.arguments:
            statuses.add(404)
        if "requestBody" in operation:
            statuses.update((400, 413, 415))
            body = dict(operation["requestBody"])
            content = dict(body["content"])
            if "application/json" in content:
                # The same object as an HTML form would post it.
                content["application/x-www-form-urlencoded"] = content["application/json"]
            body["content"] = content
            body["required"] = True
            operation["requestBody"] = body
        for status in sorted(statuses):
            operation["responses"].setdefault(str(status), {
                "description": ERROR_DESCRIPTIONS.get(status, "Error."),
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
            })
        for status in list(operation["responses"]):
            operation["responses"][str(status)] = operation["responses"].pop(status)
        extra = getattr(func, OPENAPI_EXTRA_ATTRIBUTE, None)
        if extra:
            _merge(operation, extra)
        return operation


def _merge(target: dict, extra: dict) -> None:
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            target[key] = dict(target[key])
            _merge(target[key], value)
        elif isinstance(value, list) and isinstance(target.get(key), list):
            target[key] = target[key] + value
        else:
            target[key] = value


def init_openapi(app: Quart) -> QuartSchema:
    from . import __version__

    return QuartSchema(
        app,
        # /openapi.json and /docs are served by blueprints/api_docs.py, as
        # routes that follow our policies (public on purpose, rate limited).
        openapi_path=None,
        swagger_ui_path=None, redoc_ui_path=None, scalar_ui_path=None,
        openapi_provider_class=CloudBufferOpenAPI,
        info=Info(title="CloudBuffer", version=__version__,
                  description="Copy on one device, paste on all of them. Every error is a JSON object "
                              "with a machine code in error and a sentence in message; the live socket "
                              "(GET /ws) is described in docs/protocol.md."),
        # bearerAuth: an API token made on the profile page (cb_…); cookieAuth:
        # a browser session, whose writes must come from this origin.
        security_schemes={
            "bearerAuth": HttpSecurityScheme(scheme="bearer"),
            "cookieAuth": APIKeySecurityScheme(name="cloudbuffer_session", in_="cookie"),
        },
    )


# --- non-JSON bodies and answers, described by hand ----------------------------

_ANY_FILE = {"schema": {"type": "string", "format": "binary"}}
_DATA_TYPE_OUT = {"X-Data-Type": {"description": "`text` or `file`.",
                                  "schema": {"type": "string", "enum": ["text", "file"]}}}
_CONTENT = {
    "description": "The item's content: the text as text/plain (X-Data-Type: text), or the file with its "
                   "own type as an attachment named in Content-Disposition (X-Data-Type: file). "
                   "Files honour Range requests.",
    "headers": _DATA_TYPE_OUT,
    "content": {"text/plain": {"schema": {"type": "string"}}, "*/*": _ANY_FILE},
}

_ENCRYPTED_HEADERS_IN = [
    {"name": "X-Encrypted", "in": "header", "required": False,
     "description": "`aes128gcm` for an end-to-end encrypted write (docs/e2e.md): the body is then the body "
                    "blob as application/octet-stream. Refused with 409 `not_encrypted` on an account "
                    "without encryption; a plaintext write to an encrypted account is 409 `encrypted_account`.",
     "schema": {"type": "string", "enum": ["aes128gcm"]}},
    {"name": "X-Encrypted-Key", "in": "header", "required": False,
     "description": "The item's key blob, b64u (with X-Encrypted); its keyid must be the account's epoch "
                    "(else 409 `stale_key`).",
     "schema": {"type": "string", "maxLength": 1024, "pattern": "^[A-Za-z0-9_-]+$"}},
    {"name": "X-Encrypted-Meta", "in": "header", "required": False,
     "description": "The item's meta blob, b64u (with X-Encrypted).",
     "schema": {"type": "string", "maxLength": 6144, "pattern": "^[A-Za-z0-9_-]+$"}},
]
_ENCRYPTED_HEADERS_OUT = {
    "X-Encrypted": {"description": "`aes128gcm` when the body is an encrypted item's body blob.",
                    "schema": {"type": "string"}},
    "X-Encrypted-Key": {"description": "The item's key blob (encrypted items; not on share links).",
                        "schema": {"type": "string"}},
    "X-Encrypted-Meta": {"description": "The item's meta blob (encrypted items).", "schema": {"type": "string"}},
}
_CONTENT["headers"] = {**_DATA_TYPE_OUT, **_ENCRYPTED_HEADERS_OUT}
_CONTENT["description"] += (" An end-to-end encrypted item is its body blob as application/octet-stream "
                            "(Range over the ciphertext), with X-Encrypted, X-Encrypted-Key and X-Encrypted-Meta.")

BUFFER_BODY = {
    "description": "Sets the buffer. The body is raw, not JSON: with `X-Data-Type: text` it is the text "
                   "itself (UTF-8, at most CLOUDBUFFER_MAX_TEXT_BYTES, whatever the Content-Type); with "
                   "`X-Data-Type: file` it is the file's bytes, streamed to disk, named by `X-File-Name` "
                   "(percent-encoded UTF-8) or `Content-Disposition: attachment; filename=…` — a file "
                   "without a name is 400 `missing_filename` — or, for either type, a multipart form with "
                   "exactly one `file` field (the original client's format; for text its bytes are the "
                   "text, with the same UTF-8 check and limit).",
    "parameters": [
        {"name": "X-Data-Type", "in": "header", "required": True,
         "schema": {"type": "string", "enum": ["text", "file"]}},
        {"name": "X-File-Name", "in": "header", "required": False,
         "description": "A file's name, percent-encoded UTF-8 (required for a raw file body unless "
                        "Content-Disposition names it; ignored for text). Directory parts, control and "
                        "separator characters are dropped.",
         "schema": {"type": "string"}},
        *_ENCRYPTED_HEADERS_IN,
    ],
    "requestBody": {"required": True, "content": {
        "text/plain": {"schema": {"type": "string"}},
        "application/octet-stream": _ANY_FILE,
        "multipart/form-data": {"schema": {"type": "object", "required": ["file"],
                                           "properties": {"file": {"type": "string", "format": "binary"}}}},
    }},
}

UPLOAD_FORM = {
    "description": "Stores a file as a share link: a multipart form with exactly one `file` field "
                   "(its filename is required). Answers JSON when asked (Accept: application/json), "
                   "else the page with the link and its QR code. Past CLOUDBUFFER_MAX_SHARES live links: 409 "
                   "`too_many_links`, before the file is read.",
    "parameters": [{"name": "expires_in", "in": "query", "required": False,
                    "description": "Seconds the link lives (60 up to CLOUDBUFFER_SHARE_MAX_SECONDS); "
                                   "default CLOUDBUFFER_EXPIRE_SECONDS.",
                    "schema": {"type": "integer", "minimum": 60}},
                   {"name": "max_downloads", "in": "query", "required": False,
                    "description": "Downloads the link allows (1 up); then it is gone. Also a form field.",
                    "schema": {"type": "integer", "minimum": 1, "maximum": 1000000}},
                   {"name": "burn", "in": "query", "required": False,
                    "description": "`1`: burn after reading (one download). Also a form field.",
                    "schema": {"type": "string", "enum": ["1", "true", "on"]}},
                   *[header for header in _ENCRYPTED_HEADERS_IN if header["name"] != "X-Encrypted-Key"]],
    "requestBody": {"required": True, "content": {
        "multipart/form-data": {"schema": {"type": "object", "required": ["file"],
                                           "properties": {"file": {"type": "string", "format": "binary"}}}},
        "application/octet-stream": _ANY_FILE,
    }},
}

ITEMS_QUERY = {"parameters": [
    {"name": "q", "in": "query", "required": False,
     "description": "Only items whose text or filename holds this, in any case (Unicode case folding).",
     "schema": {"type": "string", "maxLength": 200}},
    {"name": "kind", "in": "query", "required": False, "description": "Only texts or only files.",
     "schema": {"type": "string", "enum": ["text", "file"]}},
]}

TOKEN_QUERY = {"parameters": [{"name": "token", "in": "query", "required": True,
                                "schema": {"type": "string", "minLength": 1, "maxLength": 128}}]}

SHARED_FILE = {
    "description": "The shared file, to anyone holding the token, until the link expires. Always an "
                   "attachment, sandboxed by its Content-Security-Policy, never sniffed. A browser "
                   "(Accept ranking text/html above */*) gets the link's landing page instead, unless "
                   "?download=1; ?preview=1 is the landing page's inline frame of a PDF.",
    "responses": {"200": {"description": "The file (its own type; Range requests honoured).",
                          "content": {"*/*": _ANY_FILE}}},
}

UNLOCK = {
    "description": "Opens a link that has a password: the right one is 303 to the link (its page, or for a "
                   "script its bytes) with `unlock=` good for an hour. A wrong password and a link that does "
                   "not exist (or has none) are the same 404. Limited per address and per link.",
    "responses": {"303": {"description": "The right password.", "headers": {"Location": {"schema": {"type": "string"}}}}},
}

QR_CODE = {"responses": {"200": {"description": "The link's QR code.",
                                 "content": {"image/svg+xml": {"schema": {"type": "string"}}}}}}

BUFFER_CONTENT = {"responses": {"200": _CONTENT, "204": {"description": "The buffer is empty."}}}
ITEM_CONTENT = {"responses": {"200": _CONTENT}}


# --- resumable uploads (tus 1.0.0, blueprints/uploads.py) -----------------------

_TUS_RESUMABLE = {"name": "Tus-Resumable", "in": "header", "required": True,
                  "schema": {"type": "string", "enum": ["1.0.0"]}}
_UPLOAD_ID = {"name": "upload_id", "in": "path", "required": True,
              "schema": {"type": "string", "pattern": "^[0-9a-f]{32}$"}}
_OFFSET_BODY = {"required": False, "content": {"application/offset+octet-stream": _ANY_FILE}}
_CHECKSUM = {"name": "Upload-Checksum", "in": "header", "required": False,
             "description": "`sha256 ` and the base64 of the body's digest; a mismatch is 460 and keeps nothing.",
             "schema": {"type": "string", "pattern": "^sha256 [A-Za-z0-9+/]{43}=$"}}
_UPLOAD_HEADERS = {
    "Upload-Offset": {"schema": {"type": "integer"}},
    "Upload-Expires": {"description": "When an unfinished upload is dropped (RFC 9110 date).",
                       "schema": {"type": "string"}},
}

TUS_OPTIONS = {
    "description": "tus discovery: the version, extensions, largest upload and checksum algorithm served.",
    "responses": {"204": {"description": "In the headers.", "headers": {
        name: {"schema": {"type": "string"}}
        for name in ("Tus-Version", "Tus-Extension", "Tus-Max-Size", "Tus-Checksum-Algorithm")}}},
}

TUS_CREATE = {
    "description": "Creates a resumable upload (tus creation, creation-with-upload). Upload-Metadata holds "
                   "`filename` (required), `filetype`, `target` (`buffer`, the default, or `share`) and, for a "
                   "share, `expires_in`. The whole Upload-Length counts against the quota from now on: over "
                   "it, or over CLOUDBUFFER_MAX_UPLOAD_BYTES, is 413 before any byte is read. A body "
                   "(application/offset+octet-stream) is the upload's first bytes.",
    "parameters": [
        _TUS_RESUMABLE,
        {"name": "Upload-Length", "in": "header", "required": True,
         "schema": {"type": "string", "pattern": "^[0-9]{1,19}$"}},
        {"name": "Upload-Metadata", "in": "header", "required": True,
         "description": "Comma-separated `key base64value` pairs.",
         "schema": {"type": "string", "pattern": "^filename [A-Za-z0-9+/]+={0,2}$"}},
        _CHECKSUM,
    ],
    "requestBody": _OFFSET_BODY,
    "responses": {"201": {"description": "Created; its address is in Location.",
                          "headers": {"Location": {"schema": {"type": "string"}}, **_UPLOAD_HEADERS}}},
}

TUS_HEAD = {
    "description": "The upload's state. HEAD is tus's offset query (Upload-Offset, Upload-Length, "
                   "Upload-Metadata, Upload-Expires; it needs Tus-Resumable); GET answers the same as JSON, "
                   "with the item or share link a finished upload became.",
    "parameters": [_UPLOAD_ID],
    "responses": {"200": {"description": "The upload.", "headers": _UPLOAD_HEADERS}},
}

TUS_PATCH = {
    "description": "Appends the body at Upload-Offset, which must be the upload's offset (else 409 "
                   "`offset_mismatch`); one PATCH at a time per upload (else 409 `upload_busy`). The last "
                   "byte makes the upload its buffer item or share link (X-Item-Id or X-Share-Url).",
    "parameters": [
        _TUS_RESUMABLE, _UPLOAD_ID,
        {"name": "Upload-Offset", "in": "header", "required": True,
         "schema": {"type": "string", "pattern": "^[0-9]{1,19}$"}},
        _CHECKSUM,
    ],
    "requestBody": {**_OFFSET_BODY, "required": True},
    "responses": {"204": {"description": "Appended.", "headers": _UPLOAD_HEADERS}},
}

TUS_DELETE = {
    "description": "Ends the upload (tus termination) and removes its bytes; what a finished one became stays.",
    "parameters": [_TUS_RESUMABLE, _UPLOAD_ID],
    "responses": {"204": {"description": "Deleted."}},
}
