"""Who may do what: users with scrypt-hashed passwords, bearer tokens, API keys, and the three API roles.

Users, roles and API keys live in `system.db` in the data directory (the engine's own catalogue,
never ATTACHed to user sessions). Tokens live in memory only: a restart logs everyone out. A
login's chain of refreshes ends refresh_max_age_secs after the login; failed logins slow further
attempts per user and per address (LoginThrottle).
Users and roles are managed with RustyDB's messages; a change that could lower what a user may do
(disable, delete, new roles, new password, rename) revokes the user's tokens at once, and every
change is audited (never a password).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import math
import re
import secrets
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path

import apsw

from .audit import audit
from .clock import Clock
from .config import EngineConfig
from .errors import Conflict, EngineError, InvalidInput, InvalidRequest, NotFound, StorageFailure, StorageFull
from .system_db import open_system_db, write

log = logging.getLogger("engine.auth")

API_KEY_PREFIX = "rdb_"
API_KEY_SHOWN_CHARS = 8  # of the random part: the prefix a key is listed and revoked by
KEY_USE_RECORD_SECONDS = 60.0
LOGIN_DELAY_BASE_SECONDS = 1.0
LOGIN_FORGET_SECONDS = 900.0  # failures older than this (and no wait left) are forgotten
LOGIN_TRACKED_MAX = 10_000  # users and addresses with failures remembered at once; the oldest go first
# scrypt's cost: 16 MiB and tens of milliseconds per check, on purpose (every login pays it, see _NO_USER_HASH)
SCRYPT_PARAMS = {"n": 2**14, "r": 8, "p": 1, "dklen": 32}


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
# RustyDB's permission names (compared upper-cased); a custom role with ALL grants the admin API role.
PERMISSIONS = ("SELECT", "INSERT", "UPDATE", "DELETE", "CREATE", "DROP", "ALTER", "INDEX", "EXECUTE", "ALL")
USERNAME_MIN, USERNAME_MAX = 3, 64
ROLE_NAME_MAX = 64
# what a name may not contain: it is written to the log and the audit trail, so no line breaks or control codes
NAME_FORBIDDEN = "\\x00-\\x1f\\x7f-\\x9f\\u2028\\u2029"
_FORBIDDEN_IN_NAME = re.compile(f"[{NAME_FORBIDDEN}]")
API_KEY_DESCRIPTION_MAX = 1000


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


@dataclass(frozen=True)
class _Token:
    principal: Principal
    expires_at: float
    refresh_hash: str
    login_at: float  # the chain of refreshes started here and ends at login_at + refresh_max_age_secs
    chain_ends_at: float


@dataclass(frozen=True)
class ApiKeyRecord:
    key_id: int
    prefix: str | None  # None for a key made before prefixes were kept: revoke it by key_id
    role: ApiRole
    description: str | None
    created_at: int
    last_used: int | None


@dataclass(frozen=True)
class UserRecord:
    user_id: int
    username: str
    roles: tuple[str, ...]
    enabled: bool
    created_at: int
    last_login: int | None
    has_password: bool
    api_role: ApiRole | None  # None: no role grants API access


@dataclass(frozen=True)
class RoleRecord:
    role_id: int
    role_name: str
    permissions: tuple[str, ...]
    description: str | None
    created_at: int
    built_in: bool
    api_role: ApiRole | None


@dataclass(frozen=True)
class IssuedToken:
    token: str
    refresh_token: str
    expires_at: float
    principal: Principal


def hash_password(password: str, salt: bytes | None = None) -> str:
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, **SCRYPT_PARAMS)
    return f"scrypt${salt.hex()}${digest.hex()}"


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, salt_hex, digest_hex = stored.split("$")
    except ValueError:
        return False
    if scheme != "scrypt":
        return False
    digest = hashlib.scrypt(password.encode(), salt=bytes.fromhex(salt_hex), **SCRYPT_PARAMS)
    return hmac.compare_digest(digest.hex(), digest_hex)


# Checked against when the user is unknown, disabled or has no password, so that every failed login
# costs the one scrypt a real check costs and its timing does not tell which usernames exist.
_NO_USER_HASH = "scrypt$75ded8fb1eaaedf9673e316b2d013903$35dd6c2c6d30a1e195038026db1f4c17b2d81c68a5e81da15a0caaa7d4de66c8"


def key_prefix(key: str) -> str:
    """The part of an API key it is listed and revoked by."""
    return key[:len(API_KEY_PREFIX) + API_KEY_SHOWN_CHARS]


def _secret_hash(secret: str) -> str:
    # tokens and keys are long random strings, so a fast hash is enough; only the hash is kept
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass
class _Failures:
    count: int = 0
    wait_until: float = -math.inf
    last: float = -math.inf


@dataclass(frozen=True)
class _Attempt:
    """A login attempt in flight, counted as a failure until it succeeds."""

    keys: tuple[str, str]  # the user's, the address's
    delays: tuple[float, float]  # the wait each key's count calls for after this attempt (0: none yet)
    address_wait_before: float


class LoginThrottle:
    """Failed logins slow further attempts, per user and per client address.

    Each user and each address may fail `free` times; from then on every attempt must wait
    1 s, 2 s, 4 s ... (doubling with each further failure, up to `cap` seconds) after the previous
    failure, and an attempt made sooner is refused with the time left (429, Retry-After) without
    checking the password or counting. A success clears the user's failures; failures are
    forgotten after 15 minutes without one. An attempt counts as a failure from the moment it
    starts, under one lock, so concurrent guesses cannot all slip in before the first is counted.
    """

    def __init__(self, monotonic: Callable[[], float], free: Callable[[], int], cap: Callable[[], float]) -> None:
        self._monotonic = monotonic
        self._free = free
        self._cap = cap
        self._mutex = threading.Lock()
        self._failures: OrderedDict[str, _Failures] = OrderedDict()

    def begin(self, username: str, address: str) -> _Attempt:
        now = self._monotonic()
        keys = (f"user:{username.casefold()}", f"address:{address}")
        with self._mutex:
            self._forget(now)
            wait = max((st.wait_until for st in map(self._failures.get, keys) if st is not None), default=-math.inf)
            if wait > now:
                raise RateLimited("Too many failed logins for this user or from this address. Please try again "
                                  "later.", retry_after=math.ceil(wait - now))
            states = [self._failures.setdefault(k, _Failures()) for k in keys]
            address_before = states[1].wait_until
            delays = []
            for key, st in zip(keys, states):
                st.count += 1
                st.last = now
                over = st.count - self._free()
                delays.append(0.0 if over < 0 else min(LOGIN_DELAY_BASE_SECONDS * 2 ** over, self._cap()))
                if delays[-1]:
                    st.wait_until = max(st.wait_until, now + delays[-1])
                self._failures.move_to_end(key)
            return _Attempt(keys, (delays[0], delays[1]), address_before)

    def failed(self, attempt: _Attempt) -> None:
        """The wait runs from the failure's answer, not its start: a slow check must not eat into it."""
        now = self._monotonic()
        with self._mutex:
            for key, delay in zip(attempt.keys, attempt.delays):
                st = self._failures.get(key)
                if st is not None and delay:
                    st.wait_until = max(st.wait_until, now + delay)

    def succeeded(self, attempt: _Attempt) -> None:
        """The attempt was no failure: the user starts afresh, the address loses this one count."""
        user_key, address_key = attempt.keys
        with self._mutex:
            self._failures.pop(user_key, None)
            address = self._failures.get(address_key)
            if address is None:
                return
            address.count -= 1
            if attempt.delays[1]:
                address.wait_until = attempt.address_wait_before
            if address.count <= 0:
                del self._failures[address_key]

    def _forget(self, now: float) -> None:
        while self._failures:
            key, oldest = next(iter(self._failures.items()))
            stale = oldest.last < now - LOGIN_FORGET_SECONDS and oldest.wait_until <= now
            if not stale and len(self._failures) < LOGIN_TRACKED_MAX:
                return
            del self._failures[key]


class AuthService:
    def __init__(self, data_dir: Path, clock: Clock, config: Callable[[], EngineConfig] | None = None) -> None:
        self._clock = clock
        fixed = EngineConfig()
        self._config = config or (lambda: fixed)
        self._mutex = threading.RLock()
        self._db = open_system_db(data_dir)
        self._db.execute("""
            CREATE TABLE IF NOT EXISTS roles(role_id INTEGER PRIMARY KEY, role_name TEXT UNIQUE NOT NULL,
                permissions TEXT NOT NULL, description TEXT, created_at INTEGER NOT NULL);
            CREATE TABLE IF NOT EXISTS users(user_id INTEGER PRIMARY KEY, username TEXT UNIQUE NOT NULL,
                password_hash TEXT, roles TEXT NOT NULL, enabled INTEGER NOT NULL,
                created_at INTEGER NOT NULL, last_login INTEGER);
            CREATE TABLE IF NOT EXISTS api_keys(key_id INTEGER PRIMARY KEY, key_hash TEXT UNIQUE NOT NULL,
                role TEXT NOT NULL, description TEXT, created_at INTEGER NOT NULL, last_used INTEGER);
        """)
        with write(self._db):
            columns = {name for _, name, *_ in self._db.execute("PRAGMA table_info(api_keys)")}
            if "prefix" not in columns:  # a catalogue from before keys were listed: its keys keep a null prefix
                self._db.execute("ALTER TABLE api_keys ADD COLUMN prefix TEXT")
            self._db.execute("CREATE UNIQUE INDEX IF NOT EXISTS api_keys_prefix ON api_keys(prefix)")
            for role_id, (name, perms, desc, _) in enumerate(SEEDED_ROLES, start=1):
                self._db.execute("INSERT OR IGNORE INTO roles VALUES(?,?,?,?,0)",
                                 (role_id, name, json.dumps(perms), desc))
        self._tokens: dict[str, _Token] = {}  # hash of the access token -> its login
        self._by_refresh: dict[str, str] = {}  # hash of the refresh token -> hash of its access token
        self._key_used: dict[int, float] = {}  # key id -> when its use was last recorded
        self.throttle = LoginThrottle(clock.monotonic, lambda: self._config().login_failures_allowed,
                                      lambda: self._config().login_delay_max_secs)

    def close(self) -> None:
        self._db.close()

    # -- bootstrap ---------------------------------------------------------------------------

    def ensure_admin(self, password: str | None) -> str | None:
        """Create the `admin` user on first start; return a generated password (shown once) if one was made."""
        with self._mutex:
            if self._user_id_of("admin") is not None:
                return None
        generated = None
        if not password:
            password = generated = secrets.token_urlsafe(18)
        hashed = hash_password(password)
        with self._mutex, write(self._db):
            if self._user_id_of("admin") is not None:
                return None
            self._db.execute("INSERT INTO users(username,password_hash,roles,enabled,created_at) VALUES('admin',?,?,1,?)",
                             (hashed, json.dumps(["admin"]), int(self._clock.time())))
        return generated

    def create_api_key(self, role: str | ApiRole, description: str | None = None, by: str = "local") -> str:
        """A new key, returned once: only its hash and its prefix (to list and revoke it by) are kept."""
        api_role = role if isinstance(role, ApiRole) else ApiRole.parse(role)
        if description is not None and (len(description) > API_KEY_DESCRIPTION_MAX
                                        or _FORBIDDEN_IN_NAME.search(description)):
            raise InvalidRequest(f"description must be at most {API_KEY_DESCRIPTION_MAX} characters, without "
                                 "control characters or line breaks", field="description")
        with _audited(by, "create_api_key", f"{api_role.label} key", description=description) as done:
            with self._mutex, write(self._db):
                while True:
                    key = API_KEY_PREFIX + secrets.token_urlsafe(32)
                    prefix = key_prefix(key)
                    if not self._db.execute("SELECT 1 FROM api_keys WHERE prefix=?", (prefix,)).fetchone():
                        break
                self._db.execute("INSERT INTO api_keys(key_hash,prefix,role,description,created_at) VALUES(?,?,?,?,?)",
                                 (_secret_hash(key), prefix, api_role.label, description, int(self._clock.time())))
            done["prefix"] = prefix
        return key

    def api_keys(self) -> list[ApiKeyRecord]:
        """Every key, by key_id; last_used is recorded at most once a minute per key."""
        with self._mutex:
            rows = self._db.execute("SELECT key_id, prefix, role, description, created_at, last_used FROM api_keys "
                                    "ORDER BY key_id").fetchall()
        return [ApiKeyRecord(key_id, prefix, ApiRole.parse(role), description, created_at, last_used)
                for key_id, prefix, role, description, created_at, last_used in rows]

    def revoke_api_key(self, key: str, by: str) -> ApiKeyRecord:
        """Delete a key named by its prefix or its key_id: the next request with it is refused."""
        with _audited(by, "revoke_api_key", f"key {key}") as done:
            with self._mutex, write(self._db):
                found = next((k for k in self.api_keys() if k.prefix == key or str(k.key_id) == key), None)
                if found is None:
                    raise NotFound(f"API key {key} not found", key=key)
                self._db.execute("DELETE FROM api_keys WHERE key_id=?", (found.key_id,))
                self._key_used.pop(found.key_id, None)
            done["role"] = found.role.label
        return found

    # -- login and tokens --------------------------------------------------------------------

    def login(self, username: str, password: str, client: str) -> IssuedToken:
        """A token pair for the user's password; `client` is the address the throttle counts by."""
        attempt = self.throttle.begin(username, client)
        with self._mutex:
            row = self._db.execute("SELECT user_id, password_hash, roles, enabled FROM users WHERE username=?",
                                   (username,)).fetchone()
        usable = row is not None and bool(row[3]) and row[1] is not None
        matches = verify_password(password, row[1] if usable else _NO_USER_HASH)
        if not (usable and matches):
            self.throttle.failed(attempt)
            log.warning("failed login for user %s from %s", username, client)
            raise Unauthorized("Invalid username or password")
        self.throttle.succeeded(attempt)
        user_id, _, roles, _ = row
        self._record_login(user_id, username)
        now = self._clock.time()
        return self._issue(Principal(username, self.api_role_of(json.loads(roles)), "token", user_id), now, now)

    def _record_login(self, user_id: int, username: str) -> None:
        """Bookkeeping only: a disk that cannot take last_login must not refuse a right password."""
        try:
            with self._mutex, write(self._db):
                self._db.execute("UPDATE users SET last_login=? WHERE user_id=?", (int(self._clock.time()), user_id))
        except (apsw.Error, StorageFull, StorageFailure) as exc:
            log.warning("login of %s: last_login not recorded: %s", username, exc)

    def _issue(self, principal: Principal, login_at: float, now: float) -> IssuedToken:
        token, refresh = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        config = self._config()
        chain_ends = login_at + config.refresh_max_age_secs
        expires = min(now + config.token_ttl_secs, chain_ends)
        with self._mutex:
            self._purge_expired(now)
            key = _secret_hash(token)
            self._tokens[key] = _Token(principal, expires, _secret_hash(refresh), login_at, chain_ends)
            self._by_refresh[_secret_hash(refresh)] = key
        return IssuedToken(token, refresh, expires, principal)

    def _purge_expired(self, now: float) -> None:
        for key in [k for k, t in self._tokens.items() if t.chain_ends_at <= now]:
            self._drop(key)

    def _drop(self, key: str) -> None:
        t = self._tokens.pop(key, None)
        if t is not None:
            self._by_refresh.pop(t.refresh_hash, None)

    def logout(self, token: str) -> None:
        """End the login the token (access or refresh) belongs to: its refresh token stops working too."""
        with self._mutex:
            secret = _secret_hash(token)
            self._drop(self._by_refresh.get(secret, secret))

    def refresh(self, refresh_token: str) -> IssuedToken:
        """Trade a refresh token for a new pair (the old pair stops working), until the login is
        refresh_max_age_secs old: then only a new login helps. An access token is no refresh token."""
        now = self._clock.time()
        with self._mutex:
            key = self._by_refresh.get(_secret_hash(refresh_token))
            t = None if key is None else self._tokens.get(key)
            if t is None or t.chain_ends_at <= now:
                raise Unauthorized("Invalid or expired refresh token")
            self._drop(key)
        return self._issue(t.principal, t.login_at, now)

    def revoke_user(self, user_id: int) -> int:
        with self._mutex:
            keys = [k for k, t in self._tokens.items() if t.principal.user_id == user_id]
            for k in keys:
                self._drop(k)
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
                self._note_key_use(row[0])
            return Principal(f"apikey-{row[0]}", ApiRole.parse(row[1]), "api_key")
        raise Unauthorized("Authentication required. Please provide a valid JWT token or API key.")

    def _note_key_use(self, key_id: int) -> None:
        """Record when a key was last used, at most once a minute per key and never at the cost of
        the request: a scrape every few seconds must not become a write every few seconds, and a
        busy catalogue must not turn an authorised call into an error."""
        now = self._clock.time()
        if now - self._key_used.get(key_id, -math.inf) < KEY_USE_RECORD_SECONDS:
            return
        self._key_used[key_id] = now
        try:
            self._db.execute("UPDATE api_keys SET last_used=? WHERE key_id=?", (int(now), key_id))
        except apsw.Error as exc:
            log.debug("api key %s: last use not recorded: %s", key_id, exc)

    def token_valid(self, bearer: str | None) -> bool:
        try:
            return bearer is not None and self.authenticate(bearer, None) is not None
        except Unauthorized:
            return False

    def api_role_of(self, roles: list[str]) -> ApiRole:
        role = _api_role(roles, self._permissions())
        if role is None:
            raise Forbidden("user has no role that grants API access")
        return role

    def _permissions(self) -> dict[str, list[str]]:
        with self._mutex:
            rows = self._db.execute("SELECT role_name, permissions FROM roles").fetchall()
        return {name: json.loads(perms) for name, perms in rows}

    def user(self, username: str) -> dict[str, object]:
        row = self._db.execute("SELECT user_id, username, roles, enabled FROM users WHERE username=?",
                               (username,)).fetchone()
        if row is None:
            raise NotFound(f"User {username} not found")
        return {"user_id": row[0], "username": row[1], "roles": json.loads(row[2]), "enabled": bool(row[3])}

    # -- users -------------------------------------------------------------------------------

    def users(self) -> list[UserRecord]:
        """Every user, by user_id."""
        perms = self._permissions()
        with self._mutex:
            rows = self._db.execute(f"SELECT {_USER_COLUMNS} FROM users ORDER BY user_id").fetchall()
        return [_user(row, perms) for row in rows]

    def get_user(self, user_id: int) -> UserRecord:
        perms = self._permissions()
        with self._mutex:
            row = self._db.execute(f"SELECT {_USER_COLUMNS} FROM users WHERE user_id=?", (user_id,)).fetchone()
        if row is None:
            raise NotFound(f"User {user_id} not found", user_id=user_id)
        return _user(row, perms)

    def create_user(self, username: str, password: str | None, roles: list[str], enabled: bool | None,
                    by: str) -> UserRecord:
        with _audited(by, "create_user", f"user '{username}'", roles=roles, enabled=enabled is not False) as done:
            _check_username(username)
            _check_password(password)
            roles = list(dict.fromkeys(roles))
            hashed = None if password is None else hash_password(password)  # slow: before the write lock
            with self._mutex, write(self._db):
                self._check_roles_exist(roles)
                if self._user_id_of(username) is not None:
                    raise Conflict(f"User '{username}' already exists", username=username)
                self._db.execute("INSERT INTO users(username,password_hash,roles,enabled,created_at) VALUES(?,?,?,?,?)",
                                 (username, hashed, json.dumps(roles), int(enabled is not False),
                                  int(self._clock.time())))
                user_id = self._db.last_insert_rowid()
            done["user_id"] = user_id
        return self.get_user(user_id)

    def update_user(self, user_id: int, username: str, password: str | None, roles: list[str],
                    enabled: bool | None, by: str) -> UserRecord:
        """RustyDB's full replace, except that a null password or enabled keeps the current one."""
        with _audited(by, "update_user", f"user {user_id}", username=username, roles=roles, enabled=enabled,
                      password_changed=password is not None) as done:
            _check_username(username)
            _check_password(password)
            roles = list(dict.fromkeys(roles))
            hashed = None if password is None else hash_password(password)  # slow: before the write lock
            with self._mutex, write(self._db):
                current = self.get_user(user_id)
                self._check_roles_exist(roles)
                other = self._user_id_of(username)
                if other is not None and other != user_id:
                    raise Conflict(f"User '{username}' already exists", username=username)
                enabled_after = current.enabled if enabled is None else enabled
                self._check_keeps_an_admin(current, roles if enabled_after else [])
                self._db.execute("UPDATE users SET username=?, roles=?, enabled=? WHERE user_id=?",
                                 (username, json.dumps(roles), int(enabled_after), user_id))
                if hashed is not None:
                    self._db.execute("UPDATE users SET password_hash=? WHERE user_id=?", (hashed, user_id))
            if (password is not None or not enabled_after or username != current.username
                    or tuple(roles) != current.roles):
                done["tokens_revoked"] = self.revoke_user(user_id)
        return self.get_user(user_id)

    def delete_user(self, user_id: int, by: str) -> None:
        with _audited(by, "delete_user", f"user {user_id}") as done:
            with self._mutex, write(self._db):
                current = self.get_user(user_id)
                self._check_keeps_an_admin(current, [])
                self._db.execute("DELETE FROM users WHERE user_id=?", (user_id,))
            done["username"] = current.username
            done["tokens_revoked"] = self.revoke_user(user_id)

    def _user_id_of(self, username: str) -> int | None:
        row = self._db.execute("SELECT user_id FROM users WHERE username=?", (username,)).fetchone()
        return None if row is None else row[0]

    def _check_roles_exist(self, roles: list[str]) -> None:
        known = self._permissions()
        for name in roles:
            if name not in known:
                raise NotFound(f"Role '{name}' does not exist", field="roles", role=name)

    def _check_keeps_an_admin(self, user: UserRecord, roles_after: list[str]) -> None:
        """Refuse the change that would leave no enabled user able to administer the engine."""
        perms = self._permissions()
        if not user.enabled or user.api_role is not ApiRole.ADMIN or _api_role(roles_after, perms) is ApiRole.ADMIN:
            return
        others = self._db.execute("SELECT roles FROM users WHERE enabled=1 AND user_id<>?", (user.user_id,))
        if not any(_api_role(json.loads(r), perms) is ApiRole.ADMIN for (r,) in others):
            raise Conflict(f"User '{user.username}' is the last enabled administrator; it must keep an admin role "
                           "and stay enabled", user_id=user.user_id)

    # -- roles -------------------------------------------------------------------------------

    def roles(self) -> list[RoleRecord]:
        """Every role, by role_id."""
        with self._mutex:
            rows = self._db.execute(f"SELECT {_ROLE_COLUMNS} FROM roles ORDER BY role_id").fetchall()
        return [_role(row) for row in rows]

    def get_role(self, role_id: int) -> RoleRecord:
        with self._mutex:
            row = self._db.execute(f"SELECT {_ROLE_COLUMNS} FROM roles WHERE role_id=?", (role_id,)).fetchone()
        if row is None:
            raise NotFound(f"Role {role_id} not found", role_id=role_id)
        return _role(row)

    def create_role(self, role_name: str, permissions: list[str], description: str | None, by: str) -> RoleRecord:
        with _audited(by, "create_role", f"role '{role_name}'", permissions=permissions) as done:
            _check_role_name(role_name)
            perms = _checked_permissions(permissions)
            with self._mutex, write(self._db):
                if self._role_id_of(role_name) is not None:
                    raise Conflict(f"Role '{role_name}' already exists", role_name=role_name)
                self._db.execute("INSERT INTO roles(role_name,permissions,description,created_at) VALUES(?,?,?,?)",
                                 (role_name, json.dumps(perms), description, int(self._clock.time())))
                role_id = self._db.last_insert_rowid()
            done["role_id"] = role_id
        return self.get_role(role_id)

    def update_role(self, role_id: int, role_name: str, permissions: list[str], description: str | None,
                    by: str) -> RoleRecord:
        """Replace a role; a rename follows into its users, new permissions revoke its users' tokens."""
        with _audited(by, "update_role", f"role {role_id}", role_name=role_name, permissions=permissions) as done:
            _check_role_name(role_name)
            perms = _checked_permissions(permissions)
            with self._mutex, write(self._db):
                current = self._changeable_role(role_id)
                other = self._role_id_of(role_name)
                if other is not None and other != role_id:
                    raise Conflict(f"Role '{role_name}' already exists", role_name=role_name)
                holders = self._holders(current.role_name)
                self._db.execute("UPDATE roles SET role_name=?, permissions=?, description=? WHERE role_id=?",
                                 (role_name, json.dumps(perms), description, role_id))
                for user_id, _, roles in holders:
                    renamed = [role_name if r == current.role_name else r for r in roles]
                    self._db.execute("UPDATE users SET roles=? WHERE user_id=?", (json.dumps(renamed), user_id))
            if tuple(perms) != current.permissions:
                done["tokens_revoked"] = sum(self.revoke_user(user_id) for user_id, _, _ in holders)
        return self.get_role(role_id)

    def delete_role(self, role_id: int, by: str) -> None:
        with _audited(by, "delete_role", f"role {role_id}") as done, self._mutex, write(self._db):
            current = self._changeable_role(role_id)
            done["role_name"] = current.role_name
            holders = self._holders(current.role_name)
            if holders:
                raise Conflict(f"Role '{current.role_name}' is still assigned to users",
                               users=[username for _, username, _ in holders])
            self._db.execute("DELETE FROM roles WHERE role_id=?", (role_id,))

    def _role_id_of(self, role_name: str) -> int | None:
        row = self._db.execute("SELECT role_id FROM roles WHERE role_name=?", (role_name,)).fetchone()
        return None if row is None else row[0]

    def _changeable_role(self, role_id: int) -> RoleRecord:
        role = self.get_role(role_id)
        if role.built_in:
            # the API roles are bound to these names; changing one would silently change who may do what
            raise Conflict(f"Role '{role.role_name}' is built in and cannot be changed or deleted",
                           role_name=role.role_name)
        return role

    def _holders(self, role_name: str) -> list[tuple[int, str, list[str]]]:
        """(user_id, username, roles) of every user the role is assigned to."""
        rows = self._db.execute("SELECT DISTINCT u.user_id, u.username, u.roles FROM users u, json_each(u.roles) r "
                                "WHERE r.value=? ORDER BY u.user_id", (role_name,))
        return [(user_id, username, json.loads(roles)) for user_id, username, roles in rows]


_USER_COLUMNS = "user_id, username, roles, enabled, created_at, last_login, password_hash IS NOT NULL"
_ROLE_COLUMNS = "role_id, role_name, permissions, description, created_at"


def _api_role(roles: list[str], permissions: dict[str, list[str]]) -> ApiRole | None:
    """The highest API role any of `roles` grants: a built-in role by its name, another by its permissions."""
    granted = [_API_ROLE_OF.get(r) or (ApiRole.ADMIN if "ALL" in permissions.get(r, ())
                                       else ApiRole.MONITOR if permissions.get(r) else None) for r in roles]
    return max((g for g in granted if g is not None), default=None)


def _user(row: tuple, permissions: dict[str, list[str]]) -> UserRecord:
    user_id, username, roles, enabled, created_at, last_login, has_password = row
    names = json.loads(roles)
    return UserRecord(user_id, username, tuple(names), bool(enabled), created_at, last_login, bool(has_password),
                      _api_role(names, permissions))


def _role(row: tuple) -> RoleRecord:
    role_id, name, perms, description, created_at = row
    permissions = json.loads(perms)
    return RoleRecord(role_id, name, tuple(permissions), description, created_at, name in _API_ROLE_OF,
                      _api_role([name], {name: permissions}))


def _check_username(username: str) -> None:
    if not username.strip():
        raise InvalidRequest("Username cannot be empty", field="username")
    if not USERNAME_MIN <= len(username) <= USERNAME_MAX:
        raise InvalidRequest(f"Username must be between {USERNAME_MIN} and {USERNAME_MAX} characters", field="username")
    if _FORBIDDEN_IN_NAME.search(username):
        raise InvalidRequest("Username must not contain control characters", field="username")


def _check_password(password: str | None) -> None:
    if password is not None and not password:
        raise InvalidRequest("Password cannot be empty (send null for a user that cannot log in)", field="password")


def _check_role_name(role_name: str) -> None:
    if not role_name.strip():
        raise InvalidRequest("Role name cannot be empty", field="role_name")
    if len(role_name) > ROLE_NAME_MAX or _FORBIDDEN_IN_NAME.search(role_name):
        raise InvalidRequest(f"Role name must be at most {ROLE_NAME_MAX} printable characters", field="role_name")


def _checked_permissions(permissions: list[str]) -> list[str]:
    for p in permissions:
        if p.upper() not in PERMISSIONS:
            raise InvalidRequest(f"Invalid permission: '{p}'", field="permissions", valid=list(PERMISSIONS))
    return list(dict.fromkeys(p.upper() for p in permissions))


@contextmanager
def _audited(by: str, action: str, target: str, **details: object) -> Iterator[dict[str, object]]:
    """Audit the change once: `ok` with what the body adds to the yielded dict, or why it was refused."""
    done: dict[str, object] = {}
    try:
        yield done
    except EngineError as exc:
        audit(by, action, target, f"refused: {exc.message}", **details)
        raise
    audit(by, action, target, **details, **done)
