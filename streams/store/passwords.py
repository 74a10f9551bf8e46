"""Password hashes: scrypt (memory-hard, in the standard library), parameters kept in the hash.

Format: ``scrypt$N$r$p$<salt b64>$<hash b64>``. Verification is constant-time and
re-derives with the stored parameters, so they can be raised later without
invalidating old hashes.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

__all__ = ["MIN_PASSWORD_CHARS", "hash_password", "verify_password"]

MIN_PASSWORD_CHARS = 8
_N, _R, _P = 2**15, 8, 1  # 32 MiB of memory per hash
_DKLEN = 32
_MAXMEM = 256 * 1024 * 1024


def _derive(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(password.encode("utf-8"), salt=salt, n=n, r=r, p=p, dklen=_DKLEN, maxmem=_MAXMEM)


def hash_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_CHARS:
        raise ValueError(f"a password needs at least {MIN_PASSWORD_CHARS} characters")
    salt = secrets.token_bytes(16)
    digest = _derive(password, salt, _N, _R, _P)
    b64 = base64.b64encode
    return f"scrypt${_N}${_R}${_P}${b64(salt).decode()}${b64(digest).decode()}"


def verify_password(password: str, stored: str | None) -> bool:
    """True when ``password`` matches ``stored``. With ``stored=None`` (no such user) it does
    the same work and returns False, so response time does not reveal which names exist."""
    try:
        scheme, n, r, p, salt, digest = (stored or "").split("$")
        if scheme != "scrypt":
            raise ValueError(scheme)
        expected = base64.b64decode(digest, validate=True)
        actual = _derive(password, base64.b64decode(salt, validate=True), int(n), int(r), int(p))
    except ValueError:
        _derive(password, b"\0" * 16, _N, _R, _P)
        return False
    return hmac.compare_digest(expected, actual)
