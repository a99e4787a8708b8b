"""The house rules of the code, checked on its source: small modules, no import cycle, backend differences
only inside labgen/backends/, no shell strings built on the host side from values."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.model
ROOT = Path(__file__).resolve().parents[1]
SOURCES = sorted([*(ROOT / "labgen").rglob("*.py"), *(ROOT / "provision").rglob("*.py"), ROOT / "tasks.py"])


def module_name(path: Path, root: Path = ROOT) -> str:
    rel = path.relative_to(root).with_suffix("")
    return ".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)


def imports(path: Path, root: Path = ROOT, sources: list[Path] = SOURCES) -> set[str]:
    """Every project module `path` imports, at the top, inside a function or for type checking only."""
    me = module_name(path, root)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                name = ".".join([*base, node.module] if node.module else base)
            else:
                name = node.module or ""
            found.add(name)
            found |= {f"{name}.{a.name}" for a in node.names}
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
    known = {module_name(p, root) for p in sources}
    return {m for m in found if m in known and m != me}


def cycle(sources: list[Path], root: Path = ROOT) -> list[str] | None:
    """An import cycle among `sources`, as the modules along it, or None."""
    graph = {module_name(p, root): imports(p, root, sources) for p in sources}

    def visit(mod: str, path: list[str]) -> list[str] | None:
        if mod in path:
            return [*path[path.index(mod) :], mod]
        for dep in graph.get(mod, ()):
            if dep != mod.rpartition(".")[0]:  # a module may import its own package's __init__
                found = visit(dep, [*path, mod])
                if found:
                    return found
        return None

    return next((c for mod in graph if (c := visit(mod, []))), None)


def test_no_module_is_over_300_lines() -> None:
    long = {str(p.relative_to(ROOT)): n for p in SOURCES if (n := len(p.read_text().splitlines())) > 300}
    assert not long, long


def test_no_import_cycle() -> None:
    assert cycle(SOURCES) is None, " -> ".join(cycle(SOURCES) or [])


def test_backend_modules_are_imported_only_through_the_registry() -> None:
    """Callers get a backend from labgen.backends and use its data and hooks."""
    allowed = {"labgen.backends", "labgen.backends.base"}
    for path in SOURCES:
        if "backends" in path.parts:
            continue
        private = {m for m in imports(path) if m.startswith("labgen.backends") and m not in allowed}
        assert not private, f"{path.relative_to(ROOT)} imports {private}"


def test_callers_never_ask_which_backend_they_have() -> None:
    for path in SOURCES:
        if "backends" in path.parts:
            continue
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "isinstance":
                assert "Backend" not in ast.unparse(node), f"{path.relative_to(ROOT)}: {ast.unparse(node)}"
            if isinstance(node, ast.Compare):
                sides = [node.left, *node.comparators]
                names = {c.value for c in sides if isinstance(c, ast.Constant)} & {"vagrant", "netns"}
                assert not names, f"{path.relative_to(ROOT)}: {ast.unparse(node)}"


def test_the_scan_finds_a_cycle_through_a_function_level_import(tmp_path: Path) -> None:
    """The old vagrant <-> box cycle went through an import inside a function."""
    (tmp_path / "labgen" / "backends").mkdir(parents=True)
    box, vagrant = tmp_path / "labgen" / "box.py", tmp_path / "labgen" / "backends" / "vagrant.py"
    box.write_text("def build():\n    from .backends.vagrant import drop\n")
    vagrant.write_text("from ..box import build\n")
    assert cycle([box, vagrant], tmp_path) in (
        ["labgen.box", "labgen.backends.vagrant", "labgen.box"],
        ["labgen.backends.vagrant", "labgen.box", "labgen.backends.vagrant"],
    )


def test_bench_and_test_scripts_import_what_exists() -> None:
    """bench/ and tests/ import labgen and provision by name, often inside functions: a renamed module or
    function must fail here, not in the middle of a bench run."""
    import importlib
    import importlib.util

    for path in sorted([*(ROOT / "bench").glob("*.py"), *(ROOT / "tests").glob("*.py")]):
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.ImportFrom)
                and not node.level
                and (node.module or "").split(".")[0]
                in (
                    "labgen",
                    "provision",
                )
            ):
                module = importlib.import_module(node.module or "")
                for alias in node.names:
                    submodule = (
                        importlib.util.find_spec(f"{node.module}.{alias.name}") if hasattr(module, "__path__") else None
                    )
                    where = f"{path.relative_to(ROOT)}: {node.module}.{alias.name}"
                    assert hasattr(module, alias.name) or submodule is not None, where


# -- one read layer: OVSDB is read and parsed only as facts --------------------------------------------------
OVSDB_CLIENTS = {"ovs-vsctl", "ovn-nbctl", "ovn-sbctl"}
# the commands whose output is parsed: list/find/get, list-ports, ls-list, acl-list, lsp-get-addresses, get-ssl...
TABLE_READ = re.compile(r"^(list|find|get)$|^(list|get)-|-list$|-get(-|$)")
READ_FLAGS = ("--format=json", "--format", "--bare", "--columns", "--data", "--no-heading")
# the facts; the tutorial's own commands that provision/steps/ runs and echoes; the ovn-trace text parser
READ_LAYER = ("provision/facts.py", "provision/steps/", "labgen/workshop/detrace.py")
# their host's JSON; `invoke classroom.progress`; LXD's API and the host's routes
OWN_JSON = ("labgen/backends/", "labgen/classroom/watch.py", "labgen/classroom/lxdhost.py")


def _words(node: ast.AST, clients: dict[str, str]) -> list[str]:
    """The words of an argv: a list or tuple of strings (a module constant naming a client counts), or a
    string split into one ("ovn-nbctl list acl".split(), shlex.split(...)); a string alone is shown, not run."""
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "split":
        text = node.args[0] if node.args and ast.unparse(node.func) == "shlex.split" else node.func.value
        return text.value.split() if isinstance(text, ast.Constant) and isinstance(text.value, str) else []
    words = []
    for e in node.elts if isinstance(node, ast.List | ast.Tuple) else []:
        if isinstance(e, ast.Constant) and isinstance(e.value, str):
            words.append(e.value)
        elif isinstance(e, ast.Name) and e.id in clients:
            words.append(clients[e.id])
    return words


def ovsdb_reads(path: Path, root: Path = ROOT) -> list[str]:
    """Where a module reads OVSDB by hand: an ovs-vsctl/ovn-nbctl/ovn-sbctl table read (list, find, get,
    list-ports, lsp-get-addresses...), wherever the client stands in the argv (after `ip netns exec NS`) and
    however it is spelled (a constant, a string split into an argv); a --format=json/--bare/--columns flag;
    json.loads of a command's stdout (backends read their host)."""
    rel = path.relative_to(root).as_posix()
    if rel.startswith(READ_LAYER):
        return []
    tree = ast.parse(path.read_text())
    clients = {  # NBCTL = "ovn-nbctl"
        t.id: a.value.value
        for a in ast.walk(tree)
        if isinstance(a, ast.Assign) and isinstance(a.value, ast.Constant) and a.value.value in OVSDB_CLIENTS
        for t in a.targets
        if isinstance(t, ast.Name)
    }
    found = []
    for node in ast.walk(tree):
        words = _words(node, clients)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.startswith(READ_FLAGS):
            found.append(f"{rel}:{node.lineno}: {node.value!r}")
        elif (OVSDB_CLIENTS & set(words) and any(TABLE_READ.search(w) for w in words)) or (
            isinstance(node, ast.Call)
            and ast.unparse(node.func) == "json.loads"
            and "stdout" in ast.unparse(node)
            and not rel.startswith(OWN_JSON)
        ):
            found.append(f"{rel}:{getattr(node, 'lineno', 0)}: {ast.unparse(node)}")
    return found


def test_ovsdb_is_read_only_through_facts() -> None:
    """No module but provision/facts.py reads OVSDB tables or parses their output: every other module gets
    them as facts (labgen.observe.Observer on the host) and the views derived from them (provision.views)."""
    found = [hit for path in SOURCES for hit in ovsdb_reads(path)]
    assert not found, "read these as facts (provision/facts.py):\n" + "\n".join(found)


@pytest.mark.parametrize(
    "source",
    [
        'ARGV = ["ovn-nbctl", "--columns=name", "list", "acl"]',
        'backend.run(node, ["ovn-sbctl", "find", "chassis", "name=x"])',
        'argv = ("ovs-vsctl", "get", "interface", "p1", "ofport")',
        "rows = json.loads(r.stdout)",
        'macs = backend.run(n, ["ovn-nbctl", "lsp-get-addresses", p]).stdout.split()',
        'ports = backend.run(n, ["ovs-vsctl", "--timeout=10", "list-ports", "br-int"]).stdout.splitlines()',
        'names = backend.run(n, ["ovn-nbctl", "ls-list"]).stdout',
        'acls = backend.run(n, ["ovn-nbctl", "acl-list", "sw0"]).stdout',
        'r = backend.run(n, "ovn-nbctl list acl".split())',
        'r = backend.run(n, shlex.split("ovn-sbctl find chassis name=x"))',
        'r = backend.run(n, ["ip", "netns", "exec", ns, "ovs-vsctl", "get", "interface", "p", "ofport"])',
        'NBCTL = "ovn-nbctl"\nr = backend.run(n, [NBCTL, "list", "acl"])',
        'r = backend.run(n, ["ovn-nbctl", "--data=bare", "--no-headings", "lsp-list", "sw0"])',
    ],
)
def test_the_read_scan_finds_a_hand_made_read(tmp_path: Path, source: str) -> None:
    (tmp_path / "labgen" / "workshop").mkdir(parents=True)
    (tmp_path / "labgen" / "workshop" / "x.py").write_text(f"import json\n{source}\n")
    assert ovsdb_reads(tmp_path / "labgen" / "workshop" / "x.py", tmp_path)
    (tmp_path / "provision").mkdir()
    (tmp_path / "provision" / "facts.py").write_text(f"import json\n{source}\n")
    assert not ovsdb_reads(tmp_path / "provision" / "facts.py", tmp_path)


# -- no shell strings built from values ---------------------------------------------------------------------
SHELLS = {"sh", "bash", "dash", "/bin/sh", "/bin/bash", "/usr/bin/env"}
SHELL_SOURCES = sorted([*SOURCES, *(ROOT / "bench").rglob("*.py"), *(ROOT / "scripts").rglob("*.py")])
# (file, function): why a value reaches a shell there on purpose
SHELL_ALLOWED = {
    ("labgen/lab.py", "exec_on"): "`invoke exec NODE COMMAND` runs the trainee's own command line, as ssh would",
    ("labgen/backends/vagrant/backend.py", "node_argv"): "ssh hands the remote shell one string: shlex.join quotes "
    "each word",
    ("labgen/classroom/login.py", "main"): "a seat's own ssh command line, run by the seat's own shell as sshd would",
}


def shell_strings(path: Path, root: Path = ROOT) -> list[str]:
    """Where a value (not a literal, nor a module constant made of literals) reaches a shell in `path`:
    shell=True, os.system/os.popen, the string after `sh -c`, invoke's `c.run`, or shlex.join inside an
    argv (a command line for a remote shell). Each as 'file:line: function: code'."""
    tree = ast.parse(path.read_text())
    constants: dict[str, ast.expr] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            constants[node.targets[0].id] = node.value
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value:
            constants[node.target.id] = node.value

    def literal(e: ast.expr, depth: int = 0) -> bool:
        if isinstance(e, ast.Constant):
            return isinstance(e.value, str)
        if isinstance(e, ast.Name) and e.id in constants and depth < 5:
            return literal(constants[e.id], depth + 1)
        if isinstance(e, ast.JoinedStr):
            return all(literal(v.value if isinstance(v, ast.FormattedValue) else v, depth) for v in e.values)
        if isinstance(e, ast.BinOp) and isinstance(e.op, ast.Add):
            return literal(e.left, depth) and literal(e.right, depth)
        if isinstance(e, ast.Call) and isinstance(e.func, ast.Attribute) and e.func.attr == "replace":
            return literal(e.func.value, depth) and all(literal(a, depth) for a in e.args)  # ENTER_SH
        return False

    def joins(e: ast.expr) -> bool:
        """`e` is shlex.join(...) or a string made with one (not a call that merely shows it)."""
        if isinstance(e, ast.Call):
            return ast.unparse(e.func) == "shlex.join"
        if isinstance(e, ast.BinOp):
            return joins(e.left) or joins(e.right)
        if isinstance(e, ast.JoinedStr):
            return any(isinstance(v, ast.FormattedValue) and joins(v.value) for v in e.values)
        return isinstance(e, ast.IfExp) and (joins(e.body) or joins(e.orelse))

    found: list[tuple[ast.AST, str]] = []
    for node in ast.walk(tree):
        words: list[ast.expr] = []
        if isinstance(node, ast.List | ast.Tuple):
            words = node.elts
            found += [(node, "shlex.join in an argv") for w in words if joins(w)]
        elif isinstance(node, ast.Call):
            words = node.args
            func = ast.unparse(node.func)
            for kw in node.keywords:
                if kw.arg == "shell" and not (isinstance(kw.value, ast.Constant) and kw.value.value is False):
                    found.append((node, "shell=True"))
            runs = func in ("os.system", "os.popen") or (func.endswith(".run") and func.split(".")[0] in ("c", "ctx"))
            if runs and not (node.args and literal(node.args[0])):
                found.append((node, f"{func} of a value"))
        for i, w in enumerate(words[:-2]):
            if (
                isinstance(w, ast.Constant)
                and w.value in SHELLS
                and isinstance(words[i + 1], ast.Constant)
                and str(words[i + 1].value).startswith("-")  # type: ignore[attr-defined]
                and str(words[i + 1].value).endswith("c")  # type: ignore[attr-defined]
                and not literal(words[i + 2])
            ):
                found.append((node, f"{w.value} {words[i + 1].value} of a value"))  # type: ignore[attr-defined]
    functions = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]

    def where(n: ast.AST) -> str:
        inside = [f for f in functions if f.lineno <= n.lineno <= (f.end_lineno or 0)]  # type: ignore[attr-defined]
        return inside[-1].name if inside else "<module>"

    rel = str(path.relative_to(root))
    return [
        f"{rel}:{n.lineno}: {where(n)}: {why}: {ast.unparse(n)[:120]}"  # type: ignore[attr-defined]
        for n, why in found
        if (rel, where(n)) not in SHELL_ALLOWED
    ]


def test_no_value_reaches_a_shell_string() -> None:
    """Commands are argv lists; a shell script is a literal that takes its values as "$1"...; shlex.join
    only shows a command (echo, errors). No value from lab.toml, a path or the command line reaches a
    shell string."""
    found = [f for p in SHELL_SOURCES for f in shell_strings(p)]
    assert not found, "\n".join(found)


def test_the_shell_scan_finds_each_way_a_value_reaches_a_shell(tmp_path: Path) -> None:
    bad = {
        "subprocess.run(argv, shell=True)": "shell=True",
        "os.system(f'ip link del {name}')": "os.system of a value",
        "os.popen('ls ' + path)": "os.popen of a value",
        "subprocess.run(['sh', '-c', f'rm -rf {path}'])": "sh -c of a value",
        "subprocess.run(['bash', '-ec', script])": "bash -ec of a value",
        "chroot('sh', '-c', 'tar x -C ' + d)": "sh -c of a value",
        "c.run(f'vagrant up {node}')": "c.run of a value",
        "['ssh', node, '--', 'sudo ' + shlex.join(argv)]": "shlex.join in an argv",
        "['ssh', node, '--', 'x' if t else shlex.join(argv)]": "shlex.join in an argv",
    }
    good = [
        "subprocess.run(['sh', '-c', 'rm -rf \"$1\"', 'sh', path])",
        "subprocess.run(['sh', '-c', SCRIPT, 'sh', path])",
        "subprocess.run(['sh', '-c', f'rm -rf {DIR} && mkdir {DIR}'])",
        "print(f'# {shlex.join(argv)}')",
        "return r.ok, echo(node, shlex.join(argv), r)",
        "subprocess.run(argv, shell=False)",
        "c.run('true')",
    ]
    consts = "SCRIPT = 'exec tini -- \"$0\"'\nDIR = '/opt/lab'\n"
    for i, code in enumerate([*bad, *good]):
        (tmp_path / f"m{i}.py").write_text(f"{consts}def f():\n    {code}\n")
        got = shell_strings(tmp_path / f"m{i}.py", tmp_path)
        if code in bad:
            assert len(got) == 1 and bad[code] in got[0], (code, got)
        else:
            assert got == [], (code, got)
