"""Property-based shape tests: generated BigGAN / BigGAN-deep specs (32..512, tiny widths, channel
multipliers, attention placements, skip-z, class counts) compile through the whole pipeline, G maps
(z, y) to images of the resolution, D maps images to one logit per sample, and every node's real
output shape equals its inferred type. The catalog itself runs the same check at a tiny width."""
from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from biggan_zoo.compiler.api import LoadedSpec, compile_graph, load_spec
from biggan_zoo.compiler.types import TensorType

SPECS = Path(__file__).resolve().parents[1] / "specs"
BATCH = 2
MULTS = [1, 2, 4, 8]



def _mult_choice(ch: int, floor: int) -> st.SearchStrategy[int]:
    """Channel multipliers m with ch * m >= floor (BigGAN-deep bottlenecks need width // 4 >= 1)."""
    return st.sampled_from([m for m in MULTS if ch * m >= floor])


@st.composite
def generated_specs(draw: st.DrawFn) -> dict[str, Any]:
    """A valid spec document for a random small member of the BigGAN family."""
    deep = draw(st.booleans())
    n_up = draw(st.integers(3, 7))  # 4 * 2**n_up: resolutions 32 .. 512
    res = 4 * 2 ** n_up
    ch = draw(st.integers(1, 4))
    floor = 4 if deep else 1
    n_classes = draw(st.integers(1, 12))
    # widths per stage; stages at 128x128 and above stay at the narrowest width so forwards stay cheap
    g_mults = [draw(_mult_choice(ch, floor)) if 4 * 2 ** i < 128 else min(m for m in MULTS if ch * m >= floor)
               for i in range(n_up + 1)]
    d_mults = [draw(_mult_choice(ch, floor)) if res // 2 ** (i + 1) < 128 else min(m for m in MULTS if ch * m >= floor)
               for i in range(n_up)]
    if deep:  # deep G blocks can only drop channels, deep D blocks can only add them
        g_mults = sorted(g_mults, reverse=True)
        d_mults = sorted(d_mults)
    g_widths = [ch * m for m in g_mults]
    d_widths = [ch * m for m in d_mults]

    def attention_site(widths: list[int], res_of) -> int | None:
        sites = [i for i, w in enumerate(widths) if w >= 8 and 8 <= res_of(i) <= 64]
        return draw(st.sampled_from([None, *sites]))

    g_attn = attention_site(g_widths[1:], lambda i: 4 * 2 ** (i + 1))
    d_attn = attention_site(d_widths, lambda i: res // 2 ** (i + 1))
    shared = True if deep else draw(st.booleans())
    skip_z = (not deep) and shared and draw(st.booleans())
    z_chunk = draw(st.integers(1, 4))
    z_dim = z_chunk * (n_up + 1) if skip_z else draw(st.integers(1, 8))
    g_settings = {"sn_style": draw(st.sampled_from(["biggan", "torch"])),
                  "init": draw(st.sampled_from(["orthogonal", "normal", "xavier", "default"]))}

    g_nodes: dict[str, Any] = {}
    if shared:
        g_nodes["shared"] = {"op": "embedding", "inputs": ["y"], "dim": draw(st.integers(1, 6))}
    first = "z"
    if skip_z:
        split = {"chunks": n_up + 1} if draw(st.booleans()) else {"sizes": [z_chunk] * (n_up + 1)}
        g_nodes["z_split"] = {"op": "split", "inputs": ["z"], **split}
        first = "z_split.0"
    if deep:
        g_nodes["cond"] = {"op": "concat", "inputs": ["shared", "z"]}
        first = "cond"
    g_nodes["linear"] = {"op": "linear", "inputs": [first], "out": g_widths[0] * 16}
    g_nodes["stem"] = {"op": "reshape", "inputs": ["linear"], "shape": [g_widths[0], 4, 4]}
    prev = "stem"
    for i in range(n_up):
        if deep:
            cond = ["cond"]
        else:
            cond = (["shared"] if shared else ["y"]) + ([f"z_split.{i + 1}"] if skip_z else [])
        if deep:
            g_nodes[f"block{i}a"] = {"op": "deep_g_block", "inputs": [prev, *cond], "out": g_widths[i]}
            prev = f"block{i}a"
        g_nodes[f"block{i}"] = {"op": "deep_g_block" if deep else "g_block", "inputs": [prev, *cond],
                                "out": g_widths[i + 1], "upsample": True}
        prev = f"block{i}"
        if g_attn == i:
            g_nodes["attn"] = {"op": "self_attention", "inputs": [prev]}
            prev = "attn"
    g_nodes["output_layer"] = {"op": "g_output", "inputs": [prev]}

    conditional_d = draw(st.booleans())
    d_nodes: dict[str, Any] = {}
    prev = "x"
    if deep:
        d_nodes["input_conv"] = {"op": "conv2d", "inputs": ["x"], "out": d_widths[0]}
        prev = "input_conv"
    for i in range(n_up):
        if deep:
            d_nodes[f"block{i}"] = {"op": "deep_d_block", "inputs": [prev], "out": d_widths[i]}
            d_nodes[f"block{i}b"] = {"op": "deep_d_block", "inputs": [f"block{i}"], "out": d_widths[i],
                                     "downsample": False}
            prev = f"block{i}b"
        else:
            d_nodes[f"block{i}"] = {"op": "d_block", "inputs": [prev], "out": d_widths[i],
                                    "preactivation": i > 0}
            prev = f"block{i}"
        if d_attn == i:
            d_nodes["attn"] = {"op": "self_attention", "inputs": [prev]}
            prev = "attn"
    if not deep and draw(st.booleans()):  # BigGAN's extra full-resolution block before the head
        d_nodes["block_last"] = {"op": "d_block", "inputs": [prev], "out": d_widths[-1], "downsample": False}
        prev = "block_last"
    d_nodes["features"] = {"op": "relu", "inputs": [prev]}
    d_nodes["pooled"] = {"op": "global_sum_pool", "inputs": ["features"]}
    d_nodes["logit"] = {"op": "projection_head", "inputs": ["pooled", "y"] if conditional_d else ["pooled"]}

    return {
        "spec_version": 1,
        "description": f"generated {'BigGAN-deep' if deep else 'BigGAN'} at {res}x{res}",
        "graphs": {
            "G": {"settings": g_settings, "inputs": {"z": {"vector": z_dim}, "y": {"classes": n_classes}},
                  "nodes": g_nodes, "outputs": ["output_layer"]},
            "D": {"inputs": {"x": {"image": [3, res, res]}, "y": {"classes": n_classes}},
                  "nodes": d_nodes, "outputs": ["logit"]},
        },
    }


def _batch(t: TensorType, probs: bool) -> torch.Tensor | float:
    if t.kind == "scalar":  # a per-call value such as the truncation
        return 0.5
    if t.kind == "classes":
        n = int(t.classes or 1)
        return torch.softmax(torch.randn(BATCH, n), 1) if probs else torch.randint(0, n, (BATCH,))
    return torch.randn(BATCH, *t.shape)


def _expected(t: TensorType) -> tuple[int, ...]:
    return (BATCH,) if t.kind == "scalar" else (BATCH, *t.shape)


def run_and_check(spec: LoadedSpec, graph: str,
                  feeds: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.nn.Module]:
    """Run one compiled graph, asserting every node's real output shape(s) equal the inferred type(s)."""
    checked = spec.graphs[graph]
    module = compile_graph(spec, graph).train()
    seen: dict[str, Any] = {}
    for node in checked.nodes:
        getattr(module, node.name).register_forward_hook(
            lambda _m, _i, out, name=node.name: seen.__setitem__(name, out))
    out = module(*[feeds[name] for name in checked.inputs])
    for node in checked.nodes:
        real = seen[node.name]
        real_shapes = [tuple(t.shape) for t in real] if isinstance(real, tuple) else tuple(real.shape)
        inferred = [_expected(t) for t in node.out] if isinstance(node.out, tuple) else _expected(node.out)
        assert real_shapes == inferred, f"{graph}.{node.name}: real {real_shapes}, inferred {inferred}"
    return out, module


def check_g_and_d(spec: LoadedSpec, probs: bool = False, backward: bool = True) -> None:
    """G(z, y) is an image batch of D's input size; D(G(z, y), y) is one logit per sample; with
    `backward`, gradients reach every parameter of G and D."""
    g_inputs = spec.graphs["G"].inputs
    y = _batch(g_inputs["y"], probs)
    with torch.set_grad_enabled(backward):
        feeds = {name: _batch(t, probs) for name, t in g_inputs.items()}
        feeds["y"] = y  # D judges the images against the same classes
        images, g_module = run_and_check(spec, "G", feeds)
        assert tuple(images.shape) == (BATCH, *spec.graphs["D"].inputs["x"].shape)
        assert images.abs().max() <= 1.0  # tanh output
        logits, d_module = run_and_check(spec, "D", {"x": images, "y": y})
    assert tuple(logits.shape) == (BATCH,)
    assert torch.isfinite(logits).all()
    if backward:
        logits.sum().backward()
        for name, p in [*g_module.named_parameters(), *d_module.named_parameters()]:
            assert p.grad is not None, f"no gradient reached {name}"


def load_generated(document: dict[str, Any]) -> LoadedSpec:
    """Write a generated document as JSON (a YAML subset) and load it through the whole front end."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "generated.json"
        path.write_text(json.dumps(document))
        return load_spec(path)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(document=generated_specs(), probs=st.booleans())
def test_generated_architectures_have_consistent_shapes(document: dict[str, Any], probs: bool) -> None:
    torch.manual_seed(0)
    spec = load_generated(document)
    res = document["graphs"]["D"]["inputs"]["x"]["image"][1]
    assert spec.graphs["G"].output_types == [TensorType.image(3, res, res)]
    assert spec.graphs["D"].output_types == [TensorType.scalar()]
    check_g_and_d(spec, probs, backward=False)  # forward only: the catalog test below runs backward


@pytest.mark.parametrize("path", sorted(SPECS.glob("*.yaml")), ids=lambda p: p.stem)
def test_catalog_spec_runs_at_tiny_width(path: Path) -> None:
    """Every catalog entry compiles, runs forward and backward at ch 8 (the narrowest width at which
    attention still has C // 8 >= 1 key channels everywhere), with real shapes equal to inferred ones."""
    torch.manual_seed(0)
    check_g_and_d(load_spec(path, overrides=["vars.ch=8"]))
