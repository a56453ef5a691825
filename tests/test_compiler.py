"""Compiler-wide properties: no torch while checking, the schema file is current, golden code."""
import json
import os
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml

from biggan_zoo.compiler.api import compile_graph, load_spec
from biggan_zoo.compiler.lower import readable_code

ROOT = Path(__file__).resolve().parent.parent
SPECS = sorted(p for p in (ROOT / "specs").glob("*.yaml"))
TINY = ROOT / "tests" / "data" / "tiny.yaml"


def test_checking_does_not_import_torch():
    code = ("import sys; from biggan_zoo.compiler.api import load_spec; from biggan_zoo.train_config import check_train;"
            f"s = load_spec({str(TINY)!r}); check_train(s);"
            "[load_spec(p) for p in sys.argv[1:]];"
            "bad = [m for m in sys.modules if m == 'torch' or m.startswith('torch.')]; print(bad); sys.exit(bool(bad))")
    result = subprocess.run([sys.executable, "-c", code, *map(str, SPECS)], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr


def test_schema_file_is_current():
    from biggan_zoo.commands.schema import schema_text

    stored = (ROOT / "specs" / "schema.json").read_text()
    assert stored == schema_text(), "specs/schema.json is stale: run `zoo schema > specs/schema.json`"


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.stem)
def test_spec_validates_with_jsonschema(path):
    """The exported schema accepts every resolved catalog spec (editors see the same rules)."""
    schema = json.loads((ROOT / "specs" / "schema.json").read_text())
    jsonschema.validate(load_spec(path).data, schema)


def test_schema_rejects_what_pydantic_rejects():
    schema = json.loads((ROOT / "specs" / "schema.json").read_text())
    data = load_spec(TINY).data
    data["graphs"]["G"]["nodes"]["block1"]["upsampel"] = True
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(data, schema)


def test_every_spec_starts_with_the_schema_comment():
    for path in SPECS:
        assert path.read_text().startswith("# yaml-language-server: $schema=./schema.authored.json"), path


def test_generated_code_is_golden():
    spec = load_spec(TINY)
    text = "".join(readable_code(compile_graph(spec, g, device="meta")) for g in ("G", "D"))
    golden = ROOT / "tests" / "data" / "tiny_code.py.txt"
    if os.environ.get("ZOO_UPDATE_GOLDEN"):
        golden.write_text(text)
    assert text == golden.read_text()


def test_state_dict_keys_are_spec_names():
    G = compile_graph(load_spec(TINY), "G", device="meta")
    top = {k.split(".")[0] for k in G.state_dict()}
    assert top == {"shared", "linear", "block1", "block2", "image"}


def test_expand_round_trips(tmp_path, capsys):
    """`zoo expand` prints a spec that loads to the same resolved data."""
    from biggan_zoo.cli import main

    assert main(["expand", str(TINY), "--set", "vars.ch=8"]) == 0
    out = capsys.readouterr().out
    expanded = tmp_path / "expanded.yaml"
    expanded.write_text(out)
    assert load_spec(expanded).data == load_spec(TINY, ["vars.ch=8"]).data
    assert yaml.safe_load(out)["vars"]["ch"] == 8


def test_check_exit_codes(capsys, tmp_path):
    from biggan_zoo.cli import main

    assert main(["check", str(TINY)]) == 0
    assert main(["check", "no_such_spec_anywhere"]) == 1
    assert main(["check", str(tmp_path)]) == 2  # a folder without specs checks nothing: say so
    assert "is a folder without spec files" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["check", "--bogus-flag"])
    assert e.value.code == 2
    assert "Traceback" not in capsys.readouterr().err
