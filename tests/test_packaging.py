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
