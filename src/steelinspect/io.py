"""Small file helpers: outputs are written to a temporary file (or folder) and renamed, so an interrupted run
never leaves a half-written file where a good one was.

Temporaries sit beside their target as `.{name}.{pid}.{random}.tmp`. A writer killed outright (SIGKILL, power
loss) cannot remove its own, so the next write of the same target removes those whose process is gone; a live
writer's temporary (its process still exists) is never touched.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import time
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

from steelinspect.errors import ConfigError, RunError, SteelInspectError


@contextmanager
def atomic_write(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success rename it over `path`, else remove it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path)
    fd, tmp = tempfile.mkstemp(prefix=_temp_prefix(path), suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp makes 0600; outputs get the usual permissions
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


@contextmanager
def atomic_dir(path: str | Path, replaceable: Callable[[Path], bool] | None = None,
               what: str = "output folder") -> Iterator[Path]:
    """Yield an empty temporary folder beside `path`; on success it takes `path`'s place (a previous folder there
    is removed), else it is removed and `path` stays exactly as it was.

    `replaceable(entry)` says whether an entry of an existing `path` is a previous output that may be replaced;
    any other entry (the user's own files; any entry at all when `replaceable` is None) refuses the write before
    anything is done, so a careless --out never deletes them. The swap is two renames: a crash in the microseconds
    between them leaves no folder at `path` (the old one sits under a temporary name, which the next write of
    `path` removes), never a mix of old and new.
    """
    path = Path(os.path.abspath(path))
    if path.exists() or path.is_symlink():
        if path.is_symlink():  # swapping would replace the link, not the folder it points to
            raise ConfigError(f"is a symbolic link; give the {what}'s real folder", path)
        if not path.is_dir():
            raise ConfigError(f"exists and is not a folder; the {what} must be a folder", path)
        cwd = Path.cwd().resolve()
        if cwd == path.resolve() or path.resolve() in cwd.parents:
            raise ConfigError(f"is the current folder (or holds it); choose a new folder for the {what}", path)
        foreign = sorted(e.name for e in path.iterdir() if not (replaceable and replaceable(e)))
        if foreign:
            raise ConfigError(f"holds {len(foreign)} file(s) that are not a previous {what} (e.g. {foreign[0]}); "
                              "refusing to replace it: choose a new or empty folder", path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path)
    tmp = Path(tempfile.mkdtemp(prefix=_temp_prefix(path), suffix=".tmp", dir=path.parent))
    os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes 0700
    try:
        yield tmp
        if path.exists():
            old = Path(tempfile.mkdtemp(prefix=_temp_prefix(path), suffix=".tmp", dir=path.parent))
            os.replace(path, old)  # replaces the empty placeholder: the name stays ours, PID included
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


@contextmanager
def scratch_dir(beside: str | Path) -> Iterator[Path]:
    """A temporary working folder beside `beside`, removed with everything in it when the block ends (also on an
    error). Named like `beside`'s other temporaries, so one left by a killed process is removed by the next write
    of `beside` (remove_stale_temporaries)."""
    path = Path(os.path.abspath(beside))
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path)
    tmp = Path(tempfile.mkdtemp(prefix=_temp_prefix(path), suffix=".tmp", dir=path.parent))
    os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes 0700; the usual permissions, as atomic_dir gives
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _temp_prefix(path: Path) -> str:
    return f".{path.name}.{os.getpid()}."


# Temporary names: .{target}.{pid}.{random}.tmp (mkstemp's random part has no dot, so the parse is unique).
_TEMP_NAME = re.compile(r"\.(.+)\.(\d+)\.[^.]+\.tmp")
# A folder is listed once per _SCAN_TTL seconds, not once per write: a stream of thousands of files into one
# folder (overlays) would otherwise list it thousands of times. A writer that dies after the listing leaves its
# temporary to the next listing (or the next run).
_SCAN_TTL = 30.0
_scans: dict[str, tuple[float, dict[str, list[tuple[str, int]]]]] = {}


def remove_stale_temporaries(path: str | Path) -> list[Path]:
    """Remove the temporaries of `path` (files or folders `.{name}.{pid}.*.tmp` beside it) whose writing process
    no longer exists; returns what was removed."""
    path = Path(path)
    if os.name != "posix":  # os.kill(pid, 0) probes a process only on POSIX (on Windows it would end it)
        return []
    folder = os.path.abspath(path.parent)
    now = time.monotonic()
    scan = _scans.get(folder)
    if scan is None or now - scan[0] > _SCAN_TTL:
        temps: dict[str, list[tuple[str, int]]] = {}
        try:
            with os.scandir(folder) as entries:
                for entry in entries:
                    match = _TEMP_NAME.fullmatch(entry.name)
                    if match:
                        temps.setdefault(match.group(1), []).append((entry.name, int(match.group(2))))
        except OSError:
            return []
        if len(_scans) > 256:  # a long-lived process (the web server) writing into many folders
            for key in [k for k, (t, _) in _scans.items() if now - t > _SCAN_TTL]:
                _scans.pop(key, None)
        scan = _scans[folder] = (now, temps)
    removed = []
    for name, pid in scan[1].pop(path.name, []):
        if _process_exists(pid):
            continue
        stale = Path(folder, name)
        try:
            if stale.is_dir() and not stale.is_symlink():
                shutil.rmtree(stale)
            else:
                stale.unlink()
            removed.append(stale)
        except OSError:  # gone already (another writer of the same target), or not ours to remove
            pass
    return removed


def _process_exists(pid: int) -> bool:
    if pid == os.getpid() or pid <= 0:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    except OverflowError:  # no such PID can exist, so the name is not one of ours: leave the file alone
        return True
    return True


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def load_torch_file(path: str | Path, what: str, error: type[SteelInspectError] = RunError) -> Any:
    """torch.load with weights_only=True: tensors and plain values only, so loading a file can never run code.

    A refused or unreadable file raises `error` in one line: "<file>: not a <what> (<short reason>)"; torch's
    own message runs to several lines of advice about trusting the file, which is exactly what we do not do.
    """
    import pickle

    import torch

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. torch's note on a pickle protocol: our one line says it all
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a foreign, truncated or hostile file raises many types
        text = str(exc)
        if isinstance(exc, pickle.UnpicklingError) and "weights only" in text.lower():
            found = re.search(r"GLOBAL ([\w.]+)", text)
            reason = (f"it holds {found.group(1) if found else 'Python objects'}, not only tensors and plain values; "
                      "refused without running it")
        elif "zip archive" in text or "central directory" in text:
            reason = "truncated, or not a PyTorch file"
        else:
            first = " ".join(text.split())[:120]
            reason = f"unreadable: {type(exc).__name__}{': ' + first if first else ''}"
        raise error(f"not a {what} ({reason})", path) from None


def write_json(path: str | Path, data: Any) -> None:
    with atomic_write(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, default=_jsonable) + "\n")


def read_json(path: str | Path) -> Any:
    return json.loads(Path(path).read_text())


def _jsonable(value: Any) -> Any:
    import numpy as np

    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")
