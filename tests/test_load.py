"""Loading: positions, YAML safety, extends/merge semantics, --set overrides."""
from pathlib import Path

import pytest

from biggan_zoo.compiler.diagnostics import SpecError
from biggan_zoo.compiler.load import Document, apply_set, load_document, merge, read_text
from biggan_zoo.compiler.resolve import resolve


def write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def test_positions_are_kept():
    doc = read_text("a:\n  b: [1, 2]\n  c: x\n", "f.yaml")
    assert doc.data == {"a": {"b": [1, 2], "c": "x"}}
    loc = doc.locs[("a", "b", 1)]
    assert (loc.file, loc.line, loc.col) == ("f.yaml", 2, 10)
    assert str(doc.locs[("a", "c")]) == "f.yaml:3:6"
    assert str(doc.loc(("a", "c"), key=True)) == "f.yaml:3:3"


@pytest.mark.parametrize("text, message", [
    ("a: 1\na: 2\n", "duplicate key 'a'"),
    ("a: !!python/object:os.system x\n", "YAML tag"),
    ("a: !mytag 3\n", "YAML tag"),
    ("a: [1, 2\n", "invalid YAML"),
    ("base: &b {x: 1}\nd:\n  <<: *b\n", "merge keys"),
])
def test_yaml_refusals(text, message):
    with pytest.raises(SpecError) as e:
        read_text(text, "f.yaml")
    assert message in e.value.message
    assert e.value.loc is not None and e.value.loc.file == "f.yaml"


def test_billion_laughs_is_bounded():
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 9):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]")
    with pytest.raises(SpecError) as e:
        read_text("\n".join(lines) + "\n", "bomb.yaml")
    assert "aliases" in e.value.hint


def test_deep_nesting_is_bounded():
    with pytest.raises(SpecError) as e:
        read_text("a: " + "[" * 100 + "]" * 100 + "\n", "deep.yaml")
    assert "nesting deeper" in e.value.message


def test_json_errors_are_located():
    with pytest.raises(SpecError) as e:
        read_text('{"a": 1,\n "b": }', "f.json")
    assert e.value.loc.line == 2


def test_extends_merge_semantics(tmp_path):
    write(tmp_path, "base.yaml", "vars: {ch: 96, z: 20}\nlist: [1, 2, 3]\nnodes: {a: {op: x, k: 1}, b: {op: y}}\n")
    child = write(tmp_path, "child.yaml", "extends: base.yaml\nvars: {ch: 64}\nlist: [9]\nnodes: {a: {k: 2}, b: null}\n")
    doc = load_document(child)
    assert doc.data == {"vars": {"ch": 64, "z": 20}, "list": [9], "nodes": {"a": {"op": "x", "k": 2}}}
    assert doc.locs[("vars", "ch")].file.endswith("child.yaml")
    assert doc.locs[("vars", "z")].file.endswith("base.yaml")


def test_extends_cycle(tmp_path):
    write(tmp_path, "a.yaml", "extends: b.yaml\n")
    write(tmp_path, "b.yaml", "extends: a.yaml\n")
    with pytest.raises(SpecError) as e:
        load_document(tmp_path / "a.yaml")
    assert "cycle: a.yaml -> b.yaml -> a.yaml" in e.value.message


def test_extends_missing_file(tmp_path):
    p = write(tmp_path, "a.yaml", "extends: nowhere.yaml\n")
    with pytest.raises(SpecError) as e:
        load_document(p)
    assert "cannot find 'nowhere.yaml'" in e.value.message and e.value.loc.line == 1


def test_set_overrides_and_locations():
    doc = Document({"vars": {"ch": 96}, "l": [1, 2]}, {}, "f.yaml")
    apply_set(doc, "vars.ch=64")
    apply_set(doc, "l.1=7", 1)
    apply_set(doc, "train.batch_size=256", 2)
    assert doc.data == {"vars": {"ch": 64}, "l": [1, 7], "train": {"batch_size": 256}}
    assert str(doc.locs[("vars", "ch")]) == "<--set 1>:1:9"


@pytest.mark.parametrize("assignment, message", [
    ("vars.ch", "has no '='"), ("=3", "empty"), ("vars..ch=3", "empty"), ("vars.ch=[1, 2", "invalid YAML"),
])
def test_bad_set(assignment, message):
    with pytest.raises(SpecError) as e:
        apply_set(Document({"vars": {"ch": 1}}, {}, "f.yaml"), assignment)
    assert message in e.value.message


def test_vars_resolve_in_any_order_and_report_cycles():
    doc = read_text('vars: {a: "${b * 2}", b: 3}\nx: "${a + b}"\ns: "w${a}"\n', "v.yaml")
    assert resolve(doc).data == {"vars": {"a": 6, "b": 3}, "x": 9, "s": "w6"}
    with pytest.raises(SpecError) as e:
        resolve(read_text('vars: {a: "${b}", b: "${a}"}\n', "v.yaml"))
    assert "cycle: a -> b -> a" in e.value.message


def test_expression_error_points_into_the_expression():
    with pytest.raises(SpecError) as e:
        resolve(read_text('vars: {ch: 4}\nx: "${ch * chh}"\n', "v.yaml"))
    assert (e.value.loc.line, e.value.loc.col) == (2, 12)
    assert "did you mean 'ch'" in e.value.hint


def test_merge_keeps_locations_of_both_files():
    base = read_text("a: 1\nb: 2\n", "base.yaml")
    child = read_text("b: 3\n", "child.yaml")
    merged = merge(base, child)
    assert merged.locs[("a",)].file == "base.yaml" and merged.locs[("b",)].file == "child.yaml"
