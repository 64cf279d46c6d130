"""This computer's end-to-end keys: $XDG_CONFIG_HOME/cloudbuffer/e2e.json,
mode 0600 beside client.toml. It holds the device's private key, the
account key of every epoch this device has been given, and the recovery
public key as first seen (a rotation refuses one the server changed)."""
from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec

from . import keys
from .config import config_path, write_private
from .errors import USAGE, ClientError


_SAVING = threading.Lock()
MAX_SEEN = 5000  # far beyond any history; older ids fall off


def keystore_path() -> Path:
    return config_path().with_name("e2e.json")


@dataclass
class Keystore:
    url: str
    device: str  # "token:3": this device as a recipient of wraps
    user_id: int
    device_key: ec.EllipticCurvePrivateKey
    epochs: dict[int, bytes] = field(default_factory=dict)
    recovery_public_key: str | None = None
    # The ids inside the items' key blobs this device has seen, with the seq
    # each came under: the same id under another seq is an old item replayed.
    seen: dict[str, int] = field(default_factory=dict)

    def ikm(self, epoch: int) -> bytes | None:
        account_key = self.epochs.get(epoch)
        return None if account_key is None else keys.items_ikm(account_key, self.user_id)

    @property
    def public_key(self) -> str:
        return keys.b64u(keys.spki(self.device_key))

    def to_json(self) -> dict:
        return {"v": 1, "url": self.url, "device": self.device, "user_id": self.user_id,
                "device_key": keys.b64u(keys.pkcs8(self.device_key)),
                "epochs": {str(epoch): keys.b64u(key) for epoch, key in sorted(self.epochs.items())},
                "recovery_public_key": self.recovery_public_key,
                "seen": dict(list(self.seen.items())[-MAX_SEEN:])}

    @classmethod
    def from_json(cls, data: dict) -> "Keystore":
        return cls(url=data["url"], device=data["device"], user_id=int(data["user_id"]),
                   device_key=keys.load_pkcs8(keys.unb64u(data["device_key"])),
                   epochs={int(epoch): keys.unb64u(key) for epoch, key in data["epochs"].items()},
                   recovery_public_key=data.get("recovery_public_key"),
                   seen={str(key): int(value) for key, value in (data.get("seen") or {}).items()})

    def save(self) -> Path:
        with _SAVING:  # the agent saves from worker threads
            return write_private(keystore_path(), (json.dumps(self.to_json(), indent=1) + "\n").encode())


def load_keystore(url: str) -> Keystore | None:
    """This computer's keys for the server at `url`, or None if it has none."""
    path = keystore_path()
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as error:
        raise ClientError(USAGE, f"cannot read {path} ({error}); without it this computer cannot read the "
                                 "encrypted buffer: restore it, or delete it and run `cloudbuffer e2e recover`") from None
    try:
        store = Keystore.from_json(data)
    except (KeyError, TypeError, ValueError, AttributeError):
        raise ClientError(USAGE, f"{path} is damaged; restore it, or delete it and run `cloudbuffer e2e recover`") from None
    return store if store.url == url.rstrip("/") else None


def forget_keystore() -> bool:
    try:
        keystore_path().unlink()
        return True
    except FileNotFoundError:
        return False
