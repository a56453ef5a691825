"""The installed package is `biggan_zoo` only: every source folder is listed, and a user's own folders
named like ours (`runtime/`, `compiler/`, `zoo/`) do not change what zoo imports."""
from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
SETUPTOOLS = PYPROJECT["tool"]["setuptools"]


def _package_name(folder: Path) -> str:
    """The import name a repository folder installs as, by the pyproject's package-dir mapping."""
    relative = folder.relative_to(ROOT).as_posix()
    best = max((source for source in SETUPTOOLS["package-dir"].values()
                if relative == source or relative.startswith(source + "/")), key=len)
    name = next(n for n, source in SETUPTOOLS["package-dir"].items() if source == best)
    rest = relative[len(best):].strip("/")
    return name + ("." + rest.replace("/", ".") if rest else "")


def test_every_source_folder_is_an_installed_package() -> None:
    folders = [p.parent for top in ("zoo", "compiler", "runtime") for p in (ROOT / top).rglob("__init__.py")]
    missing = sorted({_package_name(f) for f in folders} - set(SETUPTOOLS["packages"]))
    assert not missing, f"add these to [tool.setuptools] packages in pyproject.toml: {missing}"


def test_nothing_generic_is_installed() -> None:
    assert PYPROJECT["project"]["name"] != "zoo"
    assert all(p == "biggan_zoo" or p.startswith("biggan_zoo.") for p in SETUPTOOLS["packages"])
    assert PYPROJECT["project"]["scripts"]["zoo"] == "biggan_zoo.cli:entry"


def test_user_folders_named_like_ours_change_nothing(tmp_path: Path) -> None:
    for name in ("runtime", "compiler", "zoo"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text("raise ImportError('the user folder was imported')\n")
    script = tmp_path / "use_zoo.py"
    script.write_text("import biggan_zoo as zoo\n"
                      "from biggan_zoo.weights import load_weights\n"
                      "from biggan_zoo.runtime.checkpoint import latest_checkpoint\n"
                      "from biggan_zoo.compiler.api import load_spec\n"
                      "print(load_spec('demo32').name)\n")
    done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "demo32"


# --- dependencies: the core imports only required packages at module level; the suite's are in [test] ---

def _distribution(requirement: str) -> str:
    """`huggingface_hub>=0.20; extra == "hub"` -> huggingface-hub (a normalised distribution name)."""
    import re

    return re.split(r"[\s<>=!~;\[]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def _module_distribution(module: str) -> str:
    import importlib.metadata

    found = importlib.metadata.packages_distributions().get(module)
    return _distribution(found[0]) if found else _distribution(module)


def _third_party(modules: set[str]) -> set[str]:
    return {m for m in modules if m not in sys.stdlib_module_names and m not in ("biggan_zoo", "tests", "conftest")}


def _module_level_imports(path: Path) -> set[str]:
    """Top-level names imported when the module is imported (not inside functions or TYPE_CHECKING)."""
    import ast

    found: set[str] = set()

    def visit(statements: list[ast.stmt]) -> None:
        for node in statements:
            if isinstance(node, ast.Import):
                found.update(a.name.split(".")[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.split(".")[0])
            elif isinstance(node, ast.If) and "TYPE_CHECKING" not in ast.unparse(node.test):
                visit(node.body)
                visit(node.orelse)
            elif isinstance(node, ast.Try) and not any("ImportError" in ast.unparse(h.type or ast.Constant(""))
                                                       for h in node.handlers):
                visit(node.body)

    visit(ast.parse(path.read_text()).body)
    return found


def test_the_core_imports_only_required_packages_at_import_time() -> None:
    required = {_distribution(r) for r in PYPROJECT["project"]["dependencies"]}
    offenders = {}
    for top in ("zoo", "compiler", "runtime"):
        for path in (ROOT / top).rglob("*.py"):
            extra = {_module_distribution(m) for m in _third_party(_module_level_imports(path))} - required
            if extra:
                offenders[str(path.relative_to(ROOT))] = sorted(extra)
    assert not offenders, f"import these inside the functions that use them (optional extras): {offenders}"


def test_the_test_extra_holds_what_the_suite_imports() -> None:
    import ast

    modules: set[str] = set()
    for path in (ROOT / "tests").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                modules.update(a.name.split(".")[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules.add(node.module.split(".")[0])
            elif (isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "importorskip"
                  and node.args and isinstance(node.args[0], ast.Constant)):
                modules.add(str(node.args[0].value).split(".")[0])
    extras = PYPROJECT["project"]["optional-dependencies"]
    have = {_distribution(r) for r in PYPROJECT["project"]["dependencies"] + extras["test"]}
    missing = {_module_distribution(m) for m in _third_party(modules)} - have
    assert not missing, f"add to the test extra in pyproject.toml: {sorted(missing)}"
    for extra in ("eval", "hub"):  # the test extra carries these extras' packages
        assert {_distribution(r) for r in extras[extra]} <= have, extra
    assert "pytest-xdist" in have  # `-n 2` needs it, though no test imports it


def test_zoo_version_names_the_installed_distribution() -> None:
    import importlib.metadata

    done = subprocess.run([sys.executable, "-m", "biggan_zoo", "--version"], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"zoo {importlib.metadata.version('biggan-zoo')}\n"
