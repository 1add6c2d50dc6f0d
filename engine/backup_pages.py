"""Page images: what an incremental backup stores, and how a restore applies it.

Every backup's copy of a schema is a database file written by SQLite's backup API, which copies
the source's pages verbatim, so two copies of one database differ in exactly the pages that
changed in between. A backup keeps a digest of every page of its copy; the next incremental
backup stores only the pages whose digest differs from those (plus the page count, as a file may
grow or shrink), and a restore writes them over the previous state. Schema changes, tables
without a primary key and indexes are all covered: they are pages like any other.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from .backup_codec import CHUNK, CorruptFile

DIGEST_BYTES = 16
_MAGIC = b"RDBTPGS1"


@dataclass(frozen=True)
class Scan:
    size: int
    page_size: int
    page_count: int
    sha256: str
    digests: bytes  # DIGEST_BYTES per page, in page order
    pages_written: int  # pages written to the diff (every page for a full copy)


def page_size_of(path: Path) -> int:
    with open(path, "rb") as f:
        header = f.read(18)
    if len(header) < 18:
        return 4096  # an empty file has no pages; any size describes it
    size = int.from_bytes(header[16:18], "big")
    return 65536 if size == 1 else size


def scan(path: Path, previous: bytes | None = None, previous_page_size: int = 0,
         diff_to: Path | None = None) -> Scan:
    """Digest every page of database copy `path` (and SHA-256 the whole file); with `diff_to`,
    also write there the pages whose digest differs from `previous`."""
    page_size = page_size_of(path)
    if previous is None or previous_page_size != page_size:
        previous = b""  # a new schema, or one rebuilt with another page size: every page is new
    sha, digests = hashlib.sha256(), bytearray()
    size = written = 0
    per_read = max(1, CHUNK // page_size) * page_size
    out = open(diff_to, "wb") if diff_to is not None else None
    try:
        if out is not None:
            out.write(_MAGIC + page_size.to_bytes(4, "big") + bytes(4))  # page count patched at the end
        with open(path, "rb") as f:
            while block := f.read(per_read):
                sha.update(block)
                for offset in range(0, len(block), page_size):
                    page = block[offset:offset + page_size]
                    number = (size + offset) // page_size
                    digest = hashlib.blake2b(page, digest_size=DIGEST_BYTES).digest()
                    digests += digest
                    if out is not None and previous[number * DIGEST_BYTES:(number + 1) * DIGEST_BYTES] != digest:
                        out.write((number + 1).to_bytes(4, "big") + page)
                        written += 1
                size += len(block)
        page_count = -(-size // page_size)
        if out is not None:
            out.seek(len(_MAGIC) + 4)
            out.write(page_count.to_bytes(4, "big"))
    finally:
        if out is not None:
            out.close()
    return Scan(size, page_size, page_count, sha.hexdigest(), bytes(digests),
                written if diff_to is not None else page_count)


def apply(diff: Path, target: Path) -> int:
    """Write a diff's pages over `target` (created if missing) and set its length; return pages written."""
    with open(diff, "rb") as f:
        header = f.read(len(_MAGIC) + 8)
        if len(header) != len(_MAGIC) + 8 or not header.startswith(_MAGIC):
            raise CorruptFile(f"{diff.name}: not a page image file")
        page_size = int.from_bytes(header[8:12], "big")
        page_count = int.from_bytes(header[12:16], "big")
        pages = 0
        target.touch()
        with open(target, "r+b") as out:
            while number := f.read(4):
                page = f.read(page_size)
                if len(number) < 4 or len(page) < page_size:
                    raise CorruptFile(f"{diff.name}: cut short after {pages} pages")
                out.seek((int.from_bytes(number, "big") - 1) * page_size)
                out.write(page)
                pages += 1
            out.truncate(page_count * page_size)
    return pages
