"""Statement fingerprints: the SQL with literals normalised away, and a stable id for it.

Like pg_stat_statements' queryid: `SELECT * FROM t WHERE id = 7` and `select *  from t where id=8`
share one fingerprint, so statistics and ASH group the statement, not each call.
"""

from __future__ import annotations

import hashlib
import re
from functools import lru_cache

_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<comment>--[^\n]*|/\*.*?(?:\*/|$))
  | (?P<string>'(?:[^']|'')*'?)
  | (?P<blob>[xX]'[0-9a-fA-F]*')
  | (?P<quoted>"(?:[^"]|"")*"?|`[^`]*`?|\[[^\]]*\]?)
  | (?P<number>0[xX][0-9a-fA-F]+|(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)
  | (?P<param>\?\d*|[:@$][A-Za-z_][A-Za-z0-9_]*)
  | (?P<word>[A-Za-z_][A-Za-z0-9_$]*)
  | (?P<op>.)
    """,
    re.VERBOSE | re.DOTALL,
)
# A list of placeholders, as IN (1, 2, 3) becomes after normalising: one shape for any length.
_LIST = re.compile(r"\(\s*\?(?:\s*,\s*\?)*\s*\)")
# Words after which a minus sign is a sign, not a subtraction (`WHERE -1`, `LIMIT -1`, `THEN -1`).
_SIGN_AFTER = frozenset({"select", "where", "and", "or", "not", "when", "then", "else", "between", "limit",
                         "offset", "is", "like", "glob", "having", "on", "case", "by", "distinct"})


@lru_cache(maxsize=4096)
def normalize(sql: str) -> str:
    out: list[str] = []
    for m in _TOKEN.finditer(sql):
        kind = m.lastgroup
        if kind in ("ws", "comment"):
            continue
        text = m.group()
        if kind in ("string", "blob", "number", "param"):
            if kind == "number" and out and out[-1] == "-" and _is_sign(out[-2] if len(out) > 1 else None):
                out.pop()  # -5 is one literal, as 5 is: the same fingerprint for both
            out.append("?")
        elif kind == "word":
            out.append(text.lower())
        else:
            out.append(text)
    text = _join(out)
    return _LIST.sub("(...)", text)


def _is_sign(before: str | None) -> bool:
    """Whether a minus after the token `before` (None: at the start) negates what follows."""
    if before is None or before in _SIGN_AFTER:
        return True
    # after an operator or an opening bracket; not after a value: `)`, `?` (a literal), a name
    return len(before) == 1 and before not in ")]?_" and not before.isalnum()


def _join(tokens: list[str]) -> str:
    parts: list[str] = []
    for tok in tokens:
        if parts and not (tok in ",;)." or parts[-1] in "(."):
            parts.append(" ")
        parts.append(tok)
    return "".join(parts)


@lru_cache(maxsize=4096)
def sql_id(sql: str) -> str:
    """A 16-hex-digit id of the normalised statement, stable across runs and processes."""
    return hashlib.blake2b(normalize(sql).encode(), digest_size=8).hexdigest()
