"""`zoo.build(spec, weights=...)` is ready for inference: eval mode, the images `zoo sample` draws, and no
buffer (BatchNorm statistics, spectral-norm vectors) changed by a forward pass."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import biggan_zoo as zoo
from biggan_zoo.cli import main
from biggan_zoo.runtime.truncation import sample_latents
from biggan_zoo.weights import save_weights

DATA = Path(__file__).resolve().parent / "data"
SPECS = {"tiny": DATA / "tiny.yaml", "tiny_tfhub": DATA / "tiny_tfhub.yaml"}


def trained_weights(spec: Path, out: Path) -> Path:
    """Weights whose BatchNorm statistics and spectral-norm vectors are not their initial values."""
    model = zoo.build(spec, seed=3)
    assert model.G.training and model.D.training  # no weights: ready to train
    with torch.no_grad():
        for step in range(3):
            generator = torch.Generator().manual_seed(step)
            z = torch.randn(6, model.z_dim, generator=generator)
            y = torch.randint(model.n_classes, (6,), generator=generator)
            args = (z, y, 0.5) if spec.stem.endswith("tfhub") else (z, y)
            model.D(model.G(*args), y)
    return save_weights(model, None, out)


def buffers(model: zoo.Model) -> dict[str, torch.Tensor]:
    return {f"{graph}.{name}": value.clone() for graph, module in model.graphs.items()
            for name, value in module.named_buffers()}


@pytest.mark.parametrize("name", list(SPECS))
def test_built_with_weights_is_in_eval_mode_and_a_forward_changes_no_buffer(name: str, tmp_path: Path) -> None:
    weights = trained_weights(SPECS[name], tmp_path / "w.safetensors")
    model = zoo.build(SPECS[name], weights=weights)
    assert not any(m.training for module in model.graphs.values() for m in module.modules())
    before = buffers(model)
    assert before  # BatchNorm statistics and spectral-norm vectors exist to be checked
    z = torch.randn(4, model.z_dim)
    y = torch.tensor([0, 1, 2, 0])
    args = (z, y, 0.4) if name.endswith("tfhub") else (z, y)
    with torch.no_grad():
        first = model.G(*args)
        model.D(first, y)
        second = model.G(*args)
    after = buffers(model)
    changed = [key for key in before if not torch.equal(before[key], after[key])]
    assert changed == []
    assert torch.equal(first, second)


@pytest.mark.parametrize("name", list(SPECS))
def test_python_example_gives_the_images_of_zoo_sample(name: str, tmp_path: Path) -> None:
    weights = trained_weights(SPECS[name], tmp_path / "w.safetensors")
    classes, per_class, truncation, seed = [2, 0, 1], 2, 0.6, 11
    assert main(["sample", str(weights), "--classes", ",".join(map(str, classes)), "--n", str(per_class),
                 "--truncation", str(truncation), "--seed", str(seed), "--out", str(tmp_path / "grid.png"),
                 "--tensors", str(tmp_path / "t.safetensors")]) == 0
    from_cli = load_file(str(tmp_path / "t.safetensors"))["images_t0"]

    model = zoo.build(SPECS[name], weights=weights)
    assert torch.equal(model.sample(classes, per_class, truncation=truncation, seed=seed), from_cli)
    # the README's spelled-out form: latents of the mode zoo sample uses, labels repeated per class
    mode = "tfhub" if name.endswith("tfhub") else "resample"
    z = sample_latents(len(classes) * per_class, model.z_dim, mode, truncation, torch.Generator().manual_seed(seed))
    y = torch.tensor(classes).repeat_interleave(per_class)
    with torch.no_grad():
        images = model.G(z, y, truncation) if name.endswith("tfhub") else model.G(z, y)
    assert torch.equal(images, from_cli)


def test_sample_keeps_a_training_model_training(tmp_path: Path) -> None:
    model = zoo.build(SPECS["tiny"])
    before = buffers(model)
    model.sample([0, 1], per_class=2, truncation=0.5)
    assert model.G.training
    assert all(torch.equal(before[k], v) for k, v in buffers(model).items())
