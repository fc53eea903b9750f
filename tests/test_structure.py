"""No module of fastpool reads another module's ``_private`` names.

A module's private names are the ``_single_underscore`` names it defines:
functions, classes, methods, module and class attributes, ``__slots__`` and
the attributes its methods assign on ``self``/``cls``. What another module
needs is a public seam: a public method or attribute, or, between modules of
the package, a non-underscore name of a private module (one whose file name
starts with ``_``, such as ``_pool_logic.py``: its public names are the
package's internal interface).

A *reach* is one of:

* ``import``: ``from .m import _name``, or ``m._name`` with ``m`` a fastpool
  module;
* ``attribute``: ``obj._name`` (or ``getattr(obj, "_name")`` and the like)
  where ``obj`` is not the method's own ``self``/``cls`` and no class or
  function of this module defines ``_name``; or where ``obj`` is a class
  imported from another module (its private names are its module's, even if
  this module defines the same name).

Both must be zero, but for the entries of ``ALLOWED`` (attributes of other
libraries' objects that fastpool must use, and fastpool's own marks on them).

Counted apart, not enforced: ``self._name`` (or ``Base._name(self, ...)``)
where ``_name`` comes from a base class or mixin of another module,
``inherited`` from one of fastpool's (the pool classes are built from
``_pool_logic.PoolLogic``, the core's ``PoolFastPath`` and ``base.BasePool``)
or from a ``foreign base`` (the integrations subclass SQLAlchemy's and
Django's classes).

``python tests/test_structure.py [-v] [package_dir]`` prints the counts by
kind and by module (``-v``: each reach).
"""

from __future__ import annotations

import ast
import sys
from collections import Counter
from pathlib import Path
from typing import Iterator, NamedTuple

PACKAGE = Path(__file__).resolve().parents[1] / "fastpool"


def _in(modules: str, name: str, reason: str) -> dict[tuple[str, str], str]:
    return {(f"fastpool.{module}", name): reason for module in modules.split()}


# (module, attribute) -> why fastpool uses that name of an object it doesn't own.
ALLOWED: dict[tuple[str, str], str] = {
    **_in(
        "pool pool_async null_pool null_pool_async _pool_logic _pyhotpath",
        "_pool",
        "psycopg's protocol: Connection.close() gives a connection back to its _pool",
    ),
    **_in(
        "base _pyhotpath",
        "_tpc",
        "psycopg's Connection._tpc: a prepared two-phase transaction (no public accessor)",
    ),
    **_in(
        "_pyhotpath",
        "_num_transactions",
        "psycopg's open transaction() blocks, which its own __exit__ reads too",
    ),
    **_in("_pyhotpath", "_pipeline", "psycopg's pipeline, which its own __exit__ reads too"),
    **_in(
        "_driver_traits",
        "_closed",
        "MariaDB Connector's local closed flag: its public ``open`` pings the server",
    ),
    **_in(
        "_driver_traits",
        "_get_socket",
        "MariaDB Connector's socket (-1 once lost): its public ``open`` pings the server",
    ),
    **_in(
        "sqlalchemy_pool",
        "_dialect",
        "SQLAlchemy's stand-in dialect for its asyncio pool, which the drop-in must carry too",
    ),
    **_in(
        "_pool_logic _null_pool_logic _pyhotpath null_pool null_pool_async sqlalchemy_pool",
        "_fp_slot",
        "fastpool's own mark on a driver's connection (or SQLAlchemy record): its slot, also"
        " read by the compiled core; underscored to keep out of the driver's names",
    ),
    **_in(
        "pool_async null_pool_async",
        "_fp_owner",
        "the async pools' own mark on a psycopg connection: the task holding it",
    ),
}

KINDS = ("import", "attribute", "inherited", "foreign base")
ENFORCED = ("import", "attribute")


class Reach(NamedTuple):
    module: str  # dotted, e.g. "fastpool.metrics"
    line: int
    kind: str  # one of KINDS
    name: str  # the private name reached for


def is_private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__") and name != "_"


def module_name(path: Path, package_dir: Path) -> str:
    parts = [package_dir.name, *path.relative_to(package_dir).with_suffix("").parts]
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def resolve_from(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    """The absolute name of the module ``node`` imports from."""
    if not node.level:
        return node.module or ""
    base = module.split(".")
    base = base[: len(base) - node.level + (1 if is_package else 0)]
    return ".".join([*base, node.module] if node.module else base)


def assigned_names(target: ast.expr) -> Iterator[ast.expr]:
    if isinstance(target, (ast.Tuple, ast.List)):
        for elt in target.elts:
            yield from assigned_names(elt)
    elif isinstance(target, ast.Starred):
        yield from assigned_names(target.value)
    else:
        yield target


def _targets(node: ast.AST) -> list[ast.expr]:
    if isinstance(node, ast.Assign):
        return [t for target in node.targets for t in assigned_names(target)]
    if isinstance(node, (ast.AnnAssign, ast.AugAssign)):
        return list(assigned_names(node.target))
    return []


def _scope_names(body: list[ast.stmt]) -> Iterator[str]:
    """The names bound in a module's or class's own scope (not a function's)."""
    for stmt in body:
        if isinstance(stmt, (ast.Import, ast.ImportFrom)):
            yield from (a.asname or a.name.split(".")[0] for a in stmt.names)
        elif isinstance(stmt, (ast.If, ast.Try)):
            yield from _scope_names(stmt.body)
            yield from _scope_names(stmt.orelse)
            for handler in getattr(stmt, "handlers", []):
                yield from _scope_names(handler.body)
        yield from (t.id for t in _targets(stmt) if isinstance(t, ast.Name))
        if isinstance(stmt, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "__slots__" for t in stmt.targets
        ):
            for const in ast.walk(stmt.value):
                if isinstance(const, ast.Constant) and isinstance(const.value, str):
                    yield const.value


def definitions(tree: ast.Module) -> set[str]:
    """The private names a module defines (see the module docstring)."""
    names = set(_scope_names(tree.body))
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        if isinstance(node, ast.ClassDef):
            names.update(_scope_names(node.body))
        for t in _targets(node):
            if (
                isinstance(t, ast.Attribute)
                and isinstance(t.value, ast.Name)
                and t.value.id in ("self", "cls")
            ):
                names.add(t.attr)
    return {n for n in names if is_private(n)}


_ATTRIBUTE_FUNCTIONS = ("getattr", "setattr", "hasattr", "delattr")


class _ModuleReaches(ast.NodeVisitor):
    """Collects one module's reaches in ``found``."""

    def __init__(
        self, module: str, is_package: bool, own: set[str], others: set[str], modules: set[str]
    ) -> None:
        self.module, self.is_package = module, is_package
        self.own, self.others, self.modules = own, others, modules
        self.package = module.split(".")[0]
        self.module_aliases: set[str] = set()  # names bound to a fastpool module
        self.imported: set[str] = set()  # names bound to another module's object
        # Per enclosing function: the names of the object's own class chain
        # (a method's first parameter, ``cls = type(self)``).
        self.self_names: list[set[str]] = []
        self.in_class = False
        self.found: list[Reach] = []

    def add(self, node: ast.AST, kind: str, name: str) -> None:
        self.found.append(Reach(self.module, getattr(node, "lineno", 0), kind, name))

    def is_self(self, node: ast.expr) -> bool:
        """The object's own class chain: ``self``, ``cls``, ``type(self)``, ``super()``."""
        if isinstance(node, ast.Name):
            return any(node.id in names for names in self.self_names)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            if node.func.id == "super":
                return True
            return node.func.id == "type" and len(node.args) == 1 and self.is_self(node.args[0])
        return False

    def reach(self, node: ast.AST, obj: ast.expr, name: str, *, on_self: bool = False) -> None:
        if not is_private(name):
            return
        if isinstance(obj, ast.Name) and obj.id in self.module_aliases:
            self.add(node, "import", name)
        elif on_self or self.is_self(obj):
            if name not in self.own:
                self.add(node, "inherited" if name in self.others else "foreign base", name)
        elif (isinstance(obj, ast.Name) and obj.id in self.imported) or name not in self.own:
            self.add(node, "attribute", name)

    def bind_imports(self, node: ast.Import | ast.ImportFrom) -> None:
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in self.modules and alias.asname:
                    self.module_aliases.add(alias.asname)
            return
        source = resolve_from(self.module, self.is_package, node)
        ours = source.split(".")[0] == self.package
        for alias in node.names:
            bound = alias.asname or alias.name
            if ours and f"{source}.{alias.name}" in self.modules:
                self.module_aliases.add(bound)
            else:
                self.imported.add(bound)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        self.bind_imports(node)
        source = resolve_from(self.module, self.is_package, node)
        if source.split(".")[0] != self.package:
            return
        for alias in node.names:
            if f"{source}.{alias.name}" not in self.modules and is_private(alias.name):
                self.add(node, "import", alias.name)

    def visit_Import(self, node: ast.Import) -> None:
        self.bind_imports(node)

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        for child in (*node.bases, *node.keywords, *node.decorator_list):
            self.visit(child)
        outer, self.in_class = self.in_class, True
        for child in node.body:
            self.visit(child)
        self.in_class = outer

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        is_method = self.in_class and not any(
            isinstance(d, ast.Name) and d.id == "staticmethod" for d in node.decorator_list
        )
        params = [*node.args.posonlyargs, *node.args.args]
        self.self_names.append({params[0].arg} if is_method and params else set())
        outer, self.in_class = self.in_class, False
        self.generic_visit(node)
        self.in_class = outer
        self.self_names.pop()

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Assign(self, node: ast.Assign) -> None:
        if self.self_names and self.is_self(node.value):
            self.self_names[-1].update(t.id for t in node.targets if isinstance(t, ast.Name))
        self.generic_visit(node)

    def visit_Attribute(self, node: ast.Attribute) -> None:
        self.reach(node, node.value, node.attr)
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        if (
            isinstance(func, ast.Attribute)
            and isinstance(func.value, ast.Name)
            and func.value.id in self.imported
            and node.args
            and self.is_self(node.args[0])
        ):
            # Base._method(self, ...): a base class's implementation, as super() calls it.
            self.reach(func, func.value, func.attr, on_self=True)
            for child in (*node.args, *node.keywords):
                self.visit(child)
            return
        if (
            isinstance(func, ast.Name)
            and func.id in _ATTRIBUTE_FUNCTIONS
            and len(node.args) >= 2
            and isinstance(node.args[1], ast.Constant)
            and isinstance(node.args[1].value, str)
        ):
            self.reach(node, node.args[0], node.args[1].value)
        self.generic_visit(node)


def reaches(package_dir: Path = PACKAGE) -> list[Reach]:
    trees = {
        module_name(path, package_dir): (path, ast.parse(path.read_text(), str(path)))
        for path in sorted(package_dir.rglob("*.py"))
    }
    # A compiled module is a module too: its stub names it (from . import _fastpool).
    modules = set(trees) | {module_name(p, package_dir) for p in package_dir.rglob("*.pyi")}
    defined = {module: definitions(tree) for module, (_, tree) in trees.items()}
    found: list[Reach] = []
    for module, (path, tree) in trees.items():
        others = set().union(*(names for m, names in defined.items() if m != module))
        visitor = _ModuleReaches(
            module, path.name == "__init__.py", defined[module], others, modules
        )
        # The module's own imports first: a function may use a name imported below it.
        for stmt in tree.body:
            if isinstance(stmt, (ast.Import, ast.ImportFrom)):
                visitor.bind_imports(stmt)
        visitor.visit(tree)
        found.extend(visitor.found)
    return found


def excuse(reach: Reach) -> str | None:
    """Why an enforced reach is tolerated (None: it isn't)."""
    key = (reach.module, reach.name)
    if key in ALLOWED:
        return "allowed"
    return None


def unexplained(found: list[Reach]) -> list[Reach]:
    return [r for r in found if r.kind in ENFORCED and excuse(r) is None]


def test_no_module_reads_another_modules_private_names() -> None:
    bad = unexplained(reaches())
    assert not bad, "\n".join(
        f"{r.module}:{r.line}: {r.kind} reach for {r.name}: use or add a public seam" for r in bad
    )


def test_every_allowed_reach_is_still_made() -> None:
    made = {(r.module, r.name) for r in reaches() if r.kind in ENFORCED}
    assert set(ALLOWED) <= made, f"drop from ALLOWED: {sorted(set(ALLOWED) - made)}"


def test_the_analysis_finds_each_kind_of_reach(tmp_path: Path) -> None:
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text(
        "_LIMIT = 1\n"
        "class Base:\n"
        "    def __init__(self):\n"
        "        self._state = 0\n"
        "    def _step(self):\n"
        "        return self._state\n"
    )
    (package / "b.py").write_text(
        "from . import a\n"
        "from .a import _LIMIT, Base\n"
        "class Child(Base):\n"
        "    def run(self, other):\n"
        "        Base._step(self)\n"
        "        kind = type(self)\n"
        "        kind._step(self)\n"
        "        getattr(other, '_state')\n"
        "        return self._state + other._state + a._LIMIT + self._foreign\n"
        "    def _own(self):\n"
        "        return self._own\n"
    )
    found = {(r.kind, r.name) for r in reaches(package) if r.module == "pkg.b"}
    assert found == {
        ("import", "_LIMIT"),
        ("attribute", "_state"),
        ("inherited", "_state"),
        ("inherited", "_step"),
        ("foreign base", "_foreign"),
    }


def report(found: list[Reach]) -> str:
    by_kind = Counter(r.kind for r in found)
    excused = Counter(excuse(r) for r in found if r.kind in ENFORCED)
    lines = [
        "reaches: " + ", ".join(f"{kind} {by_kind[kind]}" for kind in KINDS),
        f"of {'+'.join(ENFORCED)}: unexplained {excused[None]}, allowed {excused['allowed']}",
    ]
    per_module: dict[str, Counter[str]] = {}
    for r in found:
        per_module.setdefault(r.module, Counter())[r.kind] += 1
    for module, counts in sorted(per_module.items()):
        lines.append(f"  {module:28} " + " ".join(f"{k}={counts[k]}" for k in KINDS))
    return "\n".join(lines)


if __name__ == "__main__":
    paths = [arg for arg in sys.argv[1:] if not arg.startswith("-")]
    result = reaches(Path(paths[0]).resolve() if paths else PACKAGE)
    print(report(result))
    if "-v" in sys.argv:
        for r in sorted(result):
            print(f"{r.module}:{r.line}: {r.kind} {r.name}")
