"""A filesystem storage: crash-safe placement of received files, paths, checksums.

A received object is written to `.tmp/<random>.part`, then placed: renamed to a journal
entry (`.tmp/<encoded final path>.placing`), hard-linked at its final path and fsynced.
The journal entry stays until the object is stored (row committed, file durable). After a
crash, core.services.recovery finishes or undoes every placement that still has a journal
entry, so no file outlives a missing row and no row points to a missing or damaged file.
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

TMP = ".tmp"
PART = ".part"
PLACING = ".placing"


class StorageError(Exception):
    """The storage cannot accept or find a file (disk full, permissions, missing file)."""


# 31**k mod 2**32: Java's String.hashCode is sum(char * 31**(n-1-i)) in 32 bits.
_POWERS = [pow(31, k, 1 << 32) for k in range(256)]


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


def _encode(rel: str) -> str:
    return rel.replace("/", "~") + PLACING


def _decode(name: str) -> str:
    return name.removesuffix(PLACING).replace("~", "/")


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class IncomingFile:
    """A file being received: written in pieces and digested as it goes. Its first
    `HEAD_BYTES` are also kept in memory, so that indexing can parse small objects
    without reading the file back."""

    HEAD_BYTES = 1 << 16

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        self._md5 = hashlib.md5(usedforsecurity=False)
        self.size = 0
        self.head = bytearray()

    def write(self, data: bytes | memoryview) -> None:
        """Append bytes to the file."""
        assert self._fd is not None
        view = memoryview(data)
        self._md5.update(view)
        if len(self.head) < self.HEAD_BYTES:
            self.head += view[: self.HEAD_BYTES - len(self.head)]
        try:
            while view:
                written = os.write(self._fd, view)
                view = view[written:]
                self.size += written
        except OSError as exc:
            raise StorageError(_describe(exc)) from exc

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
        """fsync and close the file (a failed fsync cannot be retried: it closes too)."""
        assert self._fd is not None
        try:
            os.fsync(self._fd)
        except OSError as exc:
            raise StorageError(_describe(exc)) from exc
        finally:
            os.close(self._fd)
            self._fd = None

    def discard(self) -> None:
        """Close (if open) and delete the file; never raises."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        self.path.unlink(missing_ok=True)


def _describe(exc: OSError) -> str:
    if exc.errno == errno.ENOSPC:
        return "storage is full"
    return f"storage error: {exc.strerror or exc}"


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
            raise StorageError(_describe(exc)) from exc

    def confirm(self) -> None:
        """The row is committed: drop the journal entry."""
        self.journal.unlink(missing_ok=True)

    def revoke(self) -> None:
        """The row was not committed: remove the file and the journal entry."""
        self.file.discard()
        self.storage.delete(self.rel_path)
        self.journal.unlink(missing_ok=True)


class FileStorage:
    """Files of one storage system (dcm4chee's `fs1`) under a root folder."""

    def __init__(self, storage_id: str, root: str | Path) -> None:
        self.id = storage_id
        self.root = Path(root)
        self.tmp = self.root / TMP

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
        """A new temporary file for an object being received."""
        try:
            return IncomingFile(self.tmp / f"{uuid.uuid4().hex}{PART}")
        except OSError as exc:
            raise StorageError(_describe(exc)) from exc

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
            journal = self.tmp / _encode(candidate)
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
                raise StorageError(_describe(exc)) from exc
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

    def pending(self) -> list[tuple[str, Path]]:
        """Placements left by a crash: (final path, journal entry). Unfinished receptions
        (.part files) are removed here."""
        found = []
        if not self.tmp.is_dir():
            return found
        for entry in self.tmp.iterdir():
            if entry.name.endswith(PLACING):
                found.append((_decode(entry.name), entry))
            else:
                entry.unlink(missing_ok=True)
        return found

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
