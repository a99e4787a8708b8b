"""Mutation pass: change the code one small thing at a time and see whether the fast tiers notice.

    .venv/bin/python3 scripts/mutate.py                      # the default modules, all their mutants
    .venv/bin/python3 scripts/mutate.py labgen/gates.py -j 2  # some modules, two at once
    .venv/bin/python3 scripts/mutate.py --list               # the mutants only, nothing run
    .venv/bin/python3 scripts/mutate.py --again /tmp/mutate-report.json  # the last pass's survivors, not-run

Each mutant (a flipped comparison, a negated condition, and/or swapped, a changed number or bool, a call
or raise removed, a function or method replaced by another of the same arity that exists, a task's
"module:function" target pointed at another function of that module) is written into a copy of the
checkout, and `pytest -x -m "model or provision or fake"` runs there: the tests that run the mutated
line (traced once on the unmutated code), or all of them for a line that runs at import. A mutant the
tests pass is a survivor: a test that is missing, or an equivalent change. Mutants on lines the fast
tiers never run in-process are listed apart ("not run"), not executed. The report goes to stdout and to --out.
A pass, not a CI step: minutes per module.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

ROOT = Path(__file__).resolve().parents[1]
TARGETS = [
    "labgen/gates.py",
    "labgen/workshop/exercises.py",
    "labgen/demo.py",
    "labgen/up.py",
    "labgen/workshop/check.py",
    "labgen/workshop/findings.py",
    "labgen/workshop/logical.py",
    "labgen/observe.py",
    "provision/facts.py",
]
MARKERS = "model or provision or fake"
FIRST = ["tests/test_fake.py", "tests/test_gates.py", "tests/test_provision.py"]  # the likely killers run first
FLIP = {
    ast.Eq: ast.NotEq,
    ast.NotEq: ast.Eq,
    ast.Lt: ast.GtE,
    ast.GtE: ast.Lt,
    ast.Gt: ast.LtE,
    ast.LtE: ast.Gt,
    ast.In: ast.NotIn,
    ast.NotIn: ast.In,
    ast.Is: ast.IsNot,
    ast.IsNot: ast.Is,
}
ARITH = {ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Div, ast.Div: ast.Mult}
BUILTIN = {n for t in (dict, list, str, set, tuple, bytes) for n in dir(t)} | {"run", "wait", "result", "close"}
Edit = Callable[[ast.AST], ast.AST | None]  # the node's replacement, applied to a fresh parse


SOURCES: dict[str, str] = {}  # the code as the pass began: the checkout may change while it runs


def text(path: str) -> str:
    if path not in SOURCES:
        SOURCES[path] = (ROOT / path).read_text()
    return SOURCES[path]


@dataclass(frozen=True)
class Mutant:
    path: str
    index: int  # the node's position in ast.walk of the file
    line: int
    end: int
    what: str

    def source(self) -> str:
        tree = ast.parse(text(self.path))
        node = list(ast.walk(tree))[self.index]
        for edit_what, edit in edits(node, Names.of(self.path)):
            if edit_what == self.what:
                return ast.unparse(Replace(node, edit(node)).visit(tree) or tree)
        raise LookupError(self)


class Replace(ast.NodeTransformer):
    def __init__(self, old: ast.AST, new: ast.AST | None):
        self.old, self.new = old, new

    def visit(self, node: ast.AST) -> ast.AST | None:
        if node is self.old:
            return self.new
        return super().visit(node)


def arity(fn: ast.FunctionDef | ast.AsyncFunctionDef, method: bool) -> tuple[int, bool]:
    pos = [*fn.args.posonlyargs, *fn.args.args][1 if method else 0 :]
    return len(pos) - len(fn.args.defaults), fn.args.vararg is not None


class Names:
    """Functions (by module) and methods (by class) of the project, with their arity: what a swap may use."""

    cache: ClassVar[dict[str, Names]] = {}
    functions: ClassVar[dict[str, dict[str, tuple[int, bool]]]] = {}  # module -> name -> arity
    methods: ClassVar[dict[str, dict[str, tuple[int, bool]]]] = {}  # class -> name -> arity
    data: ClassVar[set[str]] = set()  # attribute names that hold data somewhere: fields, self.x = ...

    def __init__(self, path: str):
        if not Names.functions:
            for p in [*ROOT.glob("labgen/**/*.py"), *ROOT.glob("provision/**/*.py"), ROOT / "tasks.py"]:
                mod = ".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
                tree = ast.parse(p.read_text())
                Names.functions[mod] = {
                    n.name: arity(n, False) for n in tree.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)
                }
                for n in ast.walk(tree):
                    if isinstance(n, ast.AnnAssign) and isinstance(n.target, ast.Name):
                        Names.data.add(n.target.id)
                    targets = n.targets if isinstance(n, ast.Assign) else []
                    for e in (e for t in targets for e in ast.walk(t)):
                        if isinstance(e, ast.Attribute):
                            Names.data.add(e.attr)
                for c in (n for n in ast.walk(tree) if isinstance(n, ast.ClassDef)):
                    Names.methods[c.name] = {
                        n.name: arity(n, True)
                        for n in c.body
                        if isinstance(n, ast.FunctionDef)
                        and not n.name.startswith("__")
                        and not any(ast.unparse(d).endswith("property") for d in n.decorator_list)
                        and n.name not in BUILTIN  # `.get` on a dict is no project method
                    }
        me = ".".join(Path(path).with_suffix("").parts)
        package = me.rpartition(".")[0]
        self.local = dict(Names.functions.get(me, {}))  # what the module can call by bare name
        tree = ast.parse(text(path))
        local = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
        local |= {a.arg for a in ast.walk(tree) if isinstance(a, ast.arg)}
        for node in tree.body:
            if isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*up, node.module] if node.module else up)
                for a in node.names:
                    if a.name in Names.functions.get(base, {}):
                        self.local[a.asname or a.name] = Names.functions[base][a.name]
        for name in local & set(self.local):  # a variable of the same name somewhere: no function there
            del self.local[name]
        owners: dict[str, list[str]] = {}
        for cls, ms in Names.methods.items():
            for m in ms:
                owners.setdefault(m, []).append(cls)
        # a method name only one class has, and no object has as data (Port.node is no Lab.node)
        self.owner = {m: cs[0] for m, cs in owners.items() if len(cs) == 1 and m not in Names.data}

    @classmethod
    def of(cls, path: str) -> Names:
        if path not in cls.cache:
            cls.cache[path] = cls(path)
        return cls.cache[path]

    @staticmethod
    def other(name: str, table: dict[str, tuple[int, bool]]) -> str | None:
        """The next name (in sorted order, wrapping) with the same arity, or None."""
        same = sorted(n for n, a in table.items() if a == table[name])
        return same[(same.index(name) + 1) % len(same)] if len(same) > 1 else None


def negated(test: ast.expr) -> ast.expr:
    if isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not):
        return test.operand
    return ast.UnaryOp(op=ast.Not(), operand=test)


def with_field(node: ast.AST, field: str, value: object) -> ast.AST:
    setattr(node, field, value)
    return node


def edits(node: ast.AST, names: Names) -> Iterator[tuple[str, Edit]]:
    """Every mutation of `node` alone: (what it does, how)."""
    if isinstance(node, ast.Compare):
        for i, op in enumerate(node.ops):
            if type(op) in FLIP:
                new = FLIP[type(op)]

                def flip(n: ast.AST, i: int = i, new: type[ast.cmpop] = new) -> ast.AST:
                    n.ops[i] = new()  # type: ignore[attr-defined]
                    return n

                yield f"{type(op).__name__} -> {new.__name__}", flip
    if isinstance(node, ast.If | ast.While | ast.IfExp | ast.Assert):
        yield "negate condition", lambda n: with_field(n, "test", negated(n.test))  # type: ignore[attr-defined]
    if isinstance(node, ast.comprehension):
        for i, _ in enumerate(node.ifs):

            def neg(n: ast.AST, i: int = i) -> ast.AST:
                n.ifs[i] = negated(n.ifs[i])  # type: ignore[attr-defined]
                return n

            yield f"negate comprehension filter {i}", neg
    if isinstance(node, ast.BoolOp):
        other = ast.Or if isinstance(node.op, ast.And) else ast.And
        yield f"{type(node.op).__name__} -> {other.__name__}", lambda n: with_field(n, "op", other())
    if isinstance(node, ast.BinOp) and type(node.op) in ARITH:
        new_op = ARITH[type(node.op)]
        yield f"{type(node.op).__name__} -> {new_op.__name__}", lambda n: with_field(n, "op", new_op())
    if isinstance(node, ast.Constant) and isinstance(v := node.value, bool | int | float):
        new_v = (not v) if isinstance(v, bool) else (1 if v == 0 else 0 if v == 1 else v + 1)
        yield f"{v!r} -> {new_v!r}", lambda n: ast.Constant(new_v)
    if isinstance(node, ast.Expr) and not isinstance(node.value, ast.Constant):
        yield "remove statement", lambda n: ast.Pass()
    if isinstance(node, ast.Raise | ast.Continue | ast.Break):
        yield f"remove {type(node).__name__.lower()}", lambda n: ast.Pass()
    if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load) and node.id in names.local:
        name = Names.other(node.id, names.local)
        if name:
            yield f"{node.id} -> {name}", lambda n: ast.Name(name, ast.Load())
    if isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Load) and node.attr in names.owner:
        swap = Names.other(node.attr, Names.methods[names.owner[node.attr]])
        if swap:
            yield f".{node.attr} -> .{swap}", lambda n: with_field(n, "attr", swap)
    if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.count(":") == 1:
        mod, _, fn = node.value.partition(":")
        table = Names.functions.get(mod, {})
        if fn in table and (swap := Names.other(fn, table)):
            yield f"{node.value} -> {mod}:{swap}", lambda n: ast.Constant(f"{mod}:{swap}")


def skipped(tree: ast.Module) -> set[int]:
    """Nodes no mutation may touch: docstrings and annotations (ids)."""
    out: set[int] = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        first = body[0] if isinstance(body, list) and body else None
        if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
            out |= {id(n) for n in ast.walk(first)}
        annotations = []
        if isinstance(node, ast.arg | ast.AnnAssign) and node.annotation:
            annotations.append(node.annotation)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.returns:
            annotations.append(node.returns)
        for a in annotations:
            out |= {id(n) for n in ast.walk(a)}
    return out


def mutants(path: str) -> list[Mutant]:
    tree = ast.parse(text(path))
    skip = skipped(tree)
    found = []
    for i, node in enumerate(ast.walk(tree)):
        if id(node) in skip or not hasattr(node, "lineno"):
            continue
        for what, _ in edits(node, Names.of(path)):
            line = node.lineno  # type: ignore[attr-defined]
            found.append(Mutant(path, i, line, getattr(node, "end_lineno", None) or line, what))
    return found


TRACER = """
import json, os, sys, threading
import pytest
TARGETS = set(json.loads(os.environ["MUTATE_TARGETS"]))
SEEN, NOW = {}, ["<import>"]  # (file, line) -> the tests that ran it; <import>: outside any test
def local(frame, event, arg):
    if event == "line":
        SEEN.setdefault((frame.f_code.co_filename, frame.f_lineno), set()).add(NOW[0])
    return local
def tracer(frame, event, arg):
    if frame.f_code.co_filename in TARGETS:
        SEEN.setdefault((frame.f_code.co_filename, frame.f_lineno), set()).add(NOW[0])
        return local
    return None
sys.settrace(tracer)
threading.settrace(tracer)
@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    NOW[0] = item.nodeid
    yield
    NOW[0] = "<import>"
def pytest_sessionfinish(session):
    with open(os.environ["MUTATE_LINES"], "w") as f:
        json.dump([[f, n, sorted(t)] for (f, n), t in SEEN.items()], f)
"""
Coverage = dict[tuple[str, int], set[str]]


def copy(dest: Path) -> Path:
    ignore = shutil.ignore_patterns(".git", "__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache", ".lab")
    shutil.copytree(ROOT, dest, symlinks=True, ignore=ignore)
    return dest


def pytest_argv(tree: Path, tests: list[str] | None = None) -> list[str]:
    if tests is None:
        found = sorted(str(p.relative_to(tree)) for p in (tree / "tests").glob("test_*.py"))
        tests = [t for t in FIRST if t in found] + [t for t in found if t not in FIRST]
    return [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "-m", MARKERS, *tests]


def covered(tree: Path, targets: list[str]) -> tuple[Coverage, list[str], float]:
    """Which tests of the fast tiers run each line of the targets in-process (they must pass unmutated),
    the tests in their order, and the time of the whole run."""
    files = [str(tree / t) for t in targets]
    (tree / "mutate_tracer.py").write_text(TRACER)
    lines = tree / "lines.json"
    env = {**os.environ, "MUTATE_TARGETS": json.dumps(files), "MUTATE_LINES": str(lines), "PYTHONPATH": str(tree)}
    t0 = time.monotonic()
    argv = [*pytest_argv(tree), "-p", "mutate_tracer", "-vv"]  # -q -vv: one line per test
    r = subprocess.run(argv, cwd=tree, env=env, capture_output=True, text=True)
    took = time.monotonic() - t0
    (tree / "mutate_tracer.py").unlink()
    if r.returncode:
        sys.exit(f"the fast tiers fail without any mutant:\n{r.stdout[-3000:]}{r.stderr[-2000:]}")
    order = [ln.split(" PASSED")[0] for ln in r.stdout.splitlines() if " PASSED" in ln]
    seen = {(str(Path(f).relative_to(tree)), n): set(t) for f, n, t in json.loads(lines.read_text())}
    lines.unlink()
    return seen, order, took


def tests_of(m: Mutant, seen: Coverage, order: list[str]) -> list[str] | None:
    """The tests that run the mutant's lines, in their order; None: the whole tiers (a line run at import)."""
    ids = set().union(*(seen.get((m.path, n), set()) for n in range(m.line, m.end + 1)))
    return None if "<import>" in ids else [t for t in order if t in ids]


def run(tree: Path, m: Mutant, tests: list[str] | None, timeout: float) -> str:
    """killed, survived or timeout (a mutant that hangs a test counts as caught)."""
    target = tree / m.path
    original = target.read_text()
    try:
        target.write_text(m.source())
        shutil.rmtree(target.parent / "__pycache__", ignore_errors=True)  # no stale bytecode of the same size
        r = subprocess.run(pytest_argv(tree, tests), cwd=tree, capture_output=True, text=True, timeout=timeout)
        return "survived" if r.returncode == 0 else "killed"
    except subprocess.TimeoutExpired:
        return "timeout"
    finally:
        target.write_text(original)
        shutil.rmtree(target.parent / "__pycache__", ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("paths", nargs="*", default=TARGETS, help="modules to mutate, relative to the checkout")
    ap.add_argument("-j", "--jobs", type=int, default=1, help="mutants run at once (each in its own copy)")
    ap.add_argument("--list", action="store_true", help="list the mutants, run nothing")
    ap.add_argument("--out", default=f"{tempfile.gettempdir()}/mutate-report.json", help="the report as JSON")
    ap.add_argument("--again", metavar="REPORT", help="only the survivors and not-run mutants of an earlier report")
    args = ap.parse_args()
    todo = [m for p in args.paths for m in mutants(p)]
    if args.again:
        rows = json.loads(Path(args.again).read_text())
        again = {(r["path"], r["index"], r["what"]) for r in rows if r["result"] in ("survived", "not run")}
        todo = [m for m in todo if (m.path, m.index, m.what) in again]
    if args.list:
        for m in todo:
            print(f"{m.path}:{m.line}: {m.what}")
        print(f"{len(todo)} mutants")
        return
    with tempfile.TemporaryDirectory(prefix="mutate-") as tmp:
        trees = [copy(Path(tmp) / f"tree{i}") for i in range(args.jobs)]
        seen, order, took = covered(trees[0], args.paths)
        plan = {m: tests_of(m, seen, order) for m in todo}
        results: dict[Mutant, str] = {m: "not run" for m, t in plan.items() if t == []}
        run_these = [m for m in todo if m not in results]
        print(f"{len(todo)} mutants, {len(run_these)} on lines the fast tiers run; one pass takes {took:.0f} s")
        free = list(trees)

        def one(m: Mutant) -> tuple[Mutant, str]:
            tree = free.pop()
            try:
                return m, run(tree, m, plan[m], max(60, 3 * took))
            finally:
                free.append(tree)

        results |= {m: "not reached" for m in run_these}  # until it ran: a pass stopped early says so
        pool = ThreadPoolExecutor(max_workers=args.jobs)
        try:
            for i, (m, result) in enumerate(pool.map(one, run_these), 1):
                results[m] = result
                n = "all" if plan[m] is None else len(plan[m] or [])
                print(f"[{i}/{len(run_these)}] {result:8} {m.path}:{m.line}: {m.what} ({n} tests)", flush=True)
                save(results, Path(args.out))
        except KeyboardInterrupt:
            print("stopped: the mutants not reached are listed as such")
            pool.shutdown(wait=True, cancel_futures=True)
        else:
            pool.shutdown()
    report(results, Path(args.out))


def save(results: dict[Mutant, str], out: Path) -> None:
    rows = [{"path": m.path, "index": m.index, "line": m.line, "what": m.what, "result": r} for m, r in results.items()]
    out.write_text(json.dumps(rows, indent=1))


def report(results: dict[Mutant, str], out: Path) -> None:
    counts: dict[str, dict[str, int]] = {}
    for m, r in results.items():
        counts.setdefault(m.path, {}).setdefault(r, 0)
        counts[m.path][r] += 1
    print("\nfile: killed/timeout/survived/not run/not reached")
    for path, c in counts.items():
        kinds = ("killed", "timeout", "survived", "not run", "not reached")
        print(f"  {path}: " + "/".join(str(c.get(k, 0)) for k in kinds))
    for kind in ("survived", "not run"):
        print(f"\n{kind}:")
        for m, r in sorted(results.items(), key=lambda mr: (mr[0].path, mr[0].line)):
            if r == kind:
                code = text(m.path).splitlines()[m.line - 1].strip()
                print(f"  {m.path}:{m.line}: {m.what}    | {code[:90]}")
    save(results, out)
    print(f"\nreport: {out}")


if __name__ == "__main__":
    main()
