"""The code fingerprint that decides when the warm template is replaced."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from flowhook.launcher.fingerprint import code_paths, fingerprint, module_origin


def _touch(path: Path, text: str, *, mtime_ns: int) -> None:
    path.write_text(text)
    os.utime(path, ns=(mtime_ns, mtime_ns))


def test_a_fingerprint_changes_when_a_python_file_changes_appears_or_goes(tmp_path: Path) -> None:
    (tmp_path / "pkg").mkdir()
    module = tmp_path / "pkg" / "events.py"
    _touch(module, "X = 1\n", mtime_ns=1_000_000_000)
    first = fingerprint([tmp_path])
    assert fingerprint([tmp_path]) == first  # nothing changed: the same

    _touch(module, "X = 1\n", mtime_ns=2_000_000_000)  # saved again, same size
    touched = fingerprint([tmp_path])
    assert touched != first

    (tmp_path / "pkg" / "__pycache__").mkdir()
    (tmp_path / "pkg" / "__pycache__" / "events.cpython-311.py").write_text("")
    (tmp_path / "pkg" / "notes.txt").write_text("not code")
    assert fingerprint([tmp_path]) == touched  # bytecode caches and other files do not count

    (tmp_path / "pkg" / "more.py").write_text("Y = 2\n")
    added = fingerprint([tmp_path])
    assert added != touched
    (tmp_path / "pkg" / "more.py").unlink()
    assert fingerprint([tmp_path]) == touched


def test_a_missing_path_counts_and_its_creation_changes_the_fingerprint(tmp_path: Path) -> None:
    missing = tmp_path / "later.py"
    before = fingerprint([missing])
    missing.write_text("Z = 3\n")
    assert fingerprint([missing]) != before


def test_code_paths_name_the_package_the_flows_the_tasks_and_each_findable_event_module(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "my_events.py").write_text("")
    (tmp_path / "my_pkg").mkdir()
    (tmp_path / "my_pkg" / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    paths = code_paths(Path("/repo"), ["my_events", "my_pkg", "no_such_module_anywhere"])
    import flowhook

    assert paths == [
        Path(flowhook.__file__).parent,
        Path("/repo/flows"),
        Path("/repo/tasks"),
        tmp_path / "my_events.py",
        tmp_path / "my_pkg",
    ]
    assert "my_events" not in sys.modules  # found, not imported


@pytest.mark.parametrize("name", ["no_such_module_anywhere", "sys", "flowhook.no_such_submodule"])
def test_module_origin_is_none_for_what_has_no_file(name: str) -> None:
    assert module_origin(name) is None
