# Built from _accounting.c; engine/stats.py's PyAccumulator and py_record_call are the reference.

BUCKETS: int
PER_DOUBLING: int

class Accumulator:
    sql: str
    calls: int
    rows: int
    written: int
    errors: int
    total_ms: float
    min_ms: float
    max_ms: float
    cpu_ms: float
    first_seen: float
    last_end: float
    def __init__(self, sql: str, first_seen: float) -> None: ...
    @property
    def hist(self) -> dict[int, int]: ...
    def merge(self, other: Accumulator) -> None: ...

def record_call(accs: dict[str, Accumulator], key: str, ms: float, cpu_ms: float, rows: int, written: int, failed: bool,
                started_at: float) -> bool: ...
