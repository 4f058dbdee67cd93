"""The package's shape: imports run one way (notebooks -> report -> study -> core), with no circle, not even one
hidden inside a function, and no module grows into two ideas."""
import ast
from pathlib import Path

LIB = Path(__file__).resolve().parents[2] / "lib" / "rethink"
LAYERS = {"core": 0, "study": 1, "report": 2}  # a module may import its own layer and the ones below it


def module_name(path: Path) -> str:
    return ".".join(("rethink", *path.relative_to(LIB).with_suffix("").parts)).removesuffix(".__init__")


def imports() -> dict[str, set[str]]:
    """module -> the rethink modules it imports, anywhere in its body."""
    names = {module_name(p): p for p in LIB.rglob("*.py")}
    graph = {}
    for name, path in names.items():
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".")
                    base = ".".join(parts[: len(parts) - node.level + 1] + ([node.module] if node.module else []))
                for alias in node.names:
                    target = f"{base}.{alias.name}"
                    found.add(target if target in names else base)
            elif isinstance(node, ast.Import):
                found |= {alias.name for alias in node.names}
        graph[name] = {m for m in found if m in names and m != name}
    return graph


def layer(module: str) -> int | None:
    parts = module.split(".")
    return LAYERS.get(parts[1]) if len(parts) > 1 else None


def test_no_import_circle():
    graph = imports()

    def reachable(start):
        seen, todo = set(), [start]
        while todo:
            for nxt in graph.get(todo.pop(), ()):
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        return seen

    circles = sorted({tuple(sorted((a, b))) for a in graph for b in graph[a] if a in reachable(b)})
    assert not circles, circles


def test_imports_run_one_way():
    upward = sorted((a, b) for a, targets in imports().items() for b in targets
                    if layer(a) is not None and layer(b) is not None and layer(b) > layer(a))
    assert not upward, f"modules importing a layer above their own: {upward}"


def test_the_walk_sees_imports_inside_functions(tmp_path):
    # The walk reads function bodies too: an import hidden in a function counts.
    source = "def f():\n    from ..report import figures\n"
    assert [n.module for n in ast.walk(ast.parse(source)) if isinstance(n, ast.ImportFrom)] == ["report"]


def test_modules_stay_small():
    long = {module_name(p): n for p in LIB.rglob("*.py") if (n := len(p.read_text().splitlines())) > 400}
    assert not long, long
