"""Who may do what: users with scrypt-hashed passwords, bearer tokens, API keys, and the three API roles.

Users, roles and API keys live in `system.db` in the data directory (the engine's own catalogue,
never ATTACHed to user sessions). Tokens live in memory only: a restart logs everyone out.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import threading
from collections import deque
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path

import apsw

from .clock import Clock
from .errors import EngineError, InvalidInput, NotFound

TOKEN_TTL_SECONDS = 3600
REFRESH_TTL_SECONDS = 7 * 86400
LOGIN_FAILURES_ALLOWED = 5
LOGIN_WINDOW_SECONDS = 60.0
API_KEY_PREFIX = "rdb_"
_SCRYPT = {"n": 2**14, "r": 8, "p": 1, "dklen": 32}


class ApiRole(IntEnum):
    MONITOR = 1
    OPERATOR = 2
    ADMIN = 3

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def parse(cls, value: str) -> ApiRole:
        try:
            return cls[value.upper()]
        except KeyError:
            raise InvalidInput(f"role must be one of monitor, operator, admin (got {value!r})", field="role") from None


# RustyDB's seeded roles plus the API's; a user's API role is the highest any of its roles grants.
SEEDED_ROLES = (
    ("admin", ["ALL"], "Full administrative access", ApiRole.ADMIN),
    ("readonly", ["SELECT"], "Read-only access", ApiRole.MONITOR),
    ("monitor", ["SELECT"], "Watch everything, change nothing", ApiRole.MONITOR),
    ("operator", ["SELECT"], "Monitor plus cancel, terminate, acknowledge, maintenance, backup", ApiRole.OPERATOR),
)
_API_ROLE_OF = {name: api for name, _, _, api in SEEDED_ROLES}


class Unauthorized(EngineError):
    code = "UNAUTHORIZED"


class Forbidden(EngineError):
    code = "FORBIDDEN"


class RateLimited(EngineError):
    code = "RATE_LIMITED"


@dataclass(frozen=True)
class Principal:
    name: str
    role: ApiRole
    via: str  # "token" or "api_key"
    user_id: int | None = None


@dataclass
class _Token:
    principal: Principal
    expires_at: float
    refresh_hash: str
    refresh_expires_at: float


@dataclass(frozen=True)
class IssuedToken:
    token: str
    refresh_token: str
    expires_at: float
    principal: Principal


def hash_password(password: str, salt: bytes | None = None) -> str:
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, **_SCRYPT)
    return f"scrypt${salt.hex()}${digest.hex()}"


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, salt_hex, digest_hex = stored.split("$")
    except ValueError:
        return False
    if scheme != "scrypt":
        return False
    digest = hashlib.scrypt(password.encode(), salt=bytes.fromhex(salt_hex), **_SCRYPT)
    return hmac.compare_digest(digest.hex(), digest_hex)


def _secret_hash(secret: str) -> str:
    # tokens and keys are long random strings, so a fast hash is enough; only the hash is kept
    return hashlib.sha256(secret.encode()).hexdigest()


class AuthService:
    def __init__(self, data_dir: Path, clock: Clock) -> None:
        self._clock = clock
        self._mutex = threading.RLock()
        self._db = apsw.Connection(str(data_dir / "system.db"))
        self._db.set_busy_timeout(5000)
        self._db.execute("""
            PRAGMA journal_mode=WAL;
            CREATE TABLE IF NOT EXISTS roles(role_id INTEGER PRIMARY KEY, role_name TEXT UNIQUE NOT NULL,
                permissions TEXT NOT NULL, description TEXT, created_at INTEGER NOT NULL);
            CREATE TABLE IF NOT EXISTS users(user_id INTEGER PRIMARY KEY, username TEXT UNIQUE NOT NULL,
                password_hash TEXT, roles TEXT NOT NULL, enabled INTEGER NOT NULL,
                created_at INTEGER NOT NULL, last_login INTEGER);
            CREATE TABLE IF NOT EXISTS api_keys(key_id INTEGER PRIMARY KEY, key_hash TEXT UNIQUE NOT NULL,
                role TEXT NOT NULL, description TEXT, created_at INTEGER NOT NULL, last_used INTEGER);
        """).fetchall()  # a cursor steps lazily past a row-returning PRAGMA: drain it so every statement runs
        with self._db:
            for role_id, (name, perms, desc, _) in enumerate(SEEDED_ROLES, start=1):
                self._db.execute("INSERT OR IGNORE INTO roles VALUES(?,?,?,?,0)",
                                 (role_id, name, json.dumps(perms), desc))
        self._tokens: dict[str, _Token] = {}
        self._failures: dict[str, deque[float]] = {}

    def close(self) -> None:
        self._db.close()

    # -- bootstrap ---------------------------------------------------------------------------

    def ensure_admin(self, password: str | None) -> str | None:
        """Create the `admin` user on first start; return a generated password (shown once) if one was made."""
        with self._mutex:
            if self._db.execute("SELECT 1 FROM users WHERE username='admin'").fetchone():
                return None
            generated = None
            if not password:
                password = generated = secrets.token_urlsafe(18)
            with self._db:
                self._db.execute("INSERT INTO users(username,password_hash,roles,enabled,created_at) "
                                 "VALUES('admin',?,?,1,?)",
                                 (hash_password(password), json.dumps(["admin"]), int(self._clock.time())))
            return generated

    def create_api_key(self, role: str | ApiRole, description: str | None = None) -> str:
        api_role = role if isinstance(role, ApiRole) else ApiRole.parse(role)
        key = API_KEY_PREFIX + secrets.token_urlsafe(32)
        with self._mutex, self._db:
            self._db.execute("INSERT INTO api_keys(key_hash,role,description,created_at) VALUES(?,?,?,?)",
                             (_secret_hash(key), api_role.label, description, int(self._clock.time())))
        return key

    # -- login and tokens --------------------------------------------------------------------

    def login(self, username: str, password: str, client: str) -> IssuedToken:
        now = self._clock.monotonic()
        with self._mutex:
            recent = self._failures.setdefault(client, deque())
            while recent and recent[0] < now - LOGIN_WINDOW_SECONDS:
                recent.popleft()
            if len(recent) >= LOGIN_FAILURES_ALLOWED:
                raise RateLimited("Too many failed logins from this address. Please try again later.",
                                  retry_after=int(recent[0] + LOGIN_WINDOW_SECONDS - now) + 1)
            row = self._db.execute("SELECT user_id, password_hash, roles, enabled FROM users WHERE username=?",
                                   (username,)).fetchone()
        ok = row is not None and row[3] and row[1] is not None and verify_password(password, row[1])
        if not ok:
            with self._mutex:
                self._failures[client].append(now)
            raise Unauthorized("Invalid username or password")
        user_id, _, roles, _ = row
        with self._mutex, self._db:
            self._db.execute("UPDATE users SET last_login=? WHERE user_id=?", (int(self._clock.time()), user_id))
        return self._issue(Principal(username, self.api_role_of(json.loads(roles)), "token", user_id))

    def _issue(self, principal: Principal) -> IssuedToken:
        token, refresh = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        now = self._clock.time()
        with self._mutex:
            self._purge_expired(now)
            self._tokens[_secret_hash(token)] = _Token(principal, now + TOKEN_TTL_SECONDS, _secret_hash(refresh),
                                                       now + REFRESH_TTL_SECONDS)
        return IssuedToken(token, refresh, now + TOKEN_TTL_SECONDS, principal)

    def _purge_expired(self, now: float) -> None:
        for key in [k for k, t in self._tokens.items() if t.refresh_expires_at < now]:
            del self._tokens[key]

    def logout(self, token: str) -> None:
        with self._mutex:
            self._tokens.pop(_secret_hash(token), None)

    def refresh(self, token: str | None, refresh_token: str | None) -> IssuedToken:
        """Trade a refresh token (or a still-valid token) for a new pair; the old pair stops working."""
        now = self._clock.time()
        with self._mutex:
            for key, t in list(self._tokens.items()):
                by_refresh = refresh_token is not None and hmac.compare_digest(t.refresh_hash, _secret_hash(refresh_token))
                by_token = token is not None and key == _secret_hash(token) and t.expires_at > now
                if (by_refresh and t.refresh_expires_at > now) or by_token:
                    del self._tokens[key]
                    return self._issue(t.principal)
        raise Unauthorized("Invalid or expired refresh token")

    def revoke_user(self, user_id: int) -> int:
        with self._mutex:
            keys = [k for k, t in self._tokens.items() if t.principal.user_id == user_id]
            for k in keys:
                del self._tokens[k]
        return len(keys)

    # -- checking credentials ----------------------------------------------------------------

    def authenticate(self, bearer: str | None, api_key: str | None) -> Principal:
        if bearer and bearer.startswith(API_KEY_PREFIX):
            # an API key sent as a bearer token: what Prometheus' credentials_file can send
            bearer, api_key = None, bearer
        if bearer:
            with self._mutex:
                t = self._tokens.get(_secret_hash(bearer))
            if t is None or t.expires_at <= self._clock.time():
                raise Unauthorized("Invalid or expired token")
            return t.principal
        if api_key:
            with self._mutex:
                row = self._db.execute("SELECT key_id, role FROM api_keys WHERE key_hash=?",
                                       (_secret_hash(api_key),)).fetchone()
                if row is None:
                    raise Unauthorized("Invalid API key")
                self._db.execute("UPDATE api_keys SET last_used=? WHERE key_id=?", (int(self._clock.time()), row[0]))
            return Principal(f"apikey-{row[0]}", ApiRole.parse(row[1]), "api_key")
        raise Unauthorized("Authentication required. Please provide a valid JWT token or API key.")

    def token_valid(self, bearer: str | None) -> bool:
        try:
            return bearer is not None and self.authenticate(bearer, None) is not None
        except Unauthorized:
            return False

    def api_role_of(self, roles: list[str]) -> ApiRole:
        granted = [_API_ROLE_OF[r] for r in roles if r in _API_ROLE_OF]
        if not granted:
            with self._mutex:
                rows = self._db.execute("SELECT permissions FROM roles WHERE role_name IN (%s)"
                                        % ",".join("?" * len(roles)), roles).fetchall() if roles else []
            perms = {p for (js,) in rows for p in json.loads(js)}
            granted = [ApiRole.ADMIN] if "ALL" in perms else [ApiRole.MONITOR] if perms else []
        if not granted:
            raise Forbidden("user has no role that grants API access")
        return max(granted)

    def user(self, username: str) -> dict[str, object]:
        row = self._db.execute("SELECT user_id, username, roles, enabled FROM users WHERE username=?",
                               (username,)).fetchone()
        if row is None:
            raise NotFound(f"User {username} not found")
        return {"user_id": row[0], "username": row[1], "roles": json.loads(row[2]), "enabled": bool(row[3])}
