"""The warm-up thread's edges (slotgraph/warm.py): what it imports while the event loop may import
the same, what it does when an import fails, and the import cycles where a race of two threads
could fail (a server's stop while the thread runs: tests/system/test_warm_stop.py).

No database: these are the thread and Python's import machinery alone."""

from __future__ import annotations

import ast
import importlib
import json
import logging
import subprocess
import sys
import threading
import types
from collections.abc import Iterator
from pathlib import Path

import pytest

from slotgraph import warm

SRC = Path(warm.__file__).parent


@pytest.fixture
def probes(tmp_path: Path) -> Iterator[Path]:
    """A folder on sys.path for the probe modules a test writes; they leave sys.modules after."""
    sys.path.insert(0, str(tmp_path))
    before = set(sys.modules)
    try:
        yield tmp_path
    finally:
        sys.path.remove(str(tmp_path))
        for name in set(sys.modules) - before:
            if name.startswith("warm_probe"):
                del sys.modules[name]


def test_a_failing_import_or_warmer_is_logged_and_the_rest_is_warmed(
    probes: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A module that is not there, one that raises as it loads, and a warmer that is not there
    are each one warning with its traceback, in the thread; the modules after them are still
    imported, and the thread ends (the server is never told: the first use imports and says
    it, with the request or send that needs it)."""
    (probes / "warm_probe_ok.py").write_text("LOADED = True\n")
    (probes / "warm_probe_broken.py").write_text("raise ValueError('broken at import')\n")
    caplog.set_level(logging.WARNING, logger="slotgraph.warm")
    thread = warm.start(
        [
            "warm_probe_missing",
            "warm_probe_broken",
            "warm_probe_ok:no_such_warmer",
            "json",
            "warm_probe_ok",
        ]
    )
    assert thread is not None
    assert thread.daemon
    thread.join(60)
    assert not thread.is_alive()
    said = [(r.getMessage(), r.exc_info is not None) for r in caplog.records]
    assert said == [
        ("warm-up: warm_probe_missing failed", True),
        ("warm-up: warm_probe_broken failed", True),
        ("warm-up: warm_probe_ok:no_such_warmer failed", True),
    ]
    assert sys.modules["warm_probe_ok"].LOADED


def test_the_loop_importing_what_the_thread_is_importing_gets_it_whole(probes: Path) -> None:
    """The event loop's first use imports a library while the thread is half way through it:
    Python's module lock makes the loop wait for the rest, never hand it a module half run.
    Here the thread is held inside the package, after its submodule (which imports the package
    back, half run, as packages do) and before its last name, until the loop has begun its
    own import."""
    gate = types.SimpleNamespace(inside=threading.Event(), go=threading.Event())
    sys.modules["warm_probe_gate"] = gate  # type: ignore[assignment]
    package = probes / "warm_probe_pkg"
    package.mkdir()
    (package / "__init__.py").write_text(
        "import warm_probe_gate\n"
        "from warm_probe_pkg import part\n"
        "warm_probe_gate.inside.set()\n"
        "assert warm_probe_gate.go.wait(60)\n"
        "LAST = part.FIRST + 1\n"
    )
    (package / "part.py").write_text("import warm_probe_pkg\nFIRST = 1\n")
    try:
        thread = warm.start(["warm_probe_pkg"])
        assert thread is not None
        assert gate.inside.wait(60)
        # The go is given from another thread once this one waits for the module's lock: a
        # waiter's count is on the lock (importlib._bootstrap._ModuleLock.waiters).
        lock_waited = threading.Thread(target=_go_once_waited, args=(gate.go,), daemon=True)
        lock_waited.start()
        module = importlib.import_module("warm_probe_pkg")
        assert module.LAST == 2
        thread.join(60)
    finally:
        gate.go.set()
        del sys.modules["warm_probe_gate"]


def _go_once_waited(go: threading.Event) -> None:
    import importlib._bootstrap as bootstrap

    for _ in range(6000):  # until the main thread waits on the package's lock (bounded: 60 s)
        lock = bootstrap._module_locks.get("warm_probe_pkg")
        if lock is not None and (held := lock()) is not None and held.waiters:
            break
        threading.Event().wait(0.01)
    go.set()


def _module_level_imports(path: Path, name: str) -> set[str]:
    """The slotgraph modules `name` (at `path`) imports at its top level, its parents too."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.dump(node.test):
            continue
        for n in ast.walk(node) if isinstance(node, ast.If | ast.Try) else [node]:
            if isinstance(n, ast.Import):
                found |= {a.name for a in n.names}
            elif isinstance(n, ast.ImportFrom):
                base = n.module or ""
                if n.level:
                    parts = package.split(".")[: len(package.split(".")) - n.level + 1]
                    base = ".".join([*parts, base] if base else parts)
                found |= {base} | {f"{base}.{a.name}" for a in n.names}
    return {
        ".".join(f.split(".")[:i])
        for f in found
        if f.startswith("slotgraph")
        for i in range(1, f.count(".") + 2)
    }


def _in_cycles(graph: dict[str, set[str]]) -> set[str]:
    """The modules on an import cycle (Tarjan's strongly connected components of more than one)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_cycle: set[str] = set()

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while (w := stack.pop()) != v:
                component.append(w)
            if component:
                on_cycle.update([*component, v])

    for v in graph:
        if v not in index:
            visit(v)
    return on_cycle


def test_no_module_a_started_process_may_still_import_is_on_an_import_cycle() -> None:
    """Python 3.11's one way to fail a race of two imports: the thread holds module A and waits
    for B while the loop holds B and waits for A, which only an import cycle makes (each side
    entered it at another module). One side then fails, 'deadlock detected by _ModuleLock' (a
    500, or a send failed). The warmed libraries are entered at their top package by both
    sides (warm.py's lists, and the lazy imports); slotgraph's own cycles (a package and its
    submodules) must all be loaded before the warm-up starts, as every process's start does."""
    modules = {}
    for path in SRC.rglob("*.py"):
        parts = ("slotgraph", *path.relative_to(SRC).with_suffix("").parts)
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        modules[name] = path
    graph = {m: _module_level_imports(p, m) - {m} for m, p in modules.items()}
    on_cycles = _in_cycles(graph)
    assert on_cycles, "the search finds the known cycles (slotgraph.schemas and its modules)"
    started = subprocess.run(
        [
            sys.executable,
            "-c",
            "import json, sys, slotgraph.api.app, slotgraph.worker, slotgraph.warm;"
            "print(json.dumps(sorted(sys.modules)))",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    loaded_at_start = set(json.loads(started.stdout))
    assert sorted(on_cycles - loaded_at_start) == []
    entries = {*warm.WEBHOOKS, *warm.EMAILS, *warm.PAGES, *warm.CALENDARS}
    for entry in entries:
        name = entry.partition(":")[0]
        assert name.startswith("slotgraph.") or "." not in name, entry  # a library's top
