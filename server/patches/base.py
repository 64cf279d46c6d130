"""What a patch is, and applying patches so that a failed check never crashes."""
from __future__ import annotations

import hashlib
import inspect
import logging
from dataclasses import dataclass, field
from importlib.metadata import version
from typing import Any, Callable

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Patch:
    name: str
    # library -> the version this patch was checked against (pinned in pyproject.toml)
    checked_against: dict[str, str]
    # What is not as checked, or None when the patch can be applied.
    problem: Callable[[], str | None]
    apply: Callable[[Any], None] = field(repr=False)


def source_digest(obj: Any) -> str:
    """A short digest of `obj`'s source: a patch that replaces a copy of
    library code compares it with the digest of the code it copied."""
    return hashlib.sha256(inspect.getsource(obj).encode()).hexdigest()[:16]


def changed_source(expected: dict[str, str], objects: dict[str, Any]) -> str | None:
    """The first of `objects` whose source is not the one that was copied."""
    for name, obj in objects.items():
        try:
            digest = source_digest(obj)
        except (OSError, TypeError):
            return f"the source of {name} cannot be read"
        if digest != expected[name]:
            return f"{name} is not the code this patch copied"
    return None


def missing_attributes(owner: Any, names: tuple[str, ...], label: str) -> str | None:
    for name in names:
        if not hasattr(owner, name):
            return f"{label} has no {name}"
    return None


def apply_patches(patches: tuple[Patch, ...], target: Any, disabled: tuple[str, ...]) -> dict[str, bool]:
    """Apply each patch not in `disabled` whose preconditions hold; returns
    which were applied. A failed check is one warning line, never an error."""
    applied = {}
    for patch in patches:
        if patch.name in disabled:
            applied[patch.name] = False
            continue
        try:
            problem = patch.problem()
        except Exception as error:  # noqa: BLE001 - a check that cannot even run means "not as checked"
            problem = f"its check failed ({type(error).__name__})"
        if problem is None:
            patch.apply(target)
            applied[patch.name] = True
            continue
        installed = ", ".join(f"{lib} {_installed(lib)}" for lib in patch.checked_against)
        checked = ", ".join(f"{lib} {v}" for lib, v in patch.checked_against.items())
        log.warning("patch %s left off, running as the library ships: %s (installed %s; checked against %s)",
                    patch.name, problem, installed, checked)
        applied[patch.name] = False
    return applied


def _installed(library: str) -> str:
    try:
        return version(library)
    except Exception:  # noqa: BLE001 - only for the warning line
        return "?"
