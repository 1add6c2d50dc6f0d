"""Per-fingerprint accounting: the C accumulator (engine/_accounting.c) and its Python reference
(engine/stats.py) give the same figures, and the engine counts right with either."""

from __future__ import annotations

import math
import random

import pytest

import engine.sessions
import engine.stats
from engine.stats import PyAccumulator, py_record_call

native = pytest.importorskip("engine._accounting", reason="the C accumulator is not built (no compiler)")

IMPLEMENTATIONS = [(PyAccumulator, py_record_call), (native.Accumulator, native.record_call)]


def figures(acc) -> tuple:
    return (acc.sql, acc.calls, acc.rows, acc.written, acc.errors, acc.total_ms, acc.min_ms, acc.max_ms,
            acc.first_seen, acc.last_end, {b: n for b, n in acc.hist.items() if n}, acc.cpu_ms)


# at and around the first bucket's bound, an int, and past the last bucket
EDGES = [0.0, 0.001, 0.0010000001, 0.002, 1.0, 3, 1e13]


def durations(rng: random.Random, n: int) -> list[float]:
    return EDGES + [10 ** rng.uniform(-4, 7) for _ in range(n)]


def test_c_and_python_accumulators_agree_call_for_call() -> None:
    rng = random.Random(7)
    calls = [(key, ms, ms / 3, 1, 0, False, 1.0) for key in "abc" for ms in EDGES]
    calls += [(rng.choice("abc"), ms, ms * rng.random(), rng.randint(0, 50), rng.randint(0, 3), rng.random() < 0.1,
               float(i)) for i, ms in enumerate(durations(rng, 3000))]
    results = []
    for Acc, record in IMPLEMENTATIONS:
        accs = {key: Acc(f"SELECT {key}", 100.0) for key in "ab"}  # "c" has none: refused, nothing counted
        refused = [key for key, *args in calls if not record(accs, key, *args)]
        results.append((refused, {k: figures(a) for k, a in accs.items()}))
    assert results[0] == results[1]
    refused, by_key = results[0]
    assert set(refused) == {"c"}
    a = by_key["a"]
    assert a[1] == sum(n for n in a[10].values()) == sum(1 for c in calls if c[0] == "a")
    assert max(a[10]) == engine.stats._BUCKETS - 1 and min(a[10]) == 0  # 1e13 ms clamps; 0 ms is bucket 0


def test_c_and_python_merge_alike() -> None:
    rng = random.Random(11)
    merged = []
    for Acc, record in IMPLEMENTATIONS:
        parts = [Acc("SELECT 1", float(first)) for first in (50, 20, 80)]
        for i, ms in enumerate(durations(rng, 500)):
            record({"k": parts[i % 3]}, "k", ms, ms / 2, 1, i % 2, i % 17 == 0, 100.0 + i)
        total = Acc("SELECT 1", math.inf)
        for part in (*parts, Acc("SELECT 1", 90.0)):  # an empty one changes nothing but first_seen
            total.merge(part)
        merged.append(figures(total))
        rng = random.Random(11)
    assert merged[0] == merged[1]
    assert merged[0][8] == 20.0  # the earliest first_seen


def test_c_accumulator_refuses_what_it_cannot_count() -> None:
    acc = native.Accumulator("SELECT 1", 0.0)
    with pytest.raises(TypeError):
        acc.merge(PyAccumulator("SELECT 1", 0.0))
    with pytest.raises(TypeError):
        native.record_call({"k": PyAccumulator("SELECT 1", 0.0)}, "k", 1.0, 0.5, 1, 0, False, 0.0)
    with pytest.raises(TypeError):
        native.record_call({"k": acc}, "k", "slow", 0.5, 1, 0, False, 0.0)
    with pytest.raises(TypeError):
        native.record_call({"k": acc}, "k", 1.0, "busy", 1, 0, False, 0.0)
    with pytest.raises(TypeError):
        native.record_call({"k": acc}, "k", 1.0)
    assert acc.calls == 0 and acc.hist == {}


@pytest.fixture(params=["c", "python"])
def accounting(request, monkeypatch) -> str:
    if request.param == "python":
        monkeypatch.setattr(engine.stats, "Accumulator", PyAccumulator)
        monkeypatch.setattr(engine.stats, "record_call", py_record_call)
        monkeypatch.setattr(engine.sessions, "record_call", py_record_call)
    return request.param


def test_engine_counts_statements_with_either_implementation(accounting, make_engine) -> None:
    eng = make_engine(tables=False)
    session = eng.connect()
    session.execute("CREATE TABLE t(x INTEGER)")
    for i in range(40):
        session.execute("INSERT INTO t VALUES (?)", (i,))
    for _ in range(30):
        session.execute("SELECT x FROM t WHERE x < 5")
    with pytest.raises(Exception):
        session.execute("SELECT nope FROM t WHERE x < 5")
    session.close()  # hands its accumulators to the engine's own
    other = eng.connect()
    other.execute("SELECT x FROM t WHERE x < 5")  # a live session's figures add to the retired ones
    by_query = {fp.query: fp for fp in eng.stats.fingerprints()}
    insert = next(fp for q, fp in by_query.items() if q.startswith("insert"))
    select = next(fp for q, fp in by_query.items() if q.startswith("select x"))
    assert (insert.calls, insert.rows) == (40, 40)
    assert (select.calls, select.rows_returned) == (31, 31 * 5)
    assert select.histogram.total == 31 and 0 < select.min_ms <= select.percentile(50) <= select.max_ms
