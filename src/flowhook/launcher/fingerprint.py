"""A fingerprint of the code a warm template has imported: when it changes, the template is replaced.

Files are compared by (path, size, mtime): a stat per file, ~1-2 ms for the project's few hundred files,
cheap enough to check before every fork.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
from collections.abc import Iterable, Sequence
from pathlib import Path


def module_origin(name: str) -> Path | None:
    """The file a module would be imported from (its package folder for a package), without importing it
    when it is top-level; None when it cannot be found."""
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    if spec is None or spec.origin is None or spec.origin in ("built-in", "frozen"):
        return None
    origin = Path(spec.origin)
    return origin.parent if origin.name == "__init__.py" else origin


def _python_files(path: Path) -> Iterable[Path]:
    if path.is_file():
        yield path
        return
    for folder, dirs, files in os.walk(path):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__" and not d.startswith("."))
        for name in sorted(files):
            if name.endswith(".py"):
                yield Path(folder) / name


def fingerprint(paths: Sequence[Path]) -> str:
    """A hash over every Python file under `paths` (files or folders): their names, sizes and mtimes.

    A missing path counts as missing, so creating it changes the fingerprint too."""
    digest = hashlib.sha1(usedforsecurity=False)
    for root in paths:
        digest.update(f"{root}\0".encode())
        for file in _python_files(root):
            try:
                st = file.stat()
            except OSError:
                continue  # deleted while we walked: the next check sees it gone
            digest.update(f"{file}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def code_paths(root: Path, event_modules: Sequence[str]) -> list[Path]:
    """What a flow run executes from this project: the flowhook package, `flows/`, `tasks/` under the
    repository root, and the user's event modules (those that can be found)."""
    import flowhook

    paths = [Path(flowhook.__file__).parent, root / "flows", root / "tasks"]
    for name in event_modules:
        origin = module_origin(name)
        if origin is not None and origin not in paths:
            paths.append(origin)
    return paths
