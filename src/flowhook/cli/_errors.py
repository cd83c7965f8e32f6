"""The errors any command may meet that are not bugs, each as one sentence: the store in use by another process,
a setting that does not parse, the spool or a secret out of reach, a file the system refuses.

The root command group turns them into `error: …` on stderr and exit 1 (`_app.Commands`), so commands do not
each catch them and none of them ends in a traceback. Anything else is a bug, and keeps its traceback.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING

from flowhook.settings import get_settings

if TYPE_CHECKING:
    from pydantic import ValidationError

_DUCKDB_LOCK = re.compile(
    r'Could not set lock on file "(?P<path>[^"]+)": Conflicting lock is held in (?P<program>.+?) \(PID (?P<pid>\d+)\)'
)
_TRY_AGAIN = "try again when it is done, or stop it"


def explain(exc: BaseException) -> str | None:
    """The sentence for an expected error, or None for anything else (a bug: let it raise)."""
    import duckdb
    from pydantic import ValidationError

    from flowhook.gateway.secrets import SecretUnavailable
    from flowhook.spool import SpoolUnavailable
    from flowhook.store import StoreLockTimeout

    if isinstance(exc, StoreLockTimeout):
        return _lock_timeout(exc)
    if isinstance(exc, duckdb.IOException):
        return _duckdb_io(str(exc))
    if isinstance(exc, ValidationError) and exc.title == "Settings":
        return _settings(exc)
    if isinstance(exc, SpoolUnavailable | SecretUnavailable):
        return str(exc)
    if isinstance(exc, OSError) and exc.filename is not None:
        return f"{exc.strerror or type(exc).__name__}: {exc.filename}"
    return None


def _duckdb_io(message: str) -> str:
    """DuckDB admits one read-write process per file and says which one holds it; its other I/O errors (a disk
    full, a file it may not read) are said as they are."""
    held = _DUCKDB_LOCK.search(message)
    if held is None:
        return f"the store failed: {message}"
    return (
        f"the store at {held['path']} is in use by another process (pid {held['pid']}, {held['program']}): "
        f"DuckDB lets one process open it at a time; {_TRY_AGAIN}"
    )


def _lock_timeout(exc: Exception) -> str:
    """flowhook's own processes queue on a lock file beside the store; past the wait, name who holds it if Linux
    says so."""
    from flowhook.store import DuckDBStore, store_from_config

    settings = get_settings()
    store = store_from_config(settings.store_config)
    if not isinstance(store, DuckDBStore):  # a DuckLake: the catalog's advisory lock, held by a writer anywhere
        return f"the store is in use by another writer: {exc}; {_TRY_AGAIN}"
    pid = flock_holder(store.lock_path)
    who = "another process" if pid is None else f"another process (pid {pid}?)"
    return (
        f"the store at {store.path} is in use by {who}: its lock {store.lock_path.name} was not free within "
        f"{store.lock_timeout:g} s (FLOWHOOK_LOCK_TIMEOUT_SECONDS); {_TRY_AGAIN}"
    )


def flock_holder(path: Path) -> int | None:
    """The pid that took a `flock` on `path`, from /proc/locks (Linux); None where that cannot be told.

    A lock passed on to a forked child still names the parent, hence the `?` where it is shown.
    """
    try:
        stat = path.stat()
        locks = Path("/proc/locks").read_text()
    except OSError:
        return None
    inode = f"{os.major(stat.st_dev):02x}:{os.minor(stat.st_dev):02x}:{stat.st_ino}"
    for line in locks.splitlines():
        fields = line.split()
        # `1: FLOCK  ADVISORY  WRITE 4242 08:01:1234 0 EOF`; a waiter's line has `->` after the number.
        if len(fields) >= 6 and fields[1] == "FLOCK" and fields[5] == inode and fields[4].isdigit():
            return int(fields[4])
    return None


def _settings(exc: ValidationError) -> str:
    problems = []
    for error in exc.errors():
        name = "__".join(str(part) for part in error["loc"])
        variable = name if name.isupper() else f"FLOWHOOK_{name.upper()}"  # an alias is the variable's own name
        problems.append(f"{variable}: {error['msg']}" if name else error["msg"])
    return f"a setting is not valid: {'; '.join(problems)}"
