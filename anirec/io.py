"""Atomic file and folder writes: nothing a user made is ever left half-written."""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import tempfile
import time
from pathlib import Path
from typing import Iterator

from .errors import AnirecError

# Temp names are ".NAME.PID.RANDOM.tmp": the PID tells a later write whether the writer is gone.
# mkstemp's random part has no dots, so ".a.1.x.tmp" (target "a") never matches target "a.1".
_LEGACY_TEMP_AGE_S = 3600  # temps from before PIDs were in the name: stale once this old


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True  # another write to the same target in this process: not ours to remove
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(OSError):
            path.unlink()


def clean_stale_temps(dest: str | Path) -> list[Path]:
    """Remove the temp files/folders that killed writes to ``dest`` left beside it (their writer
    process is gone); returns what was removed."""
    dest = Path(dest)
    if not dest.parent.is_dir():
        return []
    name = re.escape(dest.name)
    with_pid = re.compile(rf"^\.{name}\.(\d+)\.[A-Za-z0-9_]+\.tmp$")
    legacy = re.compile(rf"^\.{name}\.[A-Za-z0-9_]+\.tmp$")
    removed = []
    try:
        entries = list(dest.parent.iterdir())
    except OSError:
        return []
    for entry in entries:
        if m := with_pid.match(entry.name):
            stale = not _pid_alive(int(m.group(1)))
        elif legacy.match(entry.name):
            try:
                stale = time.time() - entry.lstat().st_mtime > _LEGACY_TEMP_AGE_S
            except OSError:
                continue
        else:
            continue
        if stale:
            _remove(entry)
            removed.append(entry)
    return removed


def _temp_prefix(dest: Path) -> str:
    return f".{dest.name}.{os.getpid()}."


@contextlib.contextmanager
def atomic_path(dest: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``dest``; rename it onto ``dest`` only if the block succeeds."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    clean_stale_temps(dest)
    fd, tmp = tempfile.mkstemp(prefix=_temp_prefix(dest), suffix=".tmp", dir=dest.parent)
    os.close(fd)
    tmp = Path(tmp)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; the result should look like any file the user writes
    try:
        yield tmp
        os.replace(tmp, dest)
    finally:
        if tmp.exists():
            tmp.unlink()


@contextlib.contextmanager
def atomic_dir(dest: str | Path) -> Iterator[Path]:
    """Yield a temporary folder beside ``dest``; it replaces ``dest`` only if the block succeeds."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    clean_stale_temps(dest)
    old = dest.with_name(f".{dest.name}.old")
    if old.exists() and not dest.exists():
        # A write was killed between parking the previous version and moving the new one in:
        # the parked folder is complete, so put it back before anything else can go wrong.
        os.replace(old, dest)
    tmp = Path(tempfile.mkdtemp(prefix=_temp_prefix(dest), suffix=".tmp", dir=dest.parent))
    os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes 0700; outputs (models, exports) are meant to be shared
    try:
        yield tmp
        if dest.exists():
            shutil.rmtree(old, ignore_errors=True)
            os.replace(dest, old)
            os.replace(tmp, dest)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, dest)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def check_writable_output(path: str | Path, kind: str = "file", what: str = "--out") -> Path:
    """Refuse, before any work, an output that the final write could not produce.

    ``kind``: "file" (written with atomic_path beside itself), "dir" (a folder created or
    replaced whole with atomic_dir, also beside itself), or "files-in" (a folder that files
    are written into, e.g. the evaluation tables). Refused: a file output that is a folder,
    a folder output that is a file, a parent that is a file, and a folder the write must
    create things in but cannot (probed by creating a file: that also catches read-only
    mounts and ACLs, which permission bits do not show; an unnamed O_TMPFILE file where the
    system has them, so a kill during the probe leaves nothing behind).
    """
    if kind not in ("file", "dir", "files-in"):
        raise ValueError(f"kind must be 'file', 'dir' or 'files-in', not {kind!r}")
    path = Path(path).expanduser()
    if kind == "file" and path.is_dir():
        raise AnirecError(f"{what} {path}: is a folder; pass a file path (e.g. {path / 'out.parquet'}).")
    if kind != "file" and path.exists() and not path.is_dir():
        raise AnirecError(f"{what} {path}: is a file, not a folder; pass a folder path or move the file away.")
    # The folder the write creates its temp in: the output folder itself for "files-in" when it
    # exists, else the nearest existing ancestor (the missing folders below it are created).
    probe_in = path if (kind == "files-in" and path.is_dir()) else path.parent
    while not probe_in.exists():
        if probe_in.is_symlink():
            raise AnirecError(f"{what} {path}: {probe_in} is a broken symbolic link. Fix it or choose another path.")
        probe_in = probe_in.parent
    if not probe_in.is_dir():
        raise AnirecError(f"{what} {path}: {probe_in} is a file, so nothing can be created under it. Choose another path.")
    try:
        with tempfile.TemporaryFile(prefix=".anirec-write-check.", dir=probe_in):
            pass
    except OSError as exc:
        raise AnirecError(
            f"{what} {path}: cannot write in {probe_in} ({exc.strerror or exc}). "
            "Choose a folder you can write to, or fix its permissions."
        ) from None
    return path


def write_parquet(df, dest: str | Path) -> Path:
    """Write a DataFrame to parquet atomically."""
    with atomic_path(dest) as tmp:
        df.to_parquet(tmp, index=False)
    return Path(dest)


def write_text(text: str, dest: str | Path) -> Path:
    with atomic_path(dest) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(dest)


def hash_strings(strings, algo: str = "sha256") -> str:
    """Order-sensitive hash of a sequence of strings (descriptions, ids)."""
    h = hashlib.new(algo)
    for s in strings:
        b = str(s).encode("utf-8")
        h.update(len(b).to_bytes(8, "little"))
        h.update(b)
    return h.hexdigest()


def hash_file(path: str | Path, algo: str = "sha256", chunk: int = 1 << 20) -> str:
    h = hashlib.new(algo)
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()
