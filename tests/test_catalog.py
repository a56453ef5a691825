"""User catalog folders (`--catalog DIR`, `$ZOO_CATALOG`): lookup order, `extends` into the builtin
catalog, where `zoo list` says each entry comes from, and one-line errors for folders that are not."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from biggan_zoo.cli import main
from biggan_zoo.commands.list import short_description
from biggan_zoo.compiler import catalog
from biggan_zoo.compiler.api import load_raw, load_spec
from biggan_zoo.compiler.diagnostics import SpecError

ROOT = Path(__file__).resolve().parent.parent


def _variant(folder: Path, name: str, base: str, ch: int, description: str = "a user variant") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.yaml"
    path.write_text(f"extends: {base}\ndescription: {description}\nvars: {{ch: {ch}}}\n")
    return path


@pytest.fixture
def folders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """Two user folders, run from a third (so nothing is found relative to the working directory)."""
    first, second = tmp_path / "first", tmp_path / "second"
    _variant(first, "narrow128", "biggan128.yaml", 16, "narrow (Me et al. 2026, Table 1). More text.")
    _variant(second, "narrower128", "narrow128.yaml", 8)  # extends an entry of another user folder
    _variant(second, "narrow128", "biggan128.yaml", 32, "shadowed by the first folder")
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    monkeypatch.delenv(catalog.ENV, raising=False)
    return first, second


def test_builtin_catalog_is_the_checkouts_specs() -> None:
    assert catalog.BUILTIN == ROOT / "specs"
    names = [e.name for e in catalog.entries()]
    assert names == sorted(p.stem for p in (ROOT / "specs").glob("*.yaml"))
    assert {e.origin for e in catalog.entries()} == {"builtin"}


def test_env_folders_are_searched_in_order(folders, monkeypatch) -> None:
    first, second = folders
    monkeypatch.setenv(catalog.ENV, os.pathsep.join([str(first), "", str(second)]))
    assert catalog.find("narrow128") == first / "narrow128.yaml"
    assert catalog.find("narrow128.yaml") == first / "narrow128.yaml"
    assert catalog.find("biggan128") == catalog.BUILTIN / "biggan128.yaml"
    assert catalog.find(f"{first}/narrow128") is None  # a path is not a catalog name
    spec = load_spec("narrower128")  # second folder -> first folder -> builtin biggan128
    assert spec.data["vars"]["ch"] == 8 and spec.data["vars"]["z_chunk"] == 20
    monkeypatch.setenv(catalog.ENV, os.pathsep.join([str(second), str(first)]))
    assert load_raw("narrow128").data["vars"]["ch"] == 32


def test_given_folders_come_before_the_environments(folders, monkeypatch) -> None:
    first, second = folders
    monkeypatch.setenv(catalog.ENV, str(second))
    with catalog.searching([first]):
        assert [f.origin for f in catalog.folders()] == [str(first), str(second), "builtin"]
        assert catalog.find("narrow128") == first / "narrow128.yaml"
    assert catalog.find("narrow128") == second / "narrow128.yaml"  # the block's folders are gone after it


def test_without_user_folders_a_user_name_is_unknown(folders) -> None:
    with pytest.raises(SpecError, match="no spec file or catalog entry named 'narrow128'"):
        load_spec("narrow128")


def test_zoo_list_says_where_each_entry_comes_from(folders, monkeypatch, capsys) -> None:
    first, second = folders
    monkeypatch.setenv(catalog.ENV, str(second))
    assert main(["list", "--no-params", "--catalog", str(first)]) == 0
    rows = {}
    for line in capsys.readouterr().out.splitlines()[1:]:
        name, origin, rest = line.split(maxsplit=2)
        rows.setdefault(name, []).append((origin, " ".join(rest.split())))
    assert rows["narrow128"] == [(str(first), "narrow (Me et al. 2026, Table 1)"),
                                 (str(second), f"- - (shadowed by {first})")]
    assert rows["narrower128"] == [(str(second), "a user variant")]
    assert rows["biggan128"][0][0] == "builtin"
    assert set(rows) == {e.name for e in catalog.entries()} | {"narrow128", "narrower128"}


def test_commands_that_take_a_spec_take_catalog_folders(folders, capsys) -> None:
    first, second = folders
    assert main(["check", "narrower128", "--catalog", str(second), "--catalog", str(first)]) == 0
    assert "narrower128.yaml  (G, D; 21 nodes)" in capsys.readouterr().out
    assert main(["expand", "narrow128", "--catalog", str(first)]) == 0
    assert "ch: 16" in capsys.readouterr().out


def test_a_missing_folder_is_one_line(folders, monkeypatch, capsys) -> None:
    assert main(["check", "biggan128", "--catalog", "no_such_folder"]) == 2
    assert capsys.readouterr().err == "zoo check: error: --catalog no_such_folder: not a folder\n"
    monkeypatch.setenv(catalog.ENV, "no_such_folder")
    assert main(["check", "biggan128"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: catalog folder 'no_such_folder' (from $ZOO_CATALOG) is not a folder\n")
    assert "Traceback" not in err


def test_check_with_a_user_catalog_does_not_import_torch(folders) -> None:
    first, second = folders
    code = ("import sys; from biggan_zoo.cli import main; code = main(sys.argv[1:]);"
            "bad = [m for m in sys.modules if m == 'torch' or m.startswith('torch.')];"
            "print(bad); sys.exit(code or bool(bad))")
    done = subprocess.run([sys.executable, "-c", code, "check", "narrower128", "--catalog", str(first),
                           "--catalog", str(second)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip().endswith("[]")


@pytest.mark.parametrize("entry", catalog.entries(), ids=lambda e: e.name)
def test_list_never_cuts_inside_a_citation(entry) -> None:
    text = " ".join(str(load_raw(entry.path).data["description"]).split())
    short = short_description(text)
    head = short.removesuffix(" ...")
    assert len(short) <= 90 and head and text.startswith(head)
    assert head.count("(") == head.count(")") and head.count("`") % 2 == 0, short
    if short.endswith(" ..."):  # cut at a word boundary
        assert text[len(head)] in " ,;:"
    assert not re.search(r"\bet al$", head)


def test_short_description_keeps_a_sentence_that_fits() -> None:
    assert short_description("BigGAN-128 at width ch 64 (Brock et al. 2019, Table 1 row 9). Then more.") \
        == "BigGAN-128 at width ch 64 (Brock et al. 2019, Table 1 row 9)"
    long = "word " * 30 + "(Brock et al. 2019)"
    assert short_description(long) == ("word " * 17).strip() + " ..."
