"""The public API and its import cost."""

from __future__ import annotations

import ast
import pathlib
import subprocess
import sys

import sensorium_data as sd


def test_public_api_is_exported() -> None:
    for name in sd.__all__:
        assert getattr(sd, name) is not None
    assert callable(sd.convert) and callable(sd.open_mouse) and callable(sd.synthesize)
    assert sd.__version__ != "0.0.0+unknown"


def test_import_does_not_pull_torch() -> None:
    code = "import sys, sensorium_data; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# ----------------------------------------------------------------------------- layers

#: What each part of the package may import, along the data's path. The core modules (errors,
#: conventions, remote, _version, _argparse) import nothing of the package above them; the top
#: (the package itself, cli, examples, plotting) may import anything.
_LAYERS = ("core", "filetree", "synthetic", "store", "loading", "metrics", "submission", "top")
_MAY_IMPORT = {
    "core": {"core"},
    "filetree": {"core", "filetree"},
    "synthetic": {"core", "synthetic"},
    "store": {"core", "filetree", "store"},
    "loading": {"core", "filetree", "store", "loading"},
    "metrics": {"core", "store", "metrics"},
    "submission": {"core", "filetree", "store", "loading", "metrics", "submission"},
    "top": set(_LAYERS),
}
_CORE = {"errors", "conventions", "remote", "_version", "_argparse"}


def _part(module: str) -> str:
    """The layer of ``sensorium_data.<...>``."""
    parts = module.split(".")[1:]
    if not parts:
        return "top"
    if parts[0] in _CORE:
        return "core"
    if parts[0] in _MAY_IMPORT and parts[0] != "top":
        return parts[0]
    return "top"


def _imports(path: pathlib.Path, module: str) -> list[tuple[int, str]]:
    """Every ``sensorium_data`` module ``path`` imports (at any depth), with its line."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            # "from . import x": x may be a module of that package
            found += [(node.lineno, f"{target}.{a.name}") for a in node.names]
    return [(line, name) for line, name in found if name.split(".")[0] == "sensorium_data"]


def test_no_module_imports_from_a_layer_above_it() -> None:
    root = pathlib.Path(sd.__file__).parent
    wrong = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root.parent).with_suffix("")
        module = ".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)
        here = _part(module)
        for line, name in _imports(path, module):
            # "from ..x import y" names y, which may be a function: the layer is x's either way
            there = _part(name)
            if there not in _MAY_IMPORT[here]:
                wrong.append(f"{path.relative_to(root.parent)}:{line} ({here}) imports {name}")
    assert not wrong, "\n".join(wrong)
    # the check sees the package's parts (a typo in _part would pass everything)
    parts = {
        _part(".".join(p.relative_to(root.parent).with_suffix("").parts))
        for p in root.rglob("*.py")
    }
    assert parts == set(_LAYERS)
