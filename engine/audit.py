"""The audit trail: every mutating action, who did it, to what, and how it ended.

Records go to the `engine.audit` logger (so the log ring, the log file and /api/v1/logs carry
them) with the fields in `extra["audit"]` for structured consumers.
"""

from __future__ import annotations

import logging
from typing import Any

from .redaction import redact_details

log = logging.getLogger("engine.audit")


def audit(who: str, action: str, target: str, result: str = "ok", **details: Any) -> None:
    """Values under secret-sounding keys (webhook_url, password, token ...) are redacted first."""
    details = redact_details(details)
    record = {"who": who, "action": action, "target": target, "result": result, **details}
    extra = "".join(f" {k}={v!r}" for k, v in details.items())
    log.info("%s %s %s: %s%s", who, action, target, result, extra, extra={"audit": record})
