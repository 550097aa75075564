"""The layout as docs/install.md draws it, held by the imports themselves."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("bench", "cli", "evaluation", "model", "server", "training", "webapp")
SCRIPTS = {path.stem for path in ROOT.glob("*.py")}


def imported_modules(path: Path) -> set[str]:
    """Every module `path` imports, by its full dotted name."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def package_modules(package: str) -> dict[str, Path]:
    paths = (ROOT / package).glob("*.py")
    return {f"{package}.{path.stem}": path for path in paths if path.stem != "__init__"}


def longest_chain(module: str, graph: dict[str, set[str]], seen: tuple = ()) -> list[str]:
    assert module not in seen, f"an import cycle: {' -> '.join((*seen, module))}"
    chains = [longest_chain(name, graph, (*seen, module)) for name in graph[module]]
    return [module, *max(chains, key=len, default=[])]


def test_inside_model_no_import_chain_is_longer_than_three_modules():
    modules = package_modules("model")
    graph = {name: imported_modules(path) & modules.keys() for name, path in modules.items()}
    longest = max((longest_chain(name, graph) for name in graph), key=len)
    assert len(longest) <= 3, " -> ".join(longest)


def test_only_webapp_imports_flask_and_nothing_imports_a_script():
    for package in PACKAGES:
        for name, path in package_modules(package).items():
            imports = {module.split(".")[0] for module in imported_modules(path)}
            assert package == "webapp" or "flask" not in imports, name
            assert not imports & SCRIPTS, f"{name} imports the script {imports & SCRIPTS}"
