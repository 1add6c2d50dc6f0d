"""How a backup's files are stored: optionally compressed (gzip or zstd), then optionally encrypted.

The encryption key is 32 bytes, written as base64, taken from the environment variable
RDBTOP_BACKUP_KEY or else from the file `backup.key` in the data directory (the variable wins, so a
key can be supplied without writing it to disk). A new key:
`python -c "import base64, os; print(base64.b64encode(os.urandom(32)).decode())"`. Without a key,
asking for encryption is refused rather than ignored.

Encrypted files use AES-256-GCM in the STREAM construction: a header (magic, key id, a random
7-byte nonce prefix), then chunks of at most CHUNK plaintext bytes, each stored as a 4-byte length
and its ciphertext with tag. A chunk's nonce is the prefix, its 4-byte index and a last-chunk flag,
and the header is every chunk's associated data: a chunk cannot be altered, reordered, dropped,
moved to another file, or the file cut short, without decryption failing.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO, NamedTuple

import zstandard
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from .errors import InvalidInput

KEY_ENV = "RDBTOP_BACKUP_KEY"
KEY_FILE = "backup.key"
COMPRESSIONS = ("gzip", "zstd")
CHUNK = 1 << 20
_MAGIC = b"RDBTENC1"
_PREFIX = 7
_HEADER = len(_MAGIC) + 8 + _PREFIX
NO_KEY = (f"encryption needs a backup key and none is configured: set {KEY_ENV} to base64 of 32 random bytes, "
          f"or write it to {KEY_FILE} in the data directory")


class CorruptFile(Exception):
    """A stored file cannot be read back: damaged, cut short, or encrypted with another key."""


class BackupKey(NamedTuple):
    key: bytes
    key_id: str  # names the key in manifests without revealing it


def load_key(data_dir: Path) -> BackupKey | None:
    """The configured key, None when there is none; a malformed one is an error naming its source."""
    text, source = os.environ.get(KEY_ENV), f"the environment variable {KEY_ENV}"
    if not text:
        path = data_dir / KEY_FILE
        if not path.is_file():
            return None
        text, source = path.read_text(encoding="ascii", errors="replace"), str(path)
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        key = b""
    if len(key) != 32:
        raise InvalidInput(f"the backup key in {source} must be base64 of exactly 32 bytes", field="encryption")
    return BackupKey(key, hashlib.sha256(b"rdbtop-backup-key:" + key).hexdigest()[:16])


class Codec(NamedTuple):
    compression: str | None
    encrypted: bool
    key: BackupKey | None  # the configured key: needed when encrypted, and it must be the file's

    @property
    def suffix(self) -> str:
        return {"gzip": ".gz", "zstd": ".zst", None: ""}[self.compression] + (".enc" if self.encrypted else "")


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(CHUNK):
            digest.update(block)
    return digest.hexdigest()


class _Counted:
    """The stored file as it is written: its size and SHA-256 come for free."""

    def __init__(self, f: BinaryIO) -> None:
        self.f, self.size, self.sha = f, 0, hashlib.sha256()

    def write(self, data: bytes) -> None:
        self.f.write(data)
        self.size += len(data)
        self.sha.update(data)

    def close(self) -> None:
        pass


class _Encrypt:
    def __init__(self, out: _Counted, key: BackupKey) -> None:
        self.out, self.aead = out, AESGCM(key.key)
        self.header = _MAGIC + bytes.fromhex(key.key_id) + os.urandom(_PREFIX)
        self.buffer, self.index = bytearray(), 0
        out.write(self.header)

    def write(self, data: bytes) -> None:
        self.buffer += data
        while len(self.buffer) > CHUNK:  # strictly more: the last chunk is only known at close
            self._emit(bytes(self.buffer[:CHUNK]), last=False)
            del self.buffer[:CHUNK]

    def close(self) -> None:
        self._emit(bytes(self.buffer), last=True)

    def _emit(self, chunk: bytes, last: bool) -> None:
        sealed = self.aead.encrypt(_nonce(self.header, self.index, last), chunk, self.header)
        self.out.write(len(sealed).to_bytes(4, "big") + sealed)
        self.index += 1


def _nonce(header: bytes, index: int, last: bool) -> bytes:
    return header[-_PREFIX:] + index.to_bytes(4, "big") + bytes([last])


class _Compress:
    def __init__(self, out: _Counted | _Encrypt, kind: str) -> None:
        self.out = out
        self.engine = (zlib.compressobj(6, zlib.DEFLATED, 31) if kind == "gzip"
                       else zstandard.ZstdCompressor(level=3).compressobj())

    def write(self, data: bytes) -> None:
        if out := self.engine.compress(data):
            self.out.write(out)

    def close(self) -> None:
        self.out.write(self.engine.flush())
        self.out.close()


def pack(src: Path, dst: Path, codec: Codec) -> tuple[int, str]:
    """Store `src` as `dst` through the codec; return the stored size and its SHA-256."""
    with open(dst, "wb") as f:
        counted = _Counted(f)
        sink: _Counted | _Encrypt | _Compress = counted
        if codec.encrypted:
            if codec.key is None:
                raise InvalidInput(NO_KEY, field="encryption")
            sink = _Encrypt(counted, codec.key)
        if codec.compression is not None:
            sink = _Compress(sink, codec.compression)
        with open(src, "rb") as g:
            while block := g.read(CHUNK):
                sink.write(block)
        sink.close()
        f.flush()
        os.fsync(f.fileno())
    return counted.size, counted.sha.hexdigest()


def _decrypted(f: BinaryIO, key: BackupKey | None, name: str) -> Callable[[], bytes]:
    header = f.read(_HEADER)
    if len(header) < _HEADER or not header.startswith(_MAGIC):
        raise CorruptFile(f"{name}: not an encrypted backup file (bad header)")
    key_id = header[len(_MAGIC):len(_MAGIC) + 8].hex()
    if key is None:
        raise CorruptFile(f"{name} is encrypted (key {key_id}) and no backup key is configured ({KEY_ENV})")
    if key.key_id != key_id:
        raise CorruptFile(f"{name} was encrypted with key {key_id}; the configured key is {key.key_id}")
    aead, index, done = AESGCM(key.key), 0, False

    def read_sealed() -> bytes | None:
        size = f.read(4)
        if not size:
            return None
        sealed = f.read(int.from_bytes(size, "big")) if len(size) == 4 else b""
        if len(size) < 4 or len(sealed) != int.from_bytes(size, "big"):
            raise CorruptFile(f"{name}: cut short inside chunk {index}")
        return sealed

    pending = read_sealed()

    def read() -> bytes:
        nonlocal pending, index, done
        if done:
            return b""
        if pending is None:
            raise CorruptFile(f"{name}: cut short (no final chunk)")
        following = read_sealed()
        last = following is None
        try:
            plain = aead.decrypt(_nonce(header, index, last), pending, header)
        except InvalidTag:
            raise CorruptFile(f"{name}: chunk {index} fails authentication (damaged or altered)") from None
        pending, index, done = following, index + 1, last
        return plain

    return read


def unpack(src: Path, dst: Path, codec: Codec) -> int:
    """Restore the plain content of stored file `src` into `dst`; return its size."""
    name = src.name
    written = 0
    with open(src, "rb") as f, open(dst, "wb") as out:
        read: Callable[[], bytes] = (_decrypted(f, codec.key, name) if codec.encrypted
                                     else lambda: f.read(CHUNK))
        engine = None
        if codec.compression == "gzip":
            engine = zlib.decompressobj(31)
        elif codec.compression == "zstd":
            engine = zstandard.ZstdDecompressor().decompressobj()
        try:
            while block := read():
                if engine is not None:
                    block = engine.decompress(block)
                out.write(block)
                written += len(block)
            if engine is not None and not engine.eof:
                raise CorruptFile(f"{name}: compressed stream is cut short")
        except (zlib.error, zstandard.ZstdError) as exc:
            raise CorruptFile(f"{name}: cannot decompress: {exc}") from None
    return written
