"""pytorch-pretrained-biggan interop: its BigGAN-deep generators (random weights; the pretrained ones
cannot be downloaded here) convert into the `biggan_deep*_tfhub` specs and give the same images.

The models are big (~56M parameters), so each is built once, with batch 1-2 and few forwards.
"""
from __future__ import annotations

import contextlib
import io
import json
import math
from pathlib import Path

import pytest
import torch
from torch.nn.utils.spectral_norm import SpectralNorm

ppb = pytest.importorskip("pytorch_pretrained_biggan")

from biggan_zoo.compiler.api import compile_graph, load_spec  # noqa: E402
from biggan_zoo.compiler.modules.tfhub import TruncationBatchNorm  # noqa: E402
from biggan_zoo.compiler.ops.base import GraphSettings  # noqa: E402
from biggan_zoo.cli import main  # noqa: E402
from biggan_zoo.convert import convert_checkpoint, convert_state  # noqa: E402
from biggan_zoo.model import Model  # noqa: E402
from biggan_zoo.weights import WeightsError, load_weights  # noqa: E402

TOLERANCE = 1e-4
LAYERS_256 = [(False, 16, 16), (True, 16, 16), (False, 16, 16), (True, 16, 8), (False, 8, 8), (True, 8, 8),
              (False, 8, 8), (True, 8, 4), (False, 4, 4), (True, 4, 2), (False, 2, 2), (True, 2, 1)]
CONFIGS = {128: {}, 256: {"output_dim": 256, "layers": LAYERS_256},
           512: {"output_dim": 512, "layers": LAYERS_256 + [(False, 1, 1), (True, 1, 1)]}}
PUBLISHED_PARAMS = {128: 50_388_609, 256: 55_880_833, 512: 56_163_905}


def package_model(resolution: int, seed: int = 0) -> torch.nn.Module:
    """The package's BigGAN with random weights made usable: its final BN affine (left uninitialised by
    the package) set, every BN's 51 statistics rows and the attention gamma randomised so that the
    truncation and attention matter, and spectral norm's u/v iterated as train-mode forwards would."""
    torch.manual_seed(seed)
    model = ppb.BigGAN(ppb.BigGANConfig(**CONFIGS[resolution]))
    with torch.no_grad():
        model.generator.bn.weight.uniform_(0.5, 1.5)
        model.generator.bn.bias.normal_(0.0, 0.1)
        for name, buffer in model.named_buffers():
            if name.endswith("running_means"):
                buffer.normal_(0.0, 0.1)
            elif name.endswith("running_vars"):
                buffer.uniform_(0.5, 2.0)
        for module in model.modules():
            if hasattr(module, "gamma"):
                module.gamma.fill_(0.5)
            # a train-mode forward runs one power iteration per SN layer; do three without the convs
            for hook in module._forward_pre_hooks.values():
                if isinstance(hook, SpectralNorm):
                    for _ in range(3):
                        hook.compute_weight(module, do_power_iteration=True)
    return model.eval()


def inputs(batch: int, truncation: float, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """TF-Hub style latents (t * truncnorm(-2, 2), approximated by clamping) and one-hot class vectors."""
    gen = torch.Generator().manual_seed(seed)
    z = truncation * torch.randn(batch, 128, generator=gen).clamp(-2, 2)
    classes = torch.randint(0, 1000, (batch,), generator=gen)
    return z, torch.nn.functional.one_hot(classes, 1000).float()


@pytest.fixture(scope="module")
def package128() -> dict:
    """The 128 package model, its outputs at three truncations, and its files in a folder."""
    model = package_model(128)
    outputs = {}
    with torch.no_grad():
        for t in (0.4, 1.0, 0.14):
            outputs[t] = model(*inputs(2, t), t)
    return {"model": model, "outputs": outputs}


@pytest.fixture(scope="module")
def package128_folder(package128: dict, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A pytorch-pretrained-biggan model folder (pytorch_model.bin + config.json) of the 128 model."""
    folder = tmp_path_factory.mktemp("biggan-deep-128")
    torch.save(package128["model"].state_dict(), folder / "pytorch_model.bin")
    (folder / "config.json").write_text(package128["model"].config.to_json_string())
    return folder


@pytest.fixture(scope="module")
def converted128(package128_folder: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`zoo convert FOLDER --from pretrained-biggan` of the 128 model, once for the module."""
    out = tmp_path_factory.mktemp("converted") / "deep128.safetensors"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        code = main(["convert", str(package128_folder), "--from", "pretrained-biggan", "--spec",
                     "biggan_deep128_tfhub", "--out", str(out)])
    assert code == 0
    assert "config.json matches spec biggan_deep128_tfhub" in printed.getvalue()
    return out


def test_128_through_the_cli_matches_the_package(package128: dict, converted128: Path) -> None:
    # G only: building the spec's randomly initialised D (orthogonal init of 34M weights) would
    # dominate the test; zoo.build(spec, weights=...) is covered on smaller specs in test_weights.py
    spec = load_spec("biggan_deep128_tfhub")
    model = Model(spec, {"G": compile_graph(spec, "G", init=False)})
    load_weights(model, converted128)
    G = model.G.eval()
    assert sum(p.numel() for p in G.parameters()) == PUBLISHED_PARAMS[128]
    for t, expected in package128["outputs"].items():
        with torch.no_grad():
            got = G(*inputs(2, t), t)
        assert got.shape == (2, 3, 128, 128)
        assert torch.isfinite(got).all() and got.std() > 0.01
        assert (got - expected).abs().max().item() <= TOLERANCE, f"truncation {t}"


def test_embedding_first_spec_permutes_condition_columns(package128: dict) -> None:
    """A spec ordering the condition (embedding, z), as BigGAN-PyTorch does, gets the columns of gen_z
    and every BN projection (and their SN v vectors) permuted, and still gives the package's images."""
    spec = load_spec("biggan_deep128_tfhub", ["graphs.G.nodes.cond.inputs=[embeddings, z]"])
    state = convert_state(package128["model"].state_dict(), "pretrained-biggan", spec, "G", "package")
    G = compile_graph(spec, "G", init=False)
    G.load_state_dict(state)
    G.eval()
    theirs = package128["model"].generator.gen_z
    assert torch.equal(state["gen_z.weight_orig"][:, 128:], theirs.weight_orig[:, :128])  # z moved last
    assert torch.equal(state["gen_z.weight_v"][:128], theirs.weight_v[128:])  # embedding part first
    with torch.no_grad():
        got = G(*inputs(2, 0.4), 0.4)
    assert (got - package128["outputs"][0.4]).abs().max().item() <= TOLERANCE


@pytest.mark.parametrize("resolution,truncation", [(256, 0.4), (512, 0.94)])
def test_256_and_512_match_the_package(resolution: int, truncation: float) -> None:
    package = package_model(resolution)
    spec = load_spec(f"biggan_deep{resolution}_tfhub")
    state = convert_state(package.state_dict(), "pretrained-biggan", spec, "G", "package")
    G = compile_graph(spec, "G", init=False)
    G.load_state_dict(state)
    G.eval()
    assert sum(p.numel() for p in G.parameters()) == PUBLISHED_PARAMS[resolution]
    z, y = inputs(1, truncation)
    with torch.no_grad():
        expected = package(z, y, truncation)
        got = G(z, y, truncation)
    assert got.shape == (1, 3, resolution, resolution) and torch.isfinite(got).all()
    assert (got - expected).abs().max().item() <= TOLERANCE


@pytest.mark.parametrize("conditional", [False, True])
def test_statistics_rows_follow_the_package_arithmetic(conditional: bool) -> None:
    """Every truncation 0.01, 0.02, ..., 1.0 (and the round-off cases) picks exactly the package's rows."""
    torch.manual_seed(0)
    theirs = ppb.model.BigGANBatchNorm(6, condition_vector_dim=4 if conditional else None, eps=1e-4,
                                       conditional=conditional)
    settings = GraphSettings(sn_style="torch", sn_eps=1e-4, bn_eps=1e-4)
    ours = TruncationBatchNorm(6, 51, 1e-4, 4 if conditional else None, sn=True, settings=settings)
    with torch.no_grad():
        theirs.running_means.normal_()
        theirs.running_vars.uniform_(0.5, 2.0)
        if not conditional:
            theirs.weight.normal_()
            theirs.bias.normal_()
    ours.load_state_dict(theirs.state_dict())
    theirs.eval(), ours.eval()
    x, cond = torch.randn(2, 6, 3, 3), torch.randn(2, 4)
    for t in [k / 100 for k in range(1, 101)] + [0.14, 0.28, 0.56, 0.58, 0.94, 1 / 3]:
        args = (cond, t) if conditional else (t,)
        expected = theirs(x, t, cond) if conditional else theirs(x, t)
        assert torch.equal(ours(x, *args), expected), f"truncation {t}"
    # the round-off the facts describe: 0.14 / 0.02 = 7.000000000000001, so row 8 all but entirely
    assert math.modf(0.14 / 0.02)[1] == 7
    normalised = ours(x, *((cond, 0.14) if conditional else (0.14,)))
    ours.running_means[7] += 10.0  # row 7 barely counts
    assert (ours(x, *((cond, 0.14) if conditional else (0.14,))) - normalised).abs().max() < 1e-6


def test_truncation_outside_the_stored_range_is_refused() -> None:
    bn = TruncationBatchNorm(3, 51, 1e-4, None, sn=True, settings=GraphSettings(sn_style="torch"))
    for bad in (0.0, 1.5, -0.2):
        with pytest.raises(ValueError, match=r"truncation must be in \(0, 1\]"):
            bn(torch.randn(1, 3, 2, 2), bad)


def test_config_of_another_model_is_refused(package128_folder: Path) -> None:
    with pytest.raises(WeightsError) as info:
        convert_checkpoint(package128_folder, "pretrained-biggan", load_spec("biggan_deep256_tfhub"))
    message = str(info.value)
    assert "output_dim: 128 in config.json, 256 in spec biggan_deep256_tfhub" in message
    assert "layers:" in message


def test_missing_extra_and_misshaped_tensors_are_all_listed(package128: dict) -> None:
    state = dict(package128["model"].state_dict())
    del state["generator.layers.3.bn_0.running_means"]
    state["generator.extra.weight"] = torch.zeros(1)
    state["generator.conv_to_rgb.bias"] = torch.zeros(3)
    with pytest.raises(WeightsError) as info:
        convert_state(state, "pretrained-biggan", load_spec("biggan_deep128_tfhub"), "G", "pytorch_model.bin")
    message = str(info.value)
    assert "1 missing: generator.layers.3.bn_0.running_means (for block4.bn1.running_means)" in message
    assert "1 unexpected: generator.extra.weight" in message
    assert "generator.conv_to_rgb.bias has shape [3]; conv_to_rgb.bias needs [128]" in message


def test_export_back_to_the_package_format(package128: dict, converted128: Path, tmp_path: Path) -> None:
    """zoo weights -> --to pretrained-biggan gives the package's own state_dict and config back."""
    out = tmp_path / "exported"
    assert main(["convert", str(converted128), "--to", "pretrained-biggan", "--out", str(out)]) == 0
    exported = torch.load(out / "pytorch_model.bin", weights_only=True)
    original = package128["model"].state_dict()
    assert exported.keys() == original.keys()
    assert all(torch.equal(exported[k], original[k]) for k in original)
    config = json.loads((out / "config.json").read_text())
    assert config["layers"] == [list(layer) for layer in package128["model"].config.layers]
    assert config["attention_layer_position"] == 8 and config["output_dim"] == 128
