"""Admin SQL cannot move the engine off what it relies on: WAL, shared locking, its own pragmas."""

from __future__ import annotations

import apsw
import pytest

from engine import Engine
from engine.errors import SqlError

REFUSED = [
    "PRAGMA journal_mode=DELETE",
    "PRAGMA sales.journal_mode = TRUNCATE",
    "PRAGMA locking_mode=EXCLUSIVE",
    "PRAGMA writable_schema=ON",
    "PRAGMA main.synchronous=OFF",
    "PRAGMA busy_timeout=60000",
    "PRAGMA inventory.max_page_count=1",
    "PRAGMA schema_version=1",
    "PRAGMA user_version=7",
    "PRAGMA foreign_keys=OFF",
    "PRAGMA sales.incremental_vacuum",
    "PRAGMA optimize",
]


def journal_modes(engine: Engine) -> dict[str, str]:
    """Each schema file's journal mode, read from the file by a connection of its own."""
    out = {}
    for schema, path in engine.storage.files().items():
        conn = apsw.Connection(str(path))
        try:
            out[schema] = conn.execute("PRAGMA journal_mode").fetchall()[0][0]
        finally:
            conn.close()
    return out


@pytest.mark.parametrize("sql", REFUSED)
def test_a_pragma_the_engine_relies_on_is_refused_and_changes_nothing(engine: Engine, sql: str) -> None:
    s = engine.connect("admin")
    name = sql.split()[1].split("=")[0].split(".")[-1]
    with pytest.raises(SqlError, match=f"^PRAGMA {name} is not allowed"):
        s.execute(sql)
    for schema in engine.storage.files():
        assert s.execute(f"PRAGMA {schema}.journal_mode").rows == [("wal",)]
    assert s.execute("PRAGMA locking_mode").rows == [("normal",)]
    assert s.execute("PRAGMA writable_schema").rows == [(0,)]
    assert s.execute("PRAGMA foreign_keys").rows == [(1,)]
    s.execute("INSERT INTO sales.orders(customer, amount) VALUES ('after the refusal', 1)")
    other = engine.connect("other")
    other.execute("INSERT INTO sales.orders(customer, amount) VALUES ('another session', 1)")  # no file lock kept
    other.close()
    s.close()
    assert set(journal_modes(engine).values()) == {"wal"}


def test_inside_a_transaction_the_refusal_leaves_the_transaction_usable(engine: Engine) -> None:
    s = engine.connect("admin")
    s.execute("BEGIN")
    s.execute("UPDATE sales.orders SET amount = 11 WHERE customer = 'alice'")
    with pytest.raises(SqlError, match="PRAGMA journal_mode is not allowed"):
        s.execute("PRAGMA journal_mode=MEMORY")
    s.execute("COMMIT")
    assert s.execute("SELECT amount FROM sales.orders WHERE customer = 'alice'").rows == [(11.0,)]


@pytest.mark.parametrize("sql", [
    "PRAGMA journal_mode", "PRAGMA sales.journal_mode", "PRAGMA locking_mode", "PRAGMA sales.table_info(orders)",
    "SELECT name FROM pragma_table_info('orders', 'sales')", "PRAGMA sales.index_list(orders)",
    "PRAGMA sales.integrity_check", "PRAGMA quick_check(10)", "PRAGMA foreign_key_check",
    "PRAGMA sales.page_count", "PRAGMA sales.freelist_count", "PRAGMA wal_checkpoint(PASSIVE)",
    "PRAGMA compile_options",
])
def test_pragmas_that_only_read_still_run(engine: Engine, sql: str) -> None:
    s = engine.connect("admin")
    s.execute(sql)
    s.close()


def test_defer_foreign_keys_is_a_transactions_own_business(engine: Engine) -> None:
    s = engine.connect("admin")
    s.execute("BEGIN")
    s.execute("PRAGMA defer_foreign_keys=ON")
    s.execute("COMMIT")


def test_a_schema_moved_off_wal_outside_the_engine_makes_storage_unhealthy(engine: Engine) -> None:
    ready = engine.health.readiness()
    assert ready.ok and next(c for c in ready.checks if c.component == "storage").status == "healthy"
    outside = apsw.Connection(str(engine.storage.files()["sales"]))  # a tool of its own, as sqlite3 would be
    try:
        assert outside.execute("PRAGMA journal_mode=DELETE").fetchall() == [("delete",)]
        ready = engine.health.readiness()
        storage = next(c for c in ready.checks if c.component == "storage")
        assert not ready.ok and storage.status == "unhealthy"
        assert storage.message == ("schemas not in WAL mode: sales (changed outside the engine, whose lock manager "
                                   "relies on WAL)")
        assert storage.details["not_in_wal"] == ["sales"]
        outside.execute("PRAGMA journal_mode=WAL").fetchall()
    finally:
        outside.close()
    assert engine.health.readiness().ok
