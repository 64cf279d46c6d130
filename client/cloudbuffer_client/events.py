"""Live `buffer` events of an encrypted account, opened on this device:
the same shape as a plaintext account's (`kind`, `filename`, `mime`,
`size`, `text` for an inline text), so `watch` and the agent treat both
alike. Opening may fetch this device's wraps, so it runs off the event loop."""
from __future__ import annotations

import asyncio

from . import ece, keys, sealed
from .vault import Vault


def open_event_sync(event: dict, vault: Vault) -> tuple[dict, bytes | None]:
    """(the event with its details decrypted, the item key); an event this
    device cannot open says why in `undecryptable`."""
    shown = {key: value for key, value in event.items() if key not in ("key", "meta", "ciphertext")}
    if not vault.enrolled:
        shown["undecryptable"] = "this computer has no key (`cloudbuffer pair`)"
        return shown, None
    try:
        opened = sealed.open_item(event.get("key") or "", event.get("meta") or "", vault.ikm)
        shown["kind"] = opened.kind
        if opened.size is not None:
            shown["size"] = opened.size
        if opened.kind == "file":
            shown["filename"], shown["mime"] = opened.name, opened.mime
        if opened.kind == "text" and event.get("ciphertext"):
            shown["text"] = ece.decrypt(keys.unb64u(event["ciphertext"]), opened.item_key).decode("utf-8", "replace")
    except (sealed.SealedError, ece.CiphertextError, keys.KeyMaterialError) as error:
        shown["undecryptable"] = str(error)
        return shown, None
    if vault.replayed(opened.id, event.get("seq")):
        shown["replayed"] = True
    vault.save_seen()
    return shown, opened.item_key


async def open_event(event: dict, vault: Vault) -> tuple[dict, bytes | None]:
    if event.get("encrypted") != "aes128gcm":
        return event, None
    return await asyncio.to_thread(open_event_sync, event, vault)
