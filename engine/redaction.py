"""Secrets kept out of what monitors, logs, the audit trail and dumps show.

A webhook URL often is its own credential (a Slack or Teams hook carries the token in its path),
so it is shown as its scheme and host only, "https://hooks.example.com/…"; only an admin reads it
whole, from the rule itself. Other values whose key names a secret are replaced by "…".
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

REDACTED = "…"
_SECRET_KEY = re.compile(r"password|secret|token|api_?key|credential|webhook|url", re.IGNORECASE)


def redact_url(url: str) -> str:
    """Scheme and host (and port) of `url`: no user, password, path or query."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return REDACTED
    if not parts.scheme or not host:
        return REDACTED
    host = f"[{host}]" if ":" in host else host
    return f"{parts.scheme}://{host}{f':{port}' if port else ''}/{REDACTED}"


def redact_text(text: str, url: str) -> str:
    """`text` (an error message, say) with every occurrence of `url` redacted."""
    return text.replace(url, redact_url(url)) if url else text


def redact_details(value: Any, key: str = "") -> Any:
    """`value` with every string under a secret-sounding key redacted (URLs to scheme and host)."""
    if isinstance(value, dict):
        return {k: redact_details(v, str(k)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact_details(v, key) for v in value]
    if isinstance(value, str) and value and _SECRET_KEY.search(key):
        return redact_url(value) if "://" in value else REDACTED
    return value
