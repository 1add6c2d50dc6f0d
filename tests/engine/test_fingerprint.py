"""Statement fingerprints: literals normalised away, one stable id per statement shape."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import engine as engine_package
from engine import Engine
from engine.fingerprint import normalize, sql_id

SAME_SHAPE = [
    # (one statement, the same statement with other literals / spacing / case / comments)
    ("SELECT * FROM t WHERE id = 7", "select *  from t where id=8"),
    ("SELECT * FROM t WHERE name = 'alice'", "SELECT * FROM t WHERE name = 'O''Brien' -- who"),
    ("SELECT * FROM t WHERE x = 1.5", "SELECT * FROM t WHERE x = 2e10"),
    ("SELECT * FROM t WHERE x = 1", "SELECT * FROM t WHERE x = 0x1F"),
    ("SELECT * FROM t WHERE b = X'00ff'", "SELECT * FROM t WHERE b = x''"),
    ("SELECT * FROM t WHERE x = ?", "SELECT * FROM t WHERE x = :name"),
    ("SELECT * FROM t WHERE x = ?1", "SELECT * FROM t WHERE x = @v"),
    ("SELECT * FROM t WHERE id IN (1, 2, 3)", "SELECT * FROM t WHERE id IN (4,5)"),
    ("SELECT * FROM t WHERE id IN (1, 2, 3)", "SELECT * FROM t WHERE id IN (4)"),
    ("SELECT * FROM t WHERE x = 5", "SELECT * FROM t WHERE x = -5"),
    ("SELECT * FROM t WHERE x IN (1, 2)", "SELECT * FROM t WHERE x IN (-1, -2)"),
    ("SELECT * FROM t LIMIT 10", "SELECT * FROM t LIMIT -1"),
    ("UPDATE t SET a = 1 WHERE id = 2", "/* app */ UPDATE t SET a = 3 WHERE id = 4"),
    ("SELECT * FROM t WHERE id = 1", "SELECT\n  *\nFROM\n  t\nWHERE\n  id = 99999"),
]

DIFFERENT_SHAPE = [
    ("SELECT * FROM t WHERE id = 7", "SELECT * FROM u WHERE id = 7"),
    ("SELECT a FROM t", "SELECT b FROM t"),
    ("SELECT * FROM t WHERE id = 1", "SELECT * FROM t WHERE id > 1"),
    ("SELECT x - 1 FROM t", "SELECT x FROM t"),  # a subtraction is not a negative literal
    ("SELECT x - 1 FROM t", "SELECT x, -1 FROM t"),
    ("SELECT \"Id\" FROM t", "SELECT id FROM t"),
    ("DELETE FROM t WHERE id = 1", "SELECT * FROM t WHERE id = 1"),
]


@pytest.mark.parametrize("a, b", SAME_SHAPE)
def test_literal_changes_keep_the_fingerprint(a: str, b: str) -> None:
    assert normalize(a) == normalize(b)
    assert sql_id(a) == sql_id(b)


@pytest.mark.parametrize("a, b", DIFFERENT_SHAPE)
def test_different_statements_get_different_fingerprints(a: str, b: str) -> None:
    assert sql_id(a) != sql_id(b)


def test_normalised_text() -> None:
    assert normalize("SELECT * FROM t WHERE id = 7 AND name = 'x'") == "select * from t where id = ? and name = ?"
    assert normalize("SELECT * FROM t WHERE id IN (1, 2, 3)") == "select * from t where id in (...)"
    assert normalize("SELECT a - 1 FROM t WHERE b = -2") == "select a - ? from t where b = ?"
    assert normalize("SELECT 'a -- not a comment' FROM t") == "select ? from t"
    assert normalize("SELECT \"Mixed Case\" FROM t") == 'select "Mixed Case" from t'


def test_sql_id_is_16_hex_digits() -> None:
    value = sql_id("SELECT 1")
    assert len(value) == 16 and int(value, 16) >= 0


def test_fingerprint_is_stable_across_processes() -> None:
    """Other interpreters, with other hash seeds, compute the same ids (nothing depends on hash())."""
    statements = [a for a, _ in SAME_SHAPE] + [b for _, b in DIFFERENT_SHAPE]
    package_root = Path(engine_package.__file__).resolve().parents[1]  # the engine these tests import
    code = ("import json, sys; from engine.fingerprint import sql_id; "
            "print(json.dumps([sql_id(s) for s in json.load(sys.stdin)]))")
    ids = set()
    for seed in ("1", "12345"):
        env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": str(package_root)}
        out = subprocess.run([sys.executable, "-c", code], input=json.dumps(statements), env=env,
                             cwd=package_root, capture_output=True, text=True, check=True, timeout=60).stdout
        ids.add(tuple(json.loads(out)))
    assert ids == {tuple(sql_id(s) for s in statements)}


def test_engine_groups_statements_by_fingerprint(engine: Engine) -> None:
    s = engine.connect()
    results = [s.execute(f"SELECT * FROM inventory.items WHERE qty > {n}") for n in (0, 5, -1)]
    ids = {engine.statement(r.query_id).sql_id for r in results}
    assert ids == {sql_id("SELECT * FROM inventory.items WHERE qty > 100")}
    fp = engine.stats.fingerprint(ids.pop())
    assert fp.calls == 3 and fp.query == "select * from inventory.items where qty > ?"
