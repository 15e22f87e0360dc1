"""Atomic file and folder writes: nothing a user made is ever left half-written, replaced or
deleted by a write it did not ask for.

* ``atomic_path`` / ``atomic_dir``: write beside the target, rename onto it at the end. A folder
  being replaced is parked under a name only anirec uses (``.NAME.PID.RANDOM.old``, with a
  marker file inside), so a write killed mid-swap is put back by the next one, and a user's own
  ``.NAME.old`` is never taken for it.
* ``output_lock``: an advisory lock (``fcntl.flock`` on ``.NAME.lock`` beside the target), so
  two writers of one target never interleave; the second waits a bounded time or is told which
  process holds it.
* ``check_writable_output``, ``check_replaceable_dir``, ``check_outputs_not_inputs``: what a
  command checks before any work, so a bad ``--out`` costs a second, not the run.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import secrets
import shutil
import tempfile
import time
from pathlib import Path
from typing import Callable, Iterable, Iterator

from .errors import AnirecError, warn

try:
    import fcntl
except ImportError:  # not POSIX: writes still rename atomically, only unlocked
    fcntl = None

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


def resolve_output(path: str | Path) -> Path:
    """The real location a folder output is written at: ``.`` and ``..`` resolved, symbolic links
    followed (a link to a folder is written through, and stays a link)."""
    return Path(os.path.realpath(Path(path).expanduser()))


# ------------------------------------------------------------------ the writer lock

# How long a writer waits for another to finish replacing the same target (ANIREC_LOCK_WAIT).
LOCK_WAIT_S = 120.0
_held: dict[str, list] = {}  # lock file -> [fd, depth]: this process's locks (a nested take is free)


def lock_file(dest: str | Path) -> Path:
    dest = Path(dest)
    return dest.with_name(f".{dest.name}.lock")


def _lock_holder(path: Path) -> str:
    try:
        pid = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        pid = ""
    return f"pid {pid}" if pid.isdigit() else "another process"


def _try_lock(path: Path) -> int | None:
    """An fd holding the exclusive lock on ``path``, None if another process holds it, -1 where
    the file system has no locks (the write then goes ahead unlocked, as before locks)."""
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o666 & ~_umask())
        except OSError:
            return -1  # the write itself will say why the folder is unusable
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        except OSError:
            os.close(fd)
            return -1
        try:  # a holder unlinks the file as it lets go: a lock on that old file locks nothing
            same = os.path.samestat(os.fstat(fd), os.stat(path))
        except FileNotFoundError:
            same = False
        if same:
            return fd
        os.close(fd)


def _lock_wait() -> float:
    try:
        return max(0.0, float(os.environ.get("ANIREC_LOCK_WAIT", LOCK_WAIT_S)))
    except ValueError:
        return LOCK_WAIT_S


@contextlib.contextmanager
def output_lock(dest: str | Path, what: str = "--out", wait: float | None = None) -> Iterator[None]:
    """Hold the advisory lock of the output ``dest`` (``.NAME.lock`` beside it) for the block.

    Another process holding it: wait up to ``wait`` seconds (default ``LOCK_WAIT_S``, or
    $ANIREC_LOCK_WAIT), saying so once, then AnirecError naming that process. Taking a lock this
    process already holds is free (a command locks its output up front; the write locks again)."""
    path = lock_file(resolve_output(dest))
    key = str(path)
    if fcntl is None or key in _held:
        if key in _held:
            _held[key][1] += 1
        try:
            yield
        finally:
            if key in _held:
                _held[key][1] -= 1
        return
    with contextlib.suppress(OSError):  # (an unusable parent: the write itself says why)
        path.parent.mkdir(parents=True, exist_ok=True)
    wait = _lock_wait() if wait is None else wait
    deadline, told = time.monotonic() + wait, wait < 5  # (a short wait only rides out a reader's glance)
    while (fd := _try_lock(path)) is None:
        holder = _lock_holder(path)
        if time.monotonic() >= deadline:
            raise AnirecError(f"{what} {dest}: another anirec ({holder}) is writing it. Wait for it to finish, "
                              f"or choose another {what}.")
        if not told:
            warn(f"{what} {dest}: waiting for another anirec ({holder}) to finish writing it (up to {wait:.0f} s).")
            told = True
        time.sleep(0.05)
    if fd == -1:
        yield
        return
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    _held[key] = [fd, 1]
    try:
        yield
    finally:
        _held[key][1] -= 1
        if _held[key][1] == 0:
            del _held[key]
            with contextlib.suppress(OSError):
                path.unlink()  # still holding it: nobody can take the old file after this
            os.close(fd)


def lock_holder(dest: str | Path) -> str | None:
    """Who holds ``dest``'s writer lock now ("pid N"), or None when nobody does (for readers)."""
    path = lock_file(resolve_output(dest))
    if fcntl is None or str(path) in _held:
        return None
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return _lock_holder(path)
    except OSError:
        return None
    finally:
        os.close(fd)
    return None


# ------------------------------------------------------------------ folders replaced whole

PARK_MARKER = ".anirec-parked.json"  # inside a folder anirec parked, naming the target it belongs to


def _parked(dest: Path) -> list[Path]:
    """Folders that killed writes of ``dest`` parked: anirec's name pattern, a dead writer, and
    the marker that writer put inside naming ``dest``; oldest first."""
    pattern = re.compile(rf"^\.{re.escape(dest.name)}\.(\d+)\.[0-9a-f]+\.old$")
    found = []
    with contextlib.suppress(OSError):
        for entry in dest.parent.iterdir():
            m = pattern.match(entry.name)
            if not m or entry.is_symlink() or not entry.is_dir() or _pid_alive(int(m.group(1))):
                continue
            try:
                marker = json.loads((entry / PARK_MARKER).read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue  # not verifiably anirec's: leave it alone
            if isinstance(marker, dict) and marker.get("target") == dest.name and marker.get("pid") == int(m.group(1)):
                found.append(entry)
    return sorted(found, key=lambda p: p.stat().st_mtime_ns)


def _recover_parked(dest: Path) -> None:
    """Put back the folder a killed write parked (when the target is missing); drop parked
    leftovers of writes that were killed after their new folder was in place."""
    parked = _parked(dest)
    if parked and not dest.exists():
        # Killed between parking the previous version and moving the new one in: the parked
        # folder is complete, so put it back before anything else can go wrong.
        newest = parked.pop()
        os.replace(newest, dest)
        with contextlib.suppress(OSError):
            (dest / PARK_MARKER).unlink()
    for leftover in parked:
        _discard(leftover, dest)
    marker = dest / PARK_MARKER  # killed after marking the folder, before parking it
    with contextlib.suppress(OSError, ValueError):
        if dest.is_dir() and not _pid_alive(int(json.loads(marker.read_text(encoding="utf-8"))["pid"])):
            marker.unlink()


def _discard(folder: Path, dest: Path) -> None:
    """Remove a folder of ours beside ``dest``: first renamed to one of ``dest``'s temp names
    (which the next write cleans up by PID if this is killed halfway), so a half-deleted folder
    never keeps a name that could be taken for something else."""
    trash = dest.with_name(f"{_temp_prefix(dest)}{secrets.token_hex(4)}.tmp")
    try:
        os.replace(folder, trash)
    except OSError:
        return
    shutil.rmtree(trash, ignore_errors=True)


def _swap_in(tmp: Path, dest: Path) -> None:
    if not dest.exists():
        os.replace(tmp, dest)
        return
    park = dest.with_name(f".{dest.name}.{os.getpid()}.{secrets.token_hex(4)}.old")
    with contextlib.suppress(OSError):  # unmarked, a park killed mid-swap is only left, never put back
        (dest / PARK_MARKER).write_text(json.dumps({"target": dest.name, "pid": os.getpid()}), encoding="utf-8")
    os.replace(dest, park)
    try:
        os.replace(tmp, dest)
    except BaseException:
        os.replace(park, dest)  # the previous version back where it was
        with contextlib.suppress(OSError):
            (dest / PARK_MARKER).unlink()
        raise
    _discard(park, dest)


@contextlib.contextmanager
def atomic_dir(dest: str | Path, what: str = "--out") -> Iterator[Path]:
    """Yield a temporary folder beside ``dest``; it replaces ``dest`` only if the block succeeds.

    ``dest`` is resolved first (``.``, symbolic links), and the whole write holds its lock."""
    dest = resolve_output(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    with output_lock(dest, what):
        clean_stale_temps(dest)
        _recover_parked(dest)
        tmp = Path(tempfile.mkdtemp(prefix=_temp_prefix(dest), suffix=".tmp", dir=dest.parent))
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes 0700; outputs (models, exports) are meant to be shared
        try:
            yield tmp
            _swap_in(tmp, dest)
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
    target = resolve_output(path) if kind == "dir" else path  # a folder is written where it really is
    if kind == "file" and path.is_dir():
        raise AnirecError(f"{what} {path}: is a folder; pass a file path (e.g. {path / 'out.parquet'}).")
    if kind != "file" and path.exists() and not path.is_dir():
        raise AnirecError(f"{what} {path}: is a file, not a folder; pass a folder path or move the file away.")
    # The folder the write creates its temp in: the output folder itself for "files-in" when it
    # exists, else the nearest existing ancestor (the missing folders below it are created).
    probe_in = path if (kind == "files-in" and path.is_dir()) else target.parent
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


def read_json_manifest(folder: Path, name: str = "manifest.json") -> dict | None:
    """``folder/name`` parsed, when it is a plain file holding a JSON object; else None."""
    path = folder / name
    try:
        if path.is_symlink() or not path.is_file() or path.stat().st_size > (16 << 20):
            return None
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def check_replaceable_dir(folder: str | Path, kind: str, is_ours: Callable[[dict], bool], what: str = "--out") -> Path:
    """``folder`` may be replaced whole by a write of ``kind`` (e.g. "a fitted recommender"): it
    is new, empty, or holds a manifest.json that ``is_ours`` recognises as that kind's. Anything
    else would be lost, so it is refused, before any work. Returns the folder as given."""
    folder = Path(folder).expanduser()
    real = resolve_output(folder)
    if real.is_dir():
        try:
            empty = not any(real.iterdir())
        except OSError as exc:
            raise AnirecError(f"{what} {folder}: cannot be read ({exc.strerror or exc}). Choose another {what}.") from None
        manifest = None if empty else read_json_manifest(real)
        if not empty and (manifest is None or not is_ours(manifest)):
            has = f"holds a manifest.json that is not {kind}'s" if (real / "manifest.json").exists() \
                else f"exists and is not {kind} folder"
            raise AnirecError(f"{what} {folder}: {has}, so replacing it would lose what is there. "
                              f"Pass a new or empty folder (or delete this one yourself).")
    return check_writable_output(folder, "dir", what)


def _same_place(a: Path, b: Path) -> bool:
    if os.path.realpath(a) == os.path.realpath(b):
        return True
    try:
        return os.path.samefile(a, b)  # hard links
    except OSError:
        return False


def _inside(path: Path, folder: Path) -> bool:
    real, root = os.path.realpath(path), os.path.realpath(folder)
    return real == root or real.startswith(root.rstrip(os.sep) + os.sep)


def check_outputs_not_inputs(outputs: Iterable[tuple], inputs: Iterable[tuple[str, str | Path | None]]) -> None:
    """Refuse, before any work, an output that is one of the command's inputs.

    ``outputs``: ``(option, path)`` for a file written whole, ``(option, path, "dir")`` for a
    folder replaced whole (an input inside it would be deleted too). ``inputs``: ``(option,
    path)`` of every local file or folder the command reads (None and non-paths are skipped).
    Paths are compared resolved (``..``, symbolic links; hard links for existing files)."""
    inputs = [(w, Path(p).expanduser()) for w, p in inputs if p is not None and str(p)]
    for output in outputs:
        if output[1] is None:
            continue
        what, out, kind = output[0], Path(output[1]).expanduser(), (output[2] if len(output) > 2 else "file")
        for in_what, source in inputs:
            if _same_place(out, source):
                raise AnirecError(f"{what} {out}: is the {in_what} input {source}; writing it would destroy that input. "
                                  f"Choose another {what}.")
            if kind == "dir" and _inside(source, out):
                raise AnirecError(f"{what} {out}: the {in_what} input {source} is inside it, and the folder is "
                                  f"replaced whole. Move the input out, or choose another {what}.")


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


def hash_file(path: str | Path, algo: str = "sha256") -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, algo).hexdigest()
