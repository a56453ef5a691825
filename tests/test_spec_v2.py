"""Spec language v2 (issue 15): unused vars and stale exclude entries are errors, `--set` errors point at
the override, a changed op replaces a node, `extends` takes a list of bases, `zoo expand --trace`."""
from pathlib import Path

import pytest

from biggan_zoo.cli import main
from biggan_zoo.compiler.api import load_spec
from biggan_zoo.compiler.diagnostics import SpecError

ROOT = Path(__file__).resolve().parent.parent
TINY = ROOT / "tests" / "data" / "tiny.yaml"


def variant(tmp_path: Path, text: str, name: str = "variant.yaml") -> Path:
    """A spec file next to a copy of tiny.yaml (extends stays inside the spec's folder tree)."""
    (tmp_path / "tiny.yaml").write_text(TINY.read_text())
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def error_of(source, overrides=()) -> SpecError:
    with pytest.raises(SpecError) as e:
        load_spec(source, overrides)
    return e.value


# --- 1. unused vars, exclude entries -------------------------------------------------------------

def test_a_var_no_expression_reads_is_an_error_with_did_you_mean(tmp_path):
    err = error_of(variant(tmp_path, "extends: tiny.yaml\nvars: {chh: 8}\n"))
    assert err.message.startswith("var 'chh' is not used by any expression")
    assert "did you mean 'ch'?" in err.hint
    assert (err.loc.file, err.loc.line, err.loc.col) == (str(tmp_path / "variant.yaml"), 2, 8)


def test_a_misspelt_set_var_is_an_error_at_the_override():
    err = error_of(TINY, ["vars.chh=64"])
    assert err.loc.file == "<--set 1>" and "did you mean 'ch'?" in err.hint


def test_an_underscore_var_may_go_unused(tmp_path):
    spec = load_spec(variant(tmp_path, "extends: tiny.yaml\nvars: {_ch_later: 8}\n"))
    assert spec.data["vars"]["_ch_later"] == 8


def test_a_var_read_only_by_another_var_is_used(tmp_path):
    spec = load_spec(variant(tmp_path, "extends: tiny.yaml\nvars: {half: 2, ch: '${half * 2}'}\n"))
    assert spec.data["vars"]["ch"] == 4


def test_every_catalog_spec_uses_its_vars():
    for path in sorted((ROOT / "specs").glob("*.yaml")):
        load_spec(path)  # raises on an unused var


def test_a_resolved_spec_keeps_its_vars_as_a_record(tmp_path):
    import json

    resolved = tmp_path / "resolved.json"
    resolved.write_text(json.dumps(load_spec(TINY).data))
    assert load_spec(resolved).data["vars"]["ch"] == 4  # no expression reads them: still fine
    assert error_of(resolved, ["vars.ch=8"]).loc.file == "<--set 1>"  # a --set that could change nothing


EXCLUDE = "extends: tiny.yaml\ntrain: {{ortho_reg: {{beta: 1.0e-4, exclude: [{}]}}}}\n"


def test_exclude_entries_must_name_a_node_of_g_without_torch(tmp_path):
    from biggan_zoo.train_config import check_train

    with pytest.raises(SpecError) as e:
        check_train(load_spec(variant(tmp_path, EXCLUDE.format("sharde"))))
    assert "G has no node 'sharde'" in e.value.message and "did you mean 'shared'?" in e.value.hint
    assert e.value.loc.line == 2


def test_exclude_entries_must_match_a_parameter_once_built(tmp_path):
    import biggan_zoo

    good = biggan_zoo.build(variant(tmp_path, EXCLUDE.format("block1.conv1")), device="meta")
    assert "block1.conv1.weight" in dict(good.G.named_parameters()) or any(
        n.startswith("block1.conv1.") for n, _ in good.G.named_parameters())
    with pytest.raises(SpecError) as e:
        biggan_zoo.build(variant(tmp_path, EXCLUDE.format("block1.conv9")), device="meta")
    assert e.value.message == "'block1.conv9' matches no parameter of G"
    assert "did you mean 'block1.conv1'?" in e.value.hint and e.value.loc.line == 2


def test_catalog_exclude_entries_match_parameters():
    import biggan_zoo

    for name in ("biggan128", "biggan128_no_shared", "sagan128"):
        biggan_zoo.build(name, device="meta")  # raises on a stale entry


# --- 2. --set errors point at the override -------------------------------------------------------

@pytest.mark.parametrize("assignment, message, col", [
    ("graphs.G.nodes.block1.out=abc", "Input should be a valid integer", 27),
    ("graphs.G.nodes.blok1.out=5", "graph G has no node 'blok1'", 16),
    ("graphs.G.nodes.linear.out=100", "cannot reshape vector[100]", 27),
    ("graphs.D.inputs.x.image=[3, 32, 32]", "D takes image[3, 32, 32] but G makes image[3, 16, 16]", 25),
    ("graphs.G.nodes.shared=null", "var 'shared_dim' is not used", 23),
    ("graphs.G.nodes.extra.op=relu", "op 'relu' takes 1 input(s), got 0", 16),
])
def test_every_kind_of_set_error_points_at_the_override(assignment, message, col):
    err = error_of(TINY, ["vars.ch=4", assignment])
    assert message in err.message
    assert (err.loc.file, err.loc.line, err.loc.col) == ("<--set 2>", 1, col)
    assert "Traceback" not in err.render() and assignment in err.render()


def test_a_downstream_error_names_the_file_place_in_the_hint():
    err = error_of(TINY, ["graphs.G.nodes.linear.out=100"])
    assert err.hint.startswith(f"this override makes the spec fail at {TINY}:14:")


def test_an_error_of_the_spec_itself_stays_in_the_file(tmp_path):
    broken = variant(tmp_path, "extends: tiny.yaml\ngraphs: {G: {nodes: {linear: {out: 100}}}}\n")
    err = error_of(broken, ["vars.ch=4"])
    assert err.loc.file == str(tmp_path / "tiny.yaml") and "cannot reshape vector[100]" in err.message
    assert not err.hint.startswith("this override")


def test_zoo_check_blames_a_train_error_on_the_override(capsys):
    code = main(["check", str(TINY), "--set", "train.ortho_reg.exclude=[sharde]"])
    err = capsys.readouterr().err
    assert code == 1 and err.startswith("<--set 1>:1:") and "did you mean 'shared'?" in err


# --- 3. a changed op replaces the node ------------------------------------------------------------

def test_a_node_given_another_op_replaces_the_base_node(tmp_path):
    path = variant(tmp_path, "extends: tiny.yaml\nvars: {ch: 8}\ngraphs: {D: {nodes: {block2: {op: self_attention, "
                   "inputs: [block1]}, act: {op: d_block, inputs: [block2], out: 16}}}}\n")
    spec = load_spec(path)
    assert spec.data["graphs"]["D"]["nodes"]["block2"] == {"op": "self_attention", "inputs": ["block1"]}
    assert spec.doc.loc(("graphs", "D", "nodes", "block2", "inputs")).file == str(path)


def test_a_node_with_the_same_op_still_merges(tmp_path):
    spec = load_spec(variant(tmp_path, "extends: tiny.yaml\ngraphs: {G: {nodes: {block2: {op: g_block, "
                             "out: 8}}}}\n"))
    assert spec.data["graphs"]["G"]["nodes"]["block2"]["inputs"] == ["block1", "shared", "z_split.2"]


def test_errors_of_a_replaced_node_name_the_child_file(tmp_path):
    path = variant(tmp_path, "extends: tiny.yaml\ngraphs: {G: {nodes: {block2: {op: conv2d, "
                   "inputs: [block1]}}}}\n")
    err = error_of(path)
    assert err.message == "required field 'out' is missing" and err.loc.file == str(path)


# --- 4. a list of bases, --trace -----------------------------------------------------------------

def test_bases_apply_in_order_each_value_remembering_its_file(tmp_path):
    variant(tmp_path, "vars: {ch: 8}\ntrain: {batch_size: 16}\n", "mixins/wide.yaml")
    variant(tmp_path, "vars: {ch: 6}\n", "mixins/narrow.yaml")
    path = variant(tmp_path, "extends: [tiny.yaml, mixins/wide.yaml, mixins/narrow.yaml]\n")
    spec = load_spec(path)
    assert spec.data["vars"]["ch"] == 6 and spec.data["train"]["batch_size"] == 16
    assert spec.doc.loc(("vars", "ch")).file == str(tmp_path / "mixins" / "narrow.yaml")
    assert spec.doc.loc(("train", "batch_size")).file == str(tmp_path / "mixins" / "wide.yaml")
    assert spec.doc.loc(("vars", "z_chunk")).file == str(tmp_path / "tiny.yaml")


def test_a_list_of_bases_is_cycle_checked(tmp_path):
    variant(tmp_path, "extends: [tiny.yaml, b.yaml]\n", "a.yaml")
    path = variant(tmp_path, "extends: [tiny.yaml, a.yaml]\n", "b.yaml")
    err = error_of(path)
    assert "`extends` cycle: b.yaml -> a.yaml -> b.yaml" in err.message and err.loc.col == 22


def test_the_files_extends_reads_are_bounded(tmp_path):
    variant(tmp_path, "vars: {ch: 4}\n", "m0.yaml")
    for i in range(1, 8):  # each level names the one below twice: 2^7 reads without a bound
        variant(tmp_path, f"extends: [m{i - 1}.yaml, m{i - 1}.yaml]\n", f"m{i}.yaml")
    err = error_of(variant(tmp_path, "extends: [tiny.yaml, m7.yaml]\n"))
    assert "`extends` reads more than 64 files" in err.message


@pytest.mark.parametrize("name, base_files", [
    ("biggan128_no_shared", {"no_skip_z.yaml", "no_shared.yaml"}),
    ("biggan128_no_skip_z", {"no_skip_z.yaml"}),
    ("biggan128_no_ortho", {"no_ortho.yaml"}),
])
def test_table1_ablations_are_made_of_mixins(name, base_files):
    text = (ROOT / "specs" / f"{name}.yaml").read_text()
    assert len([line for line in text.splitlines() if not line.startswith(" ")]) <= 4  # comment, extends, description
    files = {loc.file for loc in load_spec(name).doc.locs.values()}
    assert {str(ROOT / "specs" / "mixins" / f) for f in base_files} <= files


def test_expand_trace_names_the_file_of_each_value(capsys):
    code = main(["expand", "biggan128_no_shared", "--trace", "--set", "vars.ch=32"])
    lines = capsys.readouterr().out.splitlines()
    assert code == 0
    assert "vars.ch = 32  # <--set 1>:1:9" in lines
    inputs = next(line for line in lines if line.startswith("graphs.G.nodes.block1.inputs = "))
    assert inputs.endswith("specs/mixins/no_shared.yaml:10:24") and '["stem", "y"]' in inputs
    out = next(line for line in lines if line.startswith("graphs.G.nodes.block1.out = "))
    assert out.startswith("graphs.G.nodes.block1.out = 512  (${16 * ch})  # ") and "specs/biggan128.yaml:18:" in out
