"""Process and host figures from psutil, refreshed by the stats service about once a second."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import psutil


@dataclass(frozen=True)
class HostFigures:
    process_cpu_percent: float
    process_rss_bytes: int
    process_threads: int
    process_open_files: int | None
    host_cpu_percent: float
    host_memory_percent: float
    host_memory_total_bytes: int
    host_memory_used_bytes: int
    disk_total_bytes: int
    disk_free_bytes: int
    disk_free_percent: float
    load_average_1m: float | None
    cpu_count: int


class HostMonitor:
    def __init__(self, data_dir: Path) -> None:
        self._data_dir = data_dir
        self._process = psutil.Process(os.getpid())
        # cpu_percent() measures since its previous call: prime both so the first reading is real
        self._process.cpu_percent(None)
        psutil.cpu_percent(None)
        self.latest = self.read()

    def read(self) -> HostFigures:
        p = self._process
        with p.oneshot():
            cpu = p.cpu_percent(None)
            rss = p.memory_info().rss
            threads = p.num_threads()
            try:
                fds: int | None = p.num_fds()
            except (AttributeError, psutil.Error):
                fds = None
        mem = psutil.virtual_memory()
        disk = psutil.disk_usage(str(self._data_dir))
        try:
            load: float | None = os.getloadavg()[0]
        except OSError:
            load = None
        figures = HostFigures(cpu, rss, threads, fds, psutil.cpu_percent(None), mem.percent, mem.total,
                              mem.total - mem.available, disk.total, disk.free,
                              100.0 * disk.free / disk.total if disk.total else 0.0, load, psutil.cpu_count() or 1)
        self.latest = figures
        return figures
