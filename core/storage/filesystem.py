"""A filesystem storage: crash-safe placement of received files, paths, checksums.

A received object is written to `.tmp/<random>.part`, then placed: renamed to a journal
entry (`.tmp/<encoded final path>.<size>.<md5>.placing`), hard-linked at its final path and
fsynced. The journal entry stays until the object is stored for good: file durable, row
committed and that commit durable. After a crash, core.services.recovery finishes or
undoes every placement that still has a journal entry (a whole file whose row was lost is
indexed again: its name says what whole is), so no file outlives a missing row and no
row points to a missing or damaged file.
"""

from __future__ import annotations

import errno
import fcntl
import functools
import hashlib
import mmap
import os
import shutil
import threading
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from core.storage.space import SpaceGuard

TMP = ".tmp"
# Files that start-up recovery could not index (core.services.recovery).
QUARANTINE = ".quarantine"
PART = ".part"
PLACING = ".placing"


class StorageError(Exception):
    """The storage cannot accept or find a file (disk full, permissions, missing file)."""


class _Failures:
    """Turns OSErrors into StorageErrors, telling the space guard of a full disk."""

    def __init__(self, guard: SpaceGuard | None) -> None:
        self.guard = guard

    def __call__(self, exc: OSError) -> StorageError:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            if self.guard is not None:
                self.guard.disk_full(f"a write failed: {exc.strerror}")
            return StorageError("storage is full")
        return StorageError(f"storage error: {exc.strerror or exc}")


# 31**k mod 2**32: Java's String.hashCode is sum(char * 31**(n-1-i)) in 32 bits.
_POWERS = [pow(31, k, 1 << 32) for k in range(256)]


# Objects of one series share two of their three path elements.
@functools.lru_cache(maxsize=1024)
def uid_hash(value: str) -> str:
    """dcm4che's `{tag,hash}` path element: Java's String.hashCode as 8 hex digits."""
    data = value.encode("ascii", "replace")
    n = len(data)
    if n > len(_POWERS):
        h = 0
        for ch in data:
            h = (31 * h + ch) & 0xFFFFFFFF
    else:
        h = sum(map(int.__mul__, data, reversed(_POWERS[:n]))) & 0xFFFFFFFF
    return f"{h:08X}"


def layout(when: datetime, study_uid: str, series_uid: str, sop_uid: str) -> str:
    """dcm4chee's default path format `{yyyy}/{MM}/{dd}/{study}/{series}/{instance}`, hashed:
    never raw UIDs or patient data in paths."""
    return f"{when:%Y/%m/%d}/{uid_hash(study_uid)}/{uid_hash(series_uid)}/{uid_hash(sop_uid)}"


def _encode(rel: str, size: int, digest: str) -> str:
    # Layout paths hold no dots: the last two dot-separated parts are size and MD5.
    return f"{rel.replace('/', '~')}.{size}.{digest}{PLACING}"


def _decode(name: str) -> tuple[str, tuple[int, str] | None]:
    """(final path, (size, MD5) of the whole file) of a journal entry's name; None when
    the name does not say (not one this module wrote)."""
    encoded, _, whole = name.removesuffix(PLACING).partition(".")
    size, _, digest = whole.partition(".")
    rel = encoded.replace("~", "/")
    return rel, (int(size), digest) if size.isdigit() and digest else None


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# Objects of at least DIRECT_FROM bytes are written past the page cache (O_DIRECT), in
# blocks of ALIGN bytes from page-aligned buffers: the file is fsynced before Success
# anyway, and copying into the page cache and writing it back cost several times more
# CPU (a 512 KB object with fsync: 1.5 ms buffered, 0.23 ms direct, on the 2-core CI
# machine). A buffer per object being received, kept for reuse: 1 MiB per association.
ALIGN = 4096
DIRECT_FROM = 1 << 17
STAGE_BYTES = 1 << 20


class _Stages:
    """Reusable page-aligned buffers (anonymous mmaps) that received bytes wait in until
    they are written; one per object being received."""

    def __init__(self) -> None:
        self._free: list[mmap.mmap] = []
        self._lock = threading.Lock()

    def take(self) -> mmap.mmap:
        with self._lock:
            if self._free:
                return self._free.pop()
        return mmap.mmap(-1, STAGE_BYTES)

    def give(self, stage: mmap.mmap) -> None:
        with self._lock:
            self._free.append(stage)


_STAGES = _Stages()


class DirectIO:
    """Whether the storage's filesystem takes O_DIRECT writes; False once it refused."""

    def __init__(self) -> None:
        self.supported = True


class IncomingFile:
    """A file being received: written in pieces and digested as it goes. Its first
    `HEAD_BYTES` are also kept in memory, so that indexing can parse small objects
    without reading the file back. Bytes may wait in a buffer until `finish()`."""

    HEAD_BYTES = 1 << 16

    def __init__(self, path: Path, direct_io: DirectIO, failures: _Failures) -> None:
        self.path = path
        self._failures = failures
        self._fd: int | None = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        self._md5 = hashlib.md5(usedforsecurity=False)
        self.size = 0
        self.head = bytearray()
        self._direct_io = direct_io
        self._direct = False
        self._stage: mmap.mmap | None = None
        self._staged = 0
        self._written = 0

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Append bytes to the file."""
        assert self._fd is not None
        view = memoryview(data)
        self._md5.update(view)
        if len(self.head) < self.HEAD_BYTES:
            self.head += view[: self.HEAD_BYTES - len(self.head)]
        self.size += len(view)
        if self._stage is None:
            self._stage = _STAGES.take()
        try:
            while view:
                n = min(STAGE_BYTES - self._staged, len(view))
                self._stage[self._staged : self._staged + n] = view[:n]
                self._staged += n
                view = view[n:]
                if self._staged == STAGE_BYTES:
                    self._drain(final=False)
        except OSError as exc:
            raise self._failures(exc) from exc

    def finish(self) -> None:
        """Write the bytes still waiting in the buffer: the file then holds everything
        written so far (as fsynced by `sync()`, which finishes first)."""
        if self._stage is None:
            return
        try:
            self._drain(final=True)
        except OSError as exc:
            raise self._failures(exc) from exc
        finally:
            _STAGES.give(self._stage)
            self._stage = None

    def complete(self) -> Path:
        """The file's path, once it holds every byte written so far (see `finish`)."""
        self.finish()
        return self.path

    def _drain(self, *, final: bool) -> None:
        """Write the staged bytes: whole blocks directly when the object is large enough
        and the filesystem allows it; the remainder stays staged, or when `final` is
        written through the page cache."""
        assert self._fd is not None and self._stage is not None
        if (
            self.size >= DIRECT_FROM
            and not self._direct
            and self._direct_io.supported
            and self._written % ALIGN == 0
        ):
            self._set_direct(True)
        end = self._staged - self._staged % ALIGN if self._direct else self._staged
        self._put(end)
        if final and self._staged:
            self._set_direct(False)
            self._put(self._staged)

    def _put(self, end: int) -> None:
        """Write staged bytes [0, end) and move what follows to the start of the buffer."""
        assert self._fd is not None and self._stage is not None
        view = memoryview(self._stage)[:end]
        done = 0
        while done < end:
            try:
                n = os.write(self._fd, view[done:])
                done += n
                self._written += n
            except OSError as exc:
                if exc.errno != errno.EINVAL or not self._direct:
                    raise
                # O_DIRECT was accepted but this write was not (alignment stricter than
                # ALIGN): go on through the page cache.
                self._direct_io.supported = False
                self._set_direct(False)
        view.release()
        rest = self._staged - end
        if rest:
            self._stage[:rest] = self._stage[end : self._staged]
        self._staged = rest

    def _set_direct(self, on: bool) -> None:
        assert self._fd is not None
        if on == self._direct:
            return
        flags = fcntl.fcntl(self._fd, fcntl.F_GETFL)
        if on:
            try:
                fcntl.fcntl(self._fd, fcntl.F_SETFL, flags | os.O_DIRECT)
            except OSError:
                # The filesystem has no O_DIRECT (tmpfs on older kernels, some network ones).
                self._direct_io.supported = False
                return
        else:
            fcntl.fcntl(self._fd, fcntl.F_SETFL, flags & ~os.O_DIRECT)
        self._direct = on

    @property
    def whole_in_memory(self) -> bool:
        """True when `head` holds the whole file."""
        return self.size == len(self.head)

    def digest(self) -> str:
        """MD5 (hex) of everything written."""
        return self._md5.hexdigest()

    @property
    def synced(self) -> bool:
        return self._fd is None

    def sync(self) -> None:
        """Finish, fsync and close the file (a failed fsync cannot be retried: it closes
        too)."""
        assert self._fd is not None
        try:
            self.finish()
            os.fsync(self._fd)
        except OSError as exc:
            raise self._failures(exc) from exc
        finally:
            os.close(self._fd)
            self._fd = None

    def close(self) -> None:
        """Close (if open), keeping the file as it is; never raises."""
        if self._stage is not None:
            _STAGES.give(self._stage)
            self._stage = None
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def discard(self) -> None:
        """Close (if open) and delete the file; never raises."""
        self.close()
        self.path.unlink(missing_ok=True)


@dataclass
class Pending:
    """A placement found at start-up: its final path, journal entry, the (size, MD5) of
    the whole file when the entry's name says, and when the file was written."""

    rel_path: str
    journal: Path
    whole: tuple[int, str] | None
    placed_at: float


@dataclass
class Placement:
    """A file at its final path whose database row is not yet committed."""

    storage: FileStorage
    rel_path: str
    journal: Path
    file: IncomingFile
    created: list[Path]

    def make_durable(self) -> None:
        """fsync the file (which, on a journaling filesystem, also commits its names) and
        any folders created for it, before the row is committed."""
        if self.file.synced:
            return
        self.file.sync()
        try:
            for folder in self.created:
                _fsync_dir(folder)
        except OSError as exc:
            raise self.storage.failures(exc) from exc

    def confirm(self) -> None:
        """The row's commit is durable: drop the journal entry."""
        self.journal.unlink(missing_ok=True)

    def leave(self) -> None:
        """Neither kept nor revoked (its row could not be taken back): the file and its
        journal entry stay for start-up recovery, which keeps the row only if the file
        is whole."""
        self.file.close()

    def revoke(self) -> None:
        """The row was not committed: remove the file and the journal entry."""
        self.file.discard()
        self.storage.delete(self.rel_path)
        self.journal.unlink(missing_ok=True)


class FileStorage:
    """Files of one storage system (dcm4chee's `fs1`) under a root folder."""

    def __init__(self, storage_id: str, root: str | Path, guard: SpaceGuard | None = None) -> None:
        self.id = storage_id
        self.root = Path(root)
        self.tmp = self.root / TMP
        self.direct_io = DirectIO()
        self.guard = guard
        self.failures = _Failures(guard)

    def open(self) -> None:
        """Create the folders if needed and check that they are writable."""
        try:
            self.tmp.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(
                f"{self.root}: cannot create storage folder: {exc.strerror}"
            ) from exc
        if not os.access(self.tmp, os.W_OK):
            raise StorageError(f"{self.root}: storage folder is not writable")

    def incoming(self) -> IncomingFile:
        """A new temporary file for an object being received; refused (StorageError)
        while the space guard says there is too little free space."""
        refused = self.guard.check() if self.guard is not None else None
        if refused is not None:
            raise StorageError(refused)
        try:
            return IncomingFile(
                self.tmp / f"{uuid.uuid4().hex}{PART}", self.direct_io, self.failures
            )
        except OSError as exc:
            raise self.failures(exc) from exc

    def place(self, incoming: IncomingFile, rel_path: str) -> Placement:
        """Give a received file its final path (`rel_path`, or `rel_path-N` when taken)
        with a journal entry. The caller makes it durable, commits the row, then confirms
        or revokes.

        The .part file is renamed to the journal entry, then linked at the final path;
        journaling filesystems (ext4, XFS) commit those in order, so the journal entry is
        durable no later than the final name."""
        for n in range(1000):
            candidate = rel_path if n == 0 else f"{rel_path}-{n}"
            final = self.root / candidate
            journal = self.tmp / _encode(candidate, incoming.size, incoming.digest())
            if final.exists() or journal.exists():
                continue
            try:
                os.rename(incoming.path, journal)
                incoming.path = journal
                created = self._make_parents(final.parent)
                os.link(journal, final)
            except FileExistsError:
                continue
            except OSError as exc:
                raise self.failures(exc) from exc
            return Placement(self, candidate, journal, incoming, created)
        raise StorageError(f"no free file name for {rel_path}")

    def _make_parents(self, folder: Path) -> list[Path]:
        """Create `folder` and missing parents; returns the folders whose entries changed
        (the new folders and the parent of the topmost one)."""
        if folder.is_dir():
            return []
        missing: list[Path] = []
        probe = folder
        while not probe.exists():
            missing.append(probe)
            probe = probe.parent
        folder.mkdir(parents=True, exist_ok=True)
        return [*missing, missing[-1].parent]

    def path(self, rel_path: str) -> Path:
        """The absolute path of a stored file."""
        return self.root / rel_path

    def delete(self, rel_path: str) -> None:
        """Delete a stored file (missing files are fine) and prune empty folders."""
        file = self.root / rel_path
        file.unlink(missing_ok=True)
        folder = file.parent
        while folder != self.root and folder.is_relative_to(self.root):
            try:
                folder.rmdir()
            except OSError:
                break
            folder = folder.parent

    def pending(self) -> list[Pending]:
        """Placements left by a crash, oldest first (a replacement after what it
        replaced). Unfinished receptions (.part files) are removed here."""
        found = []
        if not self.tmp.is_dir():
            return found
        for entry in self.tmp.iterdir():
            if entry.name.endswith(PLACING):
                rel, whole = _decode(entry.name)
                try:
                    placed_at = entry.stat().st_mtime
                except FileNotFoundError:
                    continue
                found.append(Pending(rel, entry, whole, placed_at))
            else:
                entry.unlink(missing_ok=True)
        return sorted(found, key=lambda p: p.placed_at)

    def finish_placement(self, rel_path: str, journal: Path) -> None:
        """Keep a pending placement: make sure the final name exists, drop the journal."""
        final = self.root / rel_path
        if not final.exists():
            final.parent.mkdir(parents=True, exist_ok=True)
            os.link(journal, final)
        journal.unlink(missing_ok=True)

    def undo_placement(self, rel_path: str, journal: Path) -> None:
        """Drop a pending placement: its final name (if it is this file) and the journal."""
        final = self.root / rel_path
        if final.exists() and os.path.samefile(journal, final):
            self.delete(rel_path)
        journal.unlink(missing_ok=True)

    def quarantine(self, rel_path: str, journal: Path) -> Path:
        """Move a pending placement that cannot be indexed aside, out of the layout, to
        `.quarantine/` (named after its final path); returns where it went."""
        final = self.root / rel_path
        if final.exists() and os.path.samefile(journal, final):
            self.delete(rel_path)
        folder = self.root / QUARANTINE
        folder.mkdir(exist_ok=True)
        name = rel_path.replace("/", "~")
        target = folder / f"{name}.dcm"
        n = 0
        while target.exists():
            n += 1
            target = folder / f"{name}-{n}.dcm"
        os.rename(journal, target)
        return target

    @staticmethod
    def digest_of(path: Path) -> tuple[int, str]:
        """(size, MD5 hex) of a file."""
        md5 = hashlib.md5(usedforsecurity=False)
        size = 0
        with path.open("rb") as file:
            while chunk := file.read(1 << 20):
                md5.update(chunk)
                size += len(chunk)
        return size, md5.hexdigest()

    def usage(self) -> tuple[int, int]:
        """(used, free) bytes of the filesystem holding this storage."""
        _total, used, free = shutil.disk_usage(self.root)
        return used, free
