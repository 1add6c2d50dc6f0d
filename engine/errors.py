"""The engine's errors. Each carries the code the API reports (RustyDB's ApiError codes plus ours)."""

from __future__ import annotations

import errno
from typing import Any

# errno values that mean the disk (or the user's quota) has no room left
NO_SPACE = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})


class EngineError(Exception):
    code = "ENGINE_ERROR"

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class SqlError(EngineError):
    """SQLite rejected the statement (syntax, constraint, missing table ...)."""

    code = "SQL_ERROR"


class QueryCanceled(EngineError):
    code = "QUERY_CANCELED"


class QueryTimeout(EngineError):
    code = "QUERY_TIMEOUT"


class LockTimeout(EngineError):
    code = "LOCK_TIMEOUT"


class DeadlockDetected(EngineError):
    code = "DEADLOCK_DETECTED"


class SerializationFailure(EngineError):
    """The transaction's snapshot of a schema is stale; only a retry of the whole transaction helps."""

    code = "SERIALIZATION_FAILURE"


class SessionTerminated(EngineError):
    code = "SESSION_TERMINATED"


class SessionBusy(EngineError):
    code = "SESSION_BUSY"


class TooManyConnections(EngineError):
    code = "TOO_MANY_CONNECTIONS"


class NotFound(EngineError):
    code = "NOT_FOUND"


class Conflict(EngineError):
    """The request is valid but the target is not in a state that allows it."""

    code = "CONFLICT"


class InvalidInput(EngineError):
    code = "VALIDATION_ERROR"


class InvalidRequest(InvalidInput):
    """RustyDB's INVALID_INPUT (400): a well-formed request that a domain rule refuses."""

    code = "INVALID_INPUT"


class Gone(EngineError):
    """The target existed but is no more (an expired diagnostic dump)."""

    code = "GONE"


class StorageFull(EngineError):
    """The disk (or a file's size limit) refused a write; nothing was changed."""

    code = "INSUFFICIENT_STORAGE"


class StorageFailure(EngineError):
    """A write failed on an I/O error other than a full disk; nothing was changed."""

    code = "STORAGE_UNAVAILABLE"
