"""Block templates (specs/blocks/*.yaml) equal the Python block ops: every catalog spec that uses
g_block, d_block, deep_g_block or deep_d_block, rebuilt with the templates, has the same state_dict
keys and shapes, and the same G and D outputs and updated buffers bit for bit on the same weights.
Plus the template language itself: conditions, starred inputs, nesting, `zoo code --node`."""
from __future__ import annotations

import functools
from pathlib import Path

import pytest
import torch

from biggan_zoo.cli import main
from biggan_zoo.compiler.api import LoadedSpec, _check_g_feeds_d, compile_graph, load_raw, load_spec
from biggan_zoo.compiler.diagnostics import SpecError
from biggan_zoo.compiler.graph import check_graph
from biggan_zoo.compiler.load import CATALOG, load_document, merge, read_text
from biggan_zoo.compiler.resolve import resolve
from biggan_zoo.compiler.spec import validate

ROOT = Path(__file__).resolve().parents[1]
LIBRARIES = ("blocks/biggan.yaml", "blocks/biggan_deep.yaml")
AS_TEMPLATE = {"g_block": "biggan_g_block", "d_block": "biggan_d_block",
               "deep_g_block": "biggan_deep_g_block", "deep_d_block": "biggan_deep_d_block"}
TINY = ["vars.ch=8"]  # the narrowest width at which every catalog spec's attention has a key channel


def _checked(doc, name: str) -> LoadedSpec:
    doc = resolve(doc)
    model = validate(doc)
    graphs = {g: check_graph(g, graph, doc) for g, graph in model.graphs.items()}
    _check_g_feeds_d(graphs, doc)
    return LoadedSpec(name, CATALOG / f"{name}.yaml", doc, model, graphs)


def templated(name: str, overrides: list[str]) -> LoadedSpec:
    """Catalog spec `name` with every Python block op replaced by its template (fields unchanged)."""
    doc = load_raw(name, overrides)
    for library in LIBRARIES:
        doc = merge(load_document(CATALOG / library), doc)
    for graph in doc.data["graphs"].values():
        for node in graph["nodes"].values():
            node["op"] = AS_TEMPLATE.get(node.get("op"), node.get("op"))
    return _checked(doc, name)


def _block_graphs(path: Path) -> list[str]:
    data = load_raw(path).data
    return [g for g, graph in data["graphs"].items() if any(n.get("op") in AS_TEMPLATE for n in graph["nodes"].values())]


CASES = sorted((p.stem, g) for p in CATALOG.glob("*.yaml") for g in _block_graphs(p))
CATALOG_SPECS = sorted({name for name, _ in CASES})


@functools.lru_cache(maxsize=None)
def first_with_this_graph(name: str, graph: str) -> str:
    """The first spec (in CASES) whose resolved `graph` equals `name`'s: training variants share one."""
    data = load_spec(name, TINY).data["graphs"][graph]
    return next(other for other, g in CASES if g == graph and load_spec(other, TINY).data["graphs"][g] == data)


def test_the_catalog_uses_the_blocks() -> None:
    assert {"biggan128", "biggan_deep128", "sagan128", "biggan32", "biggan512"} <= set(CATALOG_SPECS)
    assert len(CASES) >= 30


def _inputs(spec: LoadedSpec, graph: str, batch: int = 1) -> list:
    out = []
    for t in spec.graphs[graph].inputs.values():
        out.append(torch.randint(0, int(t.classes or 1), (batch,)) if t.kind == "classes"
                   else torch.randn(batch, *t.shape))
    return out


@pytest.mark.parametrize("name, graph", CASES, ids=[f"{n}-{g}" for n, g in CASES])
def test_template_blocks_equal_the_python_blocks(name: str, graph: str) -> None:
    first = first_with_this_graph(name, graph)
    if first != name:  # the same resolved graph as a spec compared already (a training variant)
        assert load_spec(name, TINY).data["graphs"][graph] == load_spec(first, TINY).data["graphs"][graph]
        return
    python, template = load_spec(name, TINY), templated(name, TINY)
    assert any(n.op.op in AS_TEMPLATE.values() for n in template.graphs[graph].nodes)
    ours, theirs = compile_graph(python, graph, init=False), compile_graph(template, graph, init=False)
    keys = {k: tuple(v.shape) for k, v in ours.state_dict().items()}
    assert {k: tuple(v.shape) for k, v in theirs.state_dict().items()} == keys
    theirs.load_state_dict(ours.state_dict())
    torch.manual_seed(0)
    inputs = _inputs(python, graph)
    for mode in ("train", "eval"):  # batch statistics and power iterations update buffers in training
        ours.train(mode == "train")
        theirs.train(mode == "train")
        with torch.no_grad():
            assert torch.equal(ours(*inputs), theirs(*inputs)), f"{mode} outputs differ"
    after = theirs.state_dict()
    assert all(torch.equal(v, after[k]) for k, v in ours.state_dict().items()), "updated buffers differ"


@pytest.mark.parametrize("name, graph", CASES, ids=[f"{n}-{g}" for n, g in CASES])
def test_template_blocks_have_the_same_keys_and_shapes_at_full_width(name: str, graph: str) -> None:
    """At the catalog's own widths (on the meta device: nothing allocated), not only at ch 8."""
    python = compile_graph(load_spec(name), graph, device="meta")
    template = compile_graph(templated(name, []), graph, device="meta")
    assert {k: v.shape for k, v in template.state_dict().items()} == {k: v.shape for k, v in python.state_dict().items()}


def test_template_blocks_have_the_reference_keys_in_nested_form() -> None:
    module = compile_graph(templated("biggan128", []), "G", device="meta")
    keys = set(module.state_dict())
    assert {"block1.bn1.gain.weight", "block1.bn1.gain.u0", "block1.bn1.gain.sv0", "block1.bn1.stored_mean",
            "block1.conv_sc.u0", "block5.conv2.sv0"} <= keys
    assert keys == set(compile_graph(load_spec("biggan128"), "G", device="meta").state_dict())


def test_conditions_drop_the_shortcut_and_readers_read_its_input() -> None:
    spec = templated("biggan128", TINY)
    d = compile_graph(spec, "D", device="meta")
    assert not hasattr(d.block6, "conv_sc") and not hasattr(d.block6, "pool")  # 16ch -> 16ch, no pooling
    assert hasattr(d.block5, "conv_sc") and hasattr(d.block1, "pool_x") and not hasattr(d.block1, "act0")
    assert "residual = self.residual(conv2, x)" in d.block6.code


def test_a_starred_input_takes_every_condition() -> None:
    g = compile_graph(templated("biggan128", TINY), "G", device="meta")
    assert "def forward(self, x, cond_0, cond_1)" in g.block1.code
    assert "self.bn1(x, cond_0, cond_1)" in g.block1.code


def test_templates_nest_and_params_flow_down() -> None:
    doc = load_raw("biggan32", TINY)
    doc = merge(read_text("""
blocks:
  act_conv:
    params: {out: {type: int}, slope: {type: float, default: 0.0}}
    inputs: [x]
    nodes:
      act: {op: leaky_relu, inputs: [x], slope: "${slope}"}
      conv: {op: conv2d, inputs: [act], out: "${out}"}
    outputs: [conv]
  pair:
    params: {out: {type: int}}
    inputs: [x]
    nodes:
      first: {op: act_conv, inputs: [x], out: "${out}", slope: 0.2}
      second: {op: act_conv, inputs: [first], out: "${out}"}
    outputs: [second]
""", "<blocks>"), doc)
    doc.data["graphs"]["D"]["nodes"]["block4"] = {"op": "pair", "inputs": ["block3"], "out": 32}
    spec = _checked(doc, "biggan32")
    d = compile_graph(spec, "D", device="meta")
    assert d.block4.first.act.negative_slope == 0.2 and d.block4.second.act.negative_slope == 0.0
    assert "block4.second.conv.weight" in d.state_dict()


def test_template_errors_name_the_template_and_the_use_site() -> None:
    doc = load_raw("biggan128", TINY)
    for library in LIBRARIES:
        doc = merge(load_document(CATALOG / library), doc)
    doc.data["graphs"]["G"]["nodes"]["block2"]["op"] = "biggan_deep_g_block"
    doc.data["graphs"]["G"]["nodes"]["block2"]["out"] = 512  # a deep block cannot widen 128 -> 512: its skip slices
    doc.data["graphs"]["G"]["nodes"]["block2"].pop("upsample", None)
    with pytest.raises(SpecError) as info:
        _checked(doc, "biggan128")
    text = info.value.render()
    assert "specs/blocks/biggan_deep.yaml:" in text and "channel_slice 0:512 does not fit" in text
    assert "used by graphs.G.nodes.block2 at " in text and "biggan128.yaml:" in text


@pytest.mark.parametrize("name", ["biggan128_leaky_relu", "biggan128_bilinear"])
def test_variants_are_the_catalog_architecture_with_other_block_internals(name: str) -> None:
    variant = compile_graph(load_spec(name), "G", device="meta")
    base = compile_graph(load_spec("biggan128"), "G", device="meta")
    assert {k: v.shape for k, v in variant.state_dict().items()} == {k: v.shape for k, v in base.state_dict().items()}
    block = variant.block3
    if "leaky" in name:
        assert isinstance(block.act1, torch.nn.LeakyReLU) and block.act1.negative_slope == 0.2
        assert isinstance(block.act2, torch.nn.LeakyReLU)
    else:
        assert block.up_h.mode == block.up_x.mode == "bilinear"


def test_zoo_code_prints_one_node(capsys) -> None:
    assert main(["code", "biggan128_leaky_relu", "--node", "block3"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("# biggan128_leaky_relu: graph G, node block3 (biggan_g_block)\n")
    assert "def forward(self, x, cond_0, cond_1):" in out and "act1 = self.act1(bn1)" in out
    assert "= None" not in out
    assert main(["code", "biggan128", "--node", "block3", "--graph", "D"]) == 0
    out = capsys.readouterr().out
    assert "def forward(self, block2):" in out and "conv_sc = self.conv_sc(block2)" in out and "avg_pool2d(" in out


def test_zoo_code_unknown_node_is_a_usage_error(capsys) -> None:
    assert main(["code", "biggan128", "--node", "blok3"]) == 2
    err = capsys.readouterr().err
    assert "no node 'blok3'" in err and "did you mean 'block3'?" in err
