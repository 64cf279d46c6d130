"""An encrypted item's three blobs (docs/e2e.md): the key blob under IKM_e
(keyid = the epoch), the meta blob and the body under the item's own key."""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass

from . import ece, keys

MAX_META_CHARS = 6144  # the meta blob, b64u-encoded, rides in a header both ways


class SealedError(ValueError):
    """An item this device cannot open: no key for its epoch, or not ours."""


@dataclass(frozen=True)
class Sealed:
    """What a write sends: the headers' two blobs, and the body's key."""
    item_key: bytes
    key_blob: str | None  # None for share links: their key goes in the URL fragment
    meta_blob: str

    def headers(self, kind: str) -> dict[str, str]:
        headers = {"X-Encrypted": "aes128gcm", "X-Encrypted-Meta": self.meta_blob, "X-Data-Type": kind,
                   "Content-Type": "application/octet-stream"}
        if self.key_blob is not None:
            headers["X-Encrypted-Key"] = self.key_blob
        return headers


@dataclass(frozen=True)
class Opened:
    item_key: bytes
    id: str | None
    created: int | None
    meta: dict

    @property
    def kind(self) -> str:
        return self.meta.get("kind") if self.meta.get("kind") in ("text", "file") else "file"

    @property
    def name(self) -> str | None:
        name = self.meta.get("name")
        return name if isinstance(name, str) else None

    @property
    def mime(self) -> str | None:
        mime = self.meta.get("mime")
        return mime if isinstance(mime, str) else None

    @property
    def size(self) -> int | None:
        size = self.meta.get("size")
        return size if isinstance(size, int) else None


def _meta(kind: str, size: int | None, name: str | None, mime: str | None) -> dict:
    meta = {"v": 1, "kind": kind}
    if size is not None:
        meta["size"] = size
    if kind == "file":
        meta["name"] = name or "file"
        meta["mime"] = mime or "application/octet-stream"
    return meta


def _meta_blob(item_key: bytes, meta: dict) -> str:
    blob = keys.b64u(ece.encrypt(json.dumps(meta, ensure_ascii=False).encode(), item_key))
    if len(blob) > MAX_META_CHARS and "name" in meta:
        # Only a very long name can pass the limit: shorten it, keeping the extension.
        stem, dot, ext = meta["name"].rpartition(".")
        meta = {**meta, "name": (stem[:200] + dot + ext[:20]) if dot else meta["name"][:200]}
        blob = keys.b64u(ece.encrypt(json.dumps(meta, ensure_ascii=False).encode(), item_key))
    return blob


def seal(ikm: bytes | None, epoch: int | None, kind: str, size: int | None,
         name: str | None = None, mime: str | None = None) -> Sealed:
    """Fresh key, id and blobs for one item. `size` may be None when the
    plaintext's length is not known before it is streamed (stdin)."""
    item_key = os.urandom(keys.ITEM_KEY_BYTES)
    key_blob = None
    if ikm is not None:
        inner = {"v": 1, "key": keys.b64u(item_key), "id": os.urandom(16).hex(), "created": int(time.time() * 1000)}
        key_blob = keys.b64u(ece.encrypt(json.dumps(inner).encode(), ikm, str(epoch).encode()))
    return Sealed(item_key, key_blob, _meta_blob(item_key, _meta(kind, size, name, mime)))


def epoch_of(key_blob: str) -> int:
    """The epoch a key blob is under, from its keyid, without opening it."""
    try:
        header = ece.parse_header(keys.unb64u(key_blob))
        return int(header.keyid.decode("ascii"))
    except (AttributeError, ValueError, UnicodeDecodeError, keys.KeyMaterialError, ece.CiphertextError):
        raise SealedError("not an item key blob") from None


def open_meta(item_key: bytes, meta_blob: str) -> dict:
    try:
        meta = json.loads(ece.decrypt(keys.unb64u(meta_blob), item_key))
    except (ece.CiphertextError, keys.KeyMaterialError, ValueError):
        raise SealedError("the item's details do not open with its key") from None
    if not isinstance(meta, dict):
        raise SealedError("the item's details are not an object")
    return meta


def open_item(key_blob: str, meta_blob: str, ikm_for) -> Opened:
    """`ikm_for(epoch) -> bytes | None` gives IKM_e for the blob's epoch."""
    epoch = epoch_of(key_blob)
    ikm = ikm_for(epoch)
    if ikm is None:
        raise SealedError(f"this device has no key for epoch {epoch} (was it revoked before that item?)")
    try:
        inner = json.loads(ece.decrypt(keys.unb64u(key_blob), ikm))
        item_key = keys.unb64u(inner["key"])
    except (ece.CiphertextError, keys.KeyMaterialError, ValueError, KeyError, TypeError):
        raise SealedError(f"the item's key does not open with this account's key of epoch {epoch}") from None
    if len(item_key) != keys.ITEM_KEY_BYTES:
        raise SealedError("an item key is 16 bytes")
    return Opened(item_key, inner.get("id") if isinstance(inner.get("id"), str) else None,
                  inner.get("created") if isinstance(inner.get("created"), int) else None,
                  open_meta(item_key, meta_blob))

