"""Registry-wide op tests (every op's example builds, runs and matches its shape rule), plus the
semantics that decide whether weights transfer: spectral norm, BatchNorm statistics, skips, init."""
from __future__ import annotations

import subprocess
import sys

import pytest
import torch
import torch.nn as nn

from biggan_zoo.compiler.ops import REGISTRY, GraphSettings
from biggan_zoo.compiler.types import TensorType

BATCH = 3
STYLES = [GraphSettings(sn_style="biggan"), GraphSettings(sn_style="torch", sn_eps=1e-12)]


def sample(t: TensorType, batch: int = BATCH, probs: bool = False) -> torch.Tensor:
    """A random batch of tensors of type `t` (class labels as ints, or as probabilities)."""
    if t.kind == "classes":
        n = int(t.classes or 1)
        if probs:
            return torch.softmax(torch.randn(batch, n), dim=1)
        return torch.randint(0, n, (batch,))
    if t.kind == "scalar":  # a scalar input is a per-call value such as the truncation, a python float
        return 0.5  # type: ignore[return-value]
    return torch.randn(batch, *t.shape)


def torch_shape(t: TensorType, batch: int = BATCH) -> tuple[int, ...]:
    """The runtime shape of a batch of type `t`."""
    return (batch,) if t.kind == "scalar" else (batch, *t.shape)


def make(name: str, fields: dict | None = None) -> tuple:
    """The op `name` from its example (fields overridden by `fields`), and its input types."""
    cls = REGISTRY[name]
    example_fields, in_types = cls.example
    op = cls(**{**example_fields, **(fields or {})}, inputs=[f"in{i}" for i in range(len(in_types))])
    return op, in_types


@pytest.mark.parametrize("settings", STYLES, ids=["biggan_sn", "torch_sn"])
@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_example_builds_runs_and_matches_its_shape_rule(name: str, settings: GraphSettings) -> None:
    op, in_types = make(name)
    lo, hi = op.arity
    assert lo <= len(in_types) and (hi is None or len(in_types) <= hi)
    inferred = op.infer(in_types)
    module = op.build(in_types, settings)
    module.train()
    for probs in (False, True):  # class inputs arrive as labels or as probability vectors
        out = module(*[sample(t, probs=probs) for t in in_types])
        outs = out if isinstance(out, tuple) else (out,)
        types = inferred if isinstance(inferred, tuple) else (inferred,)
        assert [tuple(o.shape) for o in outs] == [torch_shape(t) for t in types]
        assert all(torch.isfinite(o).all() for o in outs)
    params = [p for p in module.parameters() if p.requires_grad]
    if params:
        sum(o.float().square().mean() for o in outs).backward()
        assert all(p.grad is not None for p in params), "a parameter got no gradient"
    module.eval()
    with torch.no_grad():
        out = module(*[sample(t) for t in in_types])
    first = out[0] if isinstance(out, tuple) else out
    assert tuple(first.shape) == torch_shape(inferred[0] if isinstance(inferred, tuple) else inferred)


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_op_is_documented_for_editors(name: str) -> None:
    cls = REGISTRY[name]
    assert cls.__doc__ and cls.__doc__.strip(), f"{name} has no docstring"
    for field_name, info in cls.model_fields.items():
        if field_name != "op":
            assert info.description, f"{name}.{field_name} has no description"
    schema = cls.model_json_schema()
    assert schema["additionalProperties"] is False


def test_checking_ops_does_not_import_torch() -> None:
    code = ("import sys, biggan_zoo.compiler.ops as o; from biggan_zoo.compiler.types import TensorType as T; "
            "o.REGISTRY['g_block'](out=4, inputs=['a','b']).infer([T.image(4,4,4), T.labels(3)]); "
            "print('torch' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


# --- spectral norm -------------------------------------------------------------------------

def test_biggan_sn_keys_estimate_and_write_back() -> None:
    from biggan_zoo.compiler.modules.spectral import make_conv

    settings = GraphSettings(sn_style="biggan", sn_iters=1)
    conv = make_conv(5, 7, 3, sn=True, settings=settings)
    assert set(conv.state_dict()) == {"weight", "bias", "u0", "sv0"}
    assert conv.u0.shape == (1, 7) and conv.sv0.shape == (1,)
    x = torch.randn(2, 5, 6, 6)
    u_before = conv.u0.clone()
    conv.eval()
    conv(x)
    assert torch.equal(conv.u0, u_before), "eval mode must not write u0 back"
    conv.train()
    for _ in range(200):
        conv(x)
    assert not torch.equal(conv.u0, u_before)
    sigma = torch.linalg.matrix_norm(conv.weight.detach().flatten(1), ord=2)
    assert conv.sv0.item() == pytest.approx(sigma.item(), rel=1e-4)
    # the normalised weight has spectral norm one, and its gradient flows through sv as well
    w = conv.normalised_weight()
    assert torch.linalg.matrix_norm(w.detach().flatten(1), ord=2).item() == pytest.approx(1.0, rel=1e-4)
    w.flatten(1)[0, 0].backward()
    naive = torch.zeros_like(conv.weight).flatten(1)
    naive[0, 0] = 1.0 / conv.sv0.item()
    assert not torch.allclose(conv.weight.grad.flatten(1), naive, atol=1e-6)


def test_sn_iterations_and_embedding_state() -> None:
    from biggan_zoo.compiler.modules.spectral import make_embedding

    torch.manual_seed(0)  # 30 power iterations converge for this draw; an unlucky one (close top values) may not
    settings = GraphSettings(sn_style="biggan", sn_iters=30)
    emb = make_embedding(6, 4, sn=True, settings=settings)
    assert emb.u0.shape == (1, 6), "an SN embedding's u0 has one entry per class"
    emb.train()
    emb(torch.tensor([0, 1]))
    sigma = torch.linalg.matrix_norm(emb.weight.detach(), ord=2)
    assert emb.sv0.item() == pytest.approx(sigma.item(), rel=1e-4)


def test_torch_style_sn_keys() -> None:
    from biggan_zoo.compiler.modules.spectral import make_embedding, make_linear

    settings = GraphSettings(sn_style="torch")
    assert set(make_linear(3, 4, sn=True, settings=settings).state_dict()) == {
        "weight_orig", "weight_u", "weight_v", "bias"}
    assert set(make_embedding(5, 4, sn=True, settings=settings).state_dict()) == {
        "weight_orig", "weight_u", "weight_v"}


@pytest.mark.parametrize("kind", ["linear", "conv", "embedding"])
def test_torch_style_sn_equals_torch_spectral_norm(kind: str) -> None:
    """Same start vectors, outputs, gradients and u/v updates as torch.nn.utils.spectral_norm, exactly."""
    from biggan_zoo.compiler.modules.spectral_torch import TorchSNConv2d, TorchSNEmbedding, TorchSNLinear

    make = {"linear": (lambda: torch.nn.Linear(6, 5), lambda: TorchSNLinear(6, 5, sn_iters=2, sn_eps=1e-4),
                       torch.randn(3, 6)),
            "conv": (lambda: torch.nn.Conv2d(3, 5, 3, padding=1),
                     lambda: TorchSNConv2d(3, 5, 3, padding=1, sn_iters=2, sn_eps=1e-4), torch.randn(2, 3, 4, 4)),
            "embedding": (lambda: torch.nn.Embedding(7, 4), lambda: TorchSNEmbedding(7, 4, sn_iters=2, sn_eps=1e-4),
                          torch.tensor([0, 3, 6]))}[kind]
    torch.manual_seed(0)
    theirs = torch.nn.utils.spectral_norm(make[0](), n_power_iterations=2, eps=1e-4)
    torch.manual_seed(0)
    ours = make[1]()
    assert theirs.state_dict().keys() == ours.state_dict().keys()
    assert all(torch.equal(v, ours.state_dict()[k]) for k, v in theirs.state_dict().items())
    for training in (True, True, False, True):
        theirs.train(training), ours.train(training)
        expected, got = theirs(make[2]), ours(make[2])
        expected.square().sum().backward()
        got.square().sum().backward()
        assert torch.equal(got, expected)
        assert torch.equal(ours.weight_orig.grad, theirs.weight_orig.grad)
        assert torch.equal(ours.weight_u, theirs.weight_u) and torch.equal(ours.weight_v, theirs.weight_v)


def test_class_probabilities_equal_labels_when_one_hot() -> None:
    """Every op consuming classes gives the same answer for labels and for their one-hot vectors."""
    torch.manual_seed(0)
    labels = torch.tensor([2, 0, 3])
    one_hot = torch.nn.functional.one_hot(labels, 4).float()
    feats = torch.randn(3, 6)
    image = torch.randn(3, 5, 4, 4)
    cases = [
        ("embedding", {"dim": 5, "num": 4, "sn": True}, [TensorType.labels(4)], []),
        ("projection_head", {}, [TensorType.vector(6), TensorType.labels(4)], [feats]),
        ("cond_batch_norm", {}, [TensorType.image(5, 4, 4), TensorType.labels(4)], [image]),
        ("g_block", {"out": 3}, [TensorType.image(5, 4, 4), TensorType.labels(4)], [image]),
    ]
    for name, fields, in_types, leading in cases:
        op = REGISTRY[name](**fields, inputs=[f"i{k}" for k in range(len(in_types))])
        module = op.build(in_types, GraphSettings()).eval()
        with torch.no_grad():
            assert torch.allclose(module(*leading, labels), module(*leading, one_hot), atol=1e-5), name


# --- BatchNorm ----------------------------------------------------------------------------

def test_batchnorm_state_and_standing_statistics() -> None:
    from biggan_zoo.compiler.modules.norm import BatchNorm

    bn = BatchNorm(3)
    assert set(bn.state_dict()) == {"gain", "bias", "stored_mean", "stored_var"}
    batches = [torch.randn(4, 3, 2, 2) * (i + 1) + i for i in range(5)]
    bn.train()
    bn.momentum = None  # the standing-statistics protocol: cumulative averages after a reset
    bn.reset_running_stats()
    for b in batches:
        bn(b)
    expected = torch.stack([b.mean(dim=(0, 2, 3)) for b in batches]).mean(0)
    assert torch.allclose(bn.stored_mean, expected, atol=1e-5)
    bn.momentum = 0.1
    bn.reset_running_stats()
    bn(batches[0])
    assert torch.allclose(bn.stored_mean, 0.1 * batches[0].mean(dim=(0, 2, 3)), atol=1e-6)


def _cross_replica_worker(rank: int, world: int, init_file: str, x: torch.Tensor,
                          results: dict) -> None:
    import torch.distributed as dist

    from biggan_zoo.compiler.modules.norm import BatchNorm

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    torch.manual_seed(0)
    bn = BatchNorm(3, cross_replica=True).train()
    part = x.chunk(world)[rank].clone().requires_grad_(True)
    out = bn(part)
    (out * torch.arange(out.numel()).view_as(out).float().chunk(1)[0]).sum().backward()
    results[rank] = (out.detach(), part.grad, bn.stored_mean.clone(), bn.stored_var.clone())
    dist.destroy_process_group()


def test_cross_replica_batchnorm_equals_one_big_batch(tmp_path) -> None:
    import torch.multiprocessing as mp

    from biggan_zoo.compiler.modules.norm import BatchNorm

    x = torch.randn(4, 3, 2, 2) * 3 + 1
    manager = mp.Manager()
    results = manager.dict()
    mp.spawn(_cross_replica_worker, args=(2, str(tmp_path / "init"), x, results), nprocs=2, join=True)
    full = BatchNorm(3).train()
    xs = x.clone().requires_grad_(True)
    out = full(xs)
    halves = out.chunk(2)
    weights = [torch.arange(h.numel()).view_as(h).float() for h in halves]
    sum((h * w).sum() for h, w in zip(halves, weights)).backward()
    for rank in range(2):
        r_out, r_grad, r_mean, r_var = results[rank]
        assert torch.allclose(r_out, halves[rank].detach(), atol=1e-5)
        assert torch.allclose(r_grad, xs.grad.chunk(2)[rank], atol=1e-4)
        assert torch.allclose(r_mean, full.stored_mean, atol=1e-5)
        assert torch.allclose(r_var, full.stored_var, atol=1e-5)


# --- block semantics ----------------------------------------------------------------------

def _zero_convs(module: nn.Module, names: tuple[str, ...]) -> None:
    """Silence the residual branch (only without SN: a zero weight has no spectral norm to divide by)."""
    with torch.no_grad():
        for name in names:
            conv = getattr(module, name)
            conv.weight.zero_()
            conv.bias.zero_()


def test_deep_g_block_skip_drops_channels_and_upsamples() -> None:
    op = REGISTRY["deep_g_block"](out=4, upsample=True, sn=False, inputs=["x", "c"])
    block = op.build([TensorType.image(8, 3, 3), TensorType.vector(5)], GraphSettings())
    _zero_convs(block, ("conv4",))
    x = torch.randn(2, 8, 3, 3)
    out = block(x, torch.randn(2, 5))
    assert torch.equal(out, torch.nn.functional.interpolate(x[:, :4], scale_factor=2))


def test_deep_d_block_skip_concatenates_new_channels() -> None:
    op = REGISTRY["deep_d_block"](out=12, sn=False, inputs=["x"])
    block = op.build([TensorType.image(4, 4, 4)], GraphSettings())
    _zero_convs(block, ("conv4",))
    x = torch.randn(2, 4, 4, 4)
    pooled = torch.nn.functional.avg_pool2d(x, 2)
    out = block(x)
    assert torch.allclose(out[:, :4], pooled) and torch.allclose(out[:, 4:], block.conv_sc(pooled))


def test_g_and_d_block_shortcut_rules() -> None:
    settings = GraphSettings()
    same = REGISTRY["d_block"](out=4, downsample=False, inputs=["x"]).build([TensorType.image(4, 4, 4)], settings)
    assert not hasattr(same, "conv_sc"), "no shortcut conv when neither width nor size changes"
    g = REGISTRY["g_block"](out=4, sn=False, inputs=["x", "y"]).build([TensorType.image(4, 2, 2), TensorType.labels(3)],
                                                            settings)
    assert hasattr(g, "conv_sc"), "an upsampling G block always has a shortcut conv"
    _zero_convs(g, ("conv2",))
    x = torch.randn(2, 4, 2, 2)
    assert torch.allclose(g(x, torch.tensor([0, 2])), g.conv_sc(torch.nn.functional.interpolate(x, scale_factor=2)))


# --- initialisation -----------------------------------------------------------------------

@pytest.mark.parametrize("style", ["biggan", "torch"])
def test_init_schemes(style: str) -> None:
    from biggan_zoo.compiler.modules.init import init_weights
    from biggan_zoo.compiler.modules.spectral import make_linear

    settings = GraphSettings(sn_style=style)
    lin = make_linear(64, 16, sn=True, settings=settings)
    bias_before = lin.bias.detach().clone()
    weight = lin.weight_orig if style == "torch" else lin.weight
    init_weights(lin, "orthogonal")
    assert torch.allclose(weight @ weight.t(), torch.eye(16), atol=1e-5)
    assert torch.equal(lin.bias, bias_before), "biases keep PyTorch's default init"
    big = make_linear(400, 400, sn=False, settings=settings)
    init_weights(big, "normal")
    assert big.weight.std().item() == pytest.approx(0.02, rel=0.05)
    init_weights(big, "xavier")
    assert big.weight.abs().max().item() <= (6 / 800) ** 0.5
    with pytest.raises(ValueError):
        init_weights(make_linear(2, 2, sn=False, settings=settings).to("meta"), "orthogonal")


@pytest.mark.parametrize("name, fields, in_types, message", [
    ("split", {"sizes": [17] * 7}, [TensorType.vector(120)], "add up to 119"),
    ("split", {"chunks": 7}, [TensorType.vector(120)], "does not split into 7 equal chunks"),
    ("deep_g_block", {"out": 16}, [TensorType.image(8, 4, 4), TensorType.vector(3)], "cannot widen"),
    ("deep_d_block", {"out": 4}, [TensorType.image(8, 4, 4)], "cannot narrow"),
    ("self_attention", {}, [TensorType.image(4, 8, 8)], "at least 8 channels"),
    ("g_block", {"out": 4}, [TensorType.image(4, 4, 4), TensorType.labels(3), TensorType.vector(2)],
     "either one classes input or vectors"),
    ("g_block", {"out": 4}, [TensorType.image(4, 4, 4)], "needs a condition"),
    ("embedding", {"dim": 4, "num": 10}, [TensorType.labels(1000)], "1000 classes"),
    ("reshape", {"shape": [4, 4, 4]}, [TensorType.vector(60)], "cannot reshape"),
    ("d_block", {"out": 4}, [TensorType.image(3, 5, 5)], "must be even"),
])
def test_shape_rules_refuse_with_the_shapes(name: str, fields: dict, in_types: list, message: str) -> None:
    """Conflicts are ShapeErrors naming the shapes; latent dimensions are never dropped silently."""
    from biggan_zoo.compiler.ops import ShapeError

    op = REGISTRY[name](**fields, inputs=[f"i{k}" for k in range(len(in_types))])
    with pytest.raises(ShapeError) as err:
        op.infer(in_types)
    assert message in err.value.message
