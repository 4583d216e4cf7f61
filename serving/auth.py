"""API keys: `X-API-Key`, checked against the SHA-256 digests in `Settings.api_keys`.

`api_keys` is a comma-separated list of `<sha256 hex of the key>:<scope>`; scope `read` may
look up and export, `write` may also register definitions. Only digests are configured, so the
settings never hold a usable key.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Literal

from fastapi import HTTPException, status

Scope = Literal["read", "write"]
GRANTS: dict[str, set[str]] = {"read": {"read"}, "write": {"read", "write"}}


def parse_api_keys(text: str) -> dict[str, Scope]:
    """`sha256hex:scope,…` as {digest: scope}; raises ValueError naming the bad entry."""
    keys: dict[str, Scope] = {}
    for i, entry in enumerate(e.strip() for e in text.split(",") if e.strip()):
        digest, _, scope = entry.partition(":")
        if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest.lower()):
            raise ValueError(f"api_keys.{i}: {digest[:8]}… is not a SHA-256 hex digest")
        if scope not in GRANTS:
            raise ValueError(f"api_keys.{i}: scope must be read or write, not {scope!r}")
        keys[digest.lower()] = scope  # type: ignore[assignment]
    return keys


def key_digest(api_key: str) -> str:
    return hashlib.sha256(api_key.encode()).hexdigest()


class KeyChecker:
    def __init__(self, api_keys: str, disabled: bool):
        self.keys = parse_api_keys(api_keys)
        self.disabled = disabled

    def check(self, api_key: str | None, needed: Scope) -> None:
        """401 without a known key, 403 when the key's scope does not grant `needed`."""
        if self.disabled:
            return
        if not api_key:
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, "X-API-Key: header missing")
        digest = key_digest(api_key)
        scope = next((s for d, s in self.keys.items() if hmac.compare_digest(d, digest)), None)
        if scope is None:
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, "X-API-Key: unknown key")
        if needed not in GRANTS[scope]:
            raise HTTPException(
                status.HTTP_403_FORBIDDEN, f"X-API-Key: a {scope} key cannot {needed}"
            )
