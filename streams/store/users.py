"""Console users (roles viewer / reviewer / admin) and their login sessions.

Sessions are server-side: the browser's cookie holds a random token, the
``sessions`` table only its SHA-256, so a copy of the database opens no
session. Each session has its own CSRF token and a fixed expiry.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

from streams.store.errors import StoreError
from streams.store.passwords import hash_password, verify_password
from streams.store.roles import Role

__all__ = [
    "Role",
    "Session",
    "User",
    "add_user",
    "authenticate",
    "create_session",
    "delete_session",
    "list_users",
    "load_session",
    "validate_username",
]

_USERNAME = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")


@dataclass(frozen=True, slots=True)
class User:
    username: str
    role: Role


@dataclass(frozen=True, slots=True)
class Session:
    user: User
    csrf_token: str
    expires_at: datetime


def validate_username(name: str) -> str:
    if not _USERNAME.match(name):
        raise StoreError(f"user name {name!r}: 1-64 letters, digits or _ . @ -")
    return name


def add_user(
    conn: psycopg.Connection[Any], name: str, role: Role, password: str, *, replace: bool = False
) -> None:
    """Create a user (``replace``: or reset an existing user's role and password)."""
    validate_username(name)
    try:
        hashed = hash_password(password)
    except ValueError as exc:
        raise StoreError(str(exc)) from exc
    conflict = (
        "DO UPDATE SET role = excluded.role, password_hash = excluded.password_hash"
        if replace
        else "DO NOTHING"
    )
    with conn.transaction():
        cursor = conn.execute(
            f"INSERT INTO users (username, role, password_hash) VALUES (%s, %s, %s) "  # noqa: S608 - fixed text
            f"ON CONFLICT (username) {conflict} RETURNING username",
            (name, role.value, hashed),
        )
        if cursor.fetchone() is None:
            raise StoreError(f"user {name!r} exists (use --replace to reset the role and password)")
        if replace:  # a new password ends the user's open sessions
            conn.execute("DELETE FROM sessions WHERE username = %s", (name,))


def list_users(conn: psycopg.Connection[Any]) -> list[tuple[str, str, datetime, bool]]:
    cursor = conn.execute("SELECT username, role, created_at, disabled FROM users ORDER BY username")
    return [(r[0], r[1], r[2], r[3]) for r in cursor.fetchall()]


async def authenticate(conn: psycopg.AsyncConnection[Any], name: str, password: str) -> User | None:
    cursor = await conn.execute(
        "SELECT role, password_hash FROM users WHERE username = %s AND NOT disabled", (name,)
    )
    row = await cursor.fetchone()
    ok = await asyncio.to_thread(verify_password, password, row[1] if row else None)
    return User(name, Role(row[0])) if ok and row else None


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def create_session(conn: psycopg.AsyncConnection[Any], user: User, ttl_s: float) -> tuple[str, Session]:
    """A new session for ``user``; returns the cookie token and the session."""
    token = secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(32)
    async with conn.transaction():
        await conn.execute("DELETE FROM sessions WHERE expires_at < now()")
        cursor = await conn.execute(
            "INSERT INTO sessions (token_hash, username, csrf_token, expires_at) "
            "VALUES (%s, %s, %s, now() + make_interval(secs => %s)) RETURNING expires_at",
            (_token_hash(token), user.username, csrf, ttl_s),
        )
        row = await cursor.fetchone()
    assert row is not None  # noqa: S101 - INSERT ... RETURNING returns its row
    return token, Session(user, csrf, row[0])


async def load_session(conn: psycopg.AsyncConnection[Any], token: str) -> Session | None:
    """The live session of a cookie token (None when unknown, expired, or the user is disabled)."""
    if not token or len(token) > 128:
        return None
    cursor = await conn.execute(
        "SELECT u.username, u.role, s.csrf_token, s.expires_at FROM sessions s "
        "JOIN users u ON u.username = s.username "
        "WHERE s.token_hash = %s AND s.expires_at > now() AND NOT u.disabled",
        (_token_hash(token),),
    )
    row = await cursor.fetchone()
    return Session(User(row[0], Role(row[1])), row[2], row[3]) if row else None


async def delete_session(conn: psycopg.AsyncConnection[Any], token: str) -> None:
    await conn.execute("DELETE FROM sessions WHERE token_hash = %s", (_token_hash(token),))
