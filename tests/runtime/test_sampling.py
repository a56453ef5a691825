"""Class grids, interpolation, standing statistics, image files and the CLI argument parsers."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image
from torch import Tensor, nn

from biggan_zoo.runtime import images
from biggan_zoo.runtime.images import ImageWriteError, hstack_grids, make_grid, save_gif, save_grid, save_strip
from biggan_zoo.runtime.sampling import class_grid, interpolate, interpolate_latents, parse_classes, parse_sweep
from biggan_zoo.runtime.standing_stats import standing_stats

Z_DIM, N_CLASSES, SIDE = 8, 5, 4


class ToyGenerator(nn.Module):
    """Tiny conditional G taking int labels or float class-probability vectors, like BigGAN's."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.embed = nn.Parameter(torch.randn(N_CLASSES, 6))
        self.linear = nn.Linear(Z_DIM + 6, 3 * SIDE * SIDE)
        self.norm = nn.BatchNorm2d(3)
        self.calls: list[tuple[Tensor, Tensor, tuple]] = []

    def forward(self, z: Tensor, y: Tensor, *rest: object) -> Tensor:
        self.calls.append((z, y, rest))
        shared = y.float() @ self.embed if y.is_floating_point() else self.embed[y]
        hidden = self.linear(torch.cat([z, shared], 1)).view(-1, 3, SIDE, SIDE)
        return torch.tanh(self.norm(hidden))


class ClassColour(nn.Module):
    """G whose image is a flat grey level set by the class alone, to see rows in a grid."""

    def forward(self, z: Tensor, y: Tensor) -> Tensor:
        return (y.float() / N_CLASSES).view(-1, 1, 1, 1).expand(-1, 3, SIDE, SIDE) + 0 * z.sum()


# --- class_grid ----------------------------------------------------------------------------------

def test_class_grid_has_one_row_per_class_and_restores_training_flags() -> None:
    G = ToyGenerator()
    G.train()
    G.norm.eval()  # a deliberately mixed state must come back exactly
    before = G.norm.running_mean.clone()
    out = class_grid(G, [3, 1], per_class=4, z_dim=Z_DIM, mode="resample", truncation=0.5, seed=0)
    assert out.shape == (8, 3, SIDE, SIDE)
    assert G.training and not G.norm.training and G.linear.training
    assert torch.equal(G.norm.running_mean, before)  # eval mode: statistics untouched
    labels = torch.cat([call[1] for call in G.calls])
    assert labels.tolist() == [3] * 4 + [1] * 4 and labels.dtype == torch.int64
    latents = torch.cat([call[0] for call in G.calls])
    assert latents.abs().max() <= 0.5


def test_class_grid_rows_follow_classes() -> None:
    out = class_grid(ClassColour(), [4, 0, 2], per_class=3, z_dim=Z_DIM, mode="none", truncation=None,
                     seed=0)
    expected = torch.tensor([[4.0] * 3, [0.0] * 3, [2.0] * 3]) / N_CLASSES
    assert torch.equal(out.view(3, 3, -1)[:, :, 0], expected)


def test_class_grid_is_reproducible_and_independent_of_batch_size() -> None:
    G = ToyGenerator()
    first = class_grid(G, [0, 1, 2], per_class=5, z_dim=Z_DIM, mode="tfhub", truncation=0.4, seed=3,
                       batch=64)
    second = class_grid(G, [0, 1, 2], per_class=5, z_dim=Z_DIM, mode="tfhub", truncation=0.4, seed=3,
                        batch=4)
    assert len(G.calls) == 1 + 4  # 15 images in batches of 4
    torch.testing.assert_close(first, second)
    other = class_grid(G, [0, 1, 2], per_class=5, z_dim=Z_DIM, mode="tfhub", truncation=0.4, seed=4)
    assert not torch.allclose(first, other)


def test_class_grid_passes_truncation_one_hot_and_extra_inputs() -> None:
    G = ToyGenerator()
    class_grid(G, [2], per_class=2, z_dim=Z_DIM, mode="tfhub", truncation=0.4, seed=0,
               pass_truncation=True, one_hot_classes=N_CLASSES)
    z, y, rest = G.calls[-1]
    assert rest == (0.4,) and y.shape == (2, N_CLASSES) and y[:, 2].tolist() == [1.0, 1.0]

    seen = {}

    def with_extra(z: Tensor, y: Tensor, *, noise_scale: float) -> Tensor:
        seen["noise_scale"] = noise_scale
        return torch.zeros(len(z), 3, SIDE, SIDE)

    wrapper = nn.Module()
    wrapper.forward = with_extra  # type: ignore[method-assign]
    class_grid(wrapper, [0], per_class=1, z_dim=Z_DIM, mode="none", truncation=None, seed=0,
               extra_inputs={"noise_scale": 0.5})
    assert seen == {"noise_scale": 0.5}
    with pytest.raises(ValueError, match="pass_truncation"):
        class_grid(G, [0], 1, Z_DIM, "none", None, 0, pass_truncation=True)


# --- interpolation -------------------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["linear", "slerp"])
def test_interpolation_endpoints_are_the_generated_endpoints(mode: str) -> None:
    G = ToyGenerator().eval()
    z0, z1 = torch.randn(2, Z_DIM, generator=torch.Generator().manual_seed(1))
    frames = interpolate(G, z0, z1, 1, 4, steps=7, n_classes=N_CLASSES, mode=mode)
    assert frames.shape == (7, 3, SIDE, SIDE)
    y = G.calls[0][1]
    assert y.dtype == torch.float32 and y.shape == (7, N_CLASSES)
    torch.testing.assert_close(y.sum(1), torch.ones(7))
    with torch.no_grad():
        start = G(z0[None], torch.tensor([1]))
        end = G(z1[None], torch.tensor([4]))
    torch.testing.assert_close(frames[0], start[0], rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(frames[-1], end[0], rtol=1e-6, atol=1e-6)
    assert not torch.allclose(frames[3], start[0])


def test_slerp_keeps_the_norm_between_equal_norm_latents() -> None:
    z0 = torch.tensor([3.0, 0.0])
    z1 = torch.tensor([0.0, 3.0])
    path = interpolate_latents(z0, z1, 5, "slerp")
    torch.testing.assert_close(path.norm(dim=1), torch.full((5,), 3.0))
    assert torch.equal(path[0], z0) and torch.equal(path[-1], z1)
    assert interpolate_latents(z0, z1, 5, "linear")[2].norm() < 2.2  # the chord dips inside
    with pytest.raises(ValueError, match="interpolation mode"):
        interpolate_latents(z0, z1, 5, "cubic")


# --- standing statistics -------------------------------------------------------------------------

class BatchNormStack(nn.Module):
    """G of BatchNorm2d layers that records each layer's per-batch input statistics."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Linear(Z_DIM + N_CLASSES, 4 * 2 * 2)
        self.norms = nn.ModuleList([nn.BatchNorm2d(4, momentum=0.3), nn.BatchNorm2d(4)])
        self.seen: list[list[tuple[Tensor, Tensor]]] = [[], []]
        self.mode_of_stem: list[bool] = []
        for index, norm in enumerate(self.norms):
            norm.register_forward_pre_hook(self._recorder(index))

    def _recorder(self, index: int):
        def hook(module: nn.Module, inputs: tuple[Tensor]) -> None:
            x = inputs[0]
            self.seen[index].append((x.mean((0, 2, 3)), x.var((0, 2, 3), unbiased=True)))
        return hook

    def forward(self, z: Tensor, y: Tensor) -> Tensor:
        self.mode_of_stem.append(self.stem.training)
        h = self.stem(torch.cat([z, nn.functional.one_hot(y, N_CLASSES).float()], 1)).view(-1, 4, 2, 2)
        return self.norms[1](torch.relu(self.norms[0](h)))


def test_standing_stats_are_the_cumulative_average_of_batch_statistics() -> None:
    G = BatchNormStack()
    G.eval()
    G.norms[0].train()
    updated = standing_stats(G, n_samples=50, batch=16, z_dim=Z_DIM, n_classes=N_CLASSES,
                             mode="resample", truncation=0.5, seed=0)
    assert updated == 2
    for norm, seen in zip(G.norms, G.seen):
        assert len(seen) == 4  # ceil(50 / 16) full batches
        means = torch.stack([mean for mean, _ in seen]).mean(0)
        variances = torch.stack([var for _, var in seen]).mean(0)
        torch.testing.assert_close(norm.running_mean, means)
        torch.testing.assert_close(norm.running_var, variances)
        assert norm.num_batches_tracked.item() == 4
    assert [norm.momentum for norm in G.norms] == [0.3, 0.1]
    assert not G.training and G.norms[0].training and not G.norms[1].training
    assert G.mode_of_stem == [False] * 4  # only BN layers switch to train mode


def test_standing_stats_is_seeded_and_needs_batch_norm() -> None:
    first, second = BatchNormStack(), BatchNormStack()
    second.load_state_dict(first.state_dict())
    for G in (first, second):
        standing_stats(G, 32, 8, Z_DIM, N_CLASSES, "none", None, seed=5)
    assert torch.equal(first.norms[1].running_var, second.norms[1].running_var)
    with pytest.raises(ValueError, match="no submodule with reset_running_stats"):
        standing_stats(nn.Linear(2, 2), 8, 8, Z_DIM, N_CLASSES, "none", None, seed=0)


def test_standing_stats_restores_momentum_when_g_fails() -> None:
    G = BatchNormStack()
    with pytest.raises(RuntimeError):
        standing_stats(G, 8, 8, Z_DIM + 1, N_CLASSES, "none", None, seed=0)  # wrong z size
    assert [norm.momentum for norm in G.norms] == [0.3, 0.1] and G.training


# --- images --------------------------------------------------------------------------------------

def test_to_uint8_maps_the_tanh_range() -> None:
    values = torch.tensor([-2.0, -1.0, 0.0, 1.0, 3.0]).view(1, 1, 1, 5)
    assert images.to_uint8(values).flatten().tolist() == [0, 0, 128, 255, 255]


def test_save_grid_writes_a_png_of_the_right_size(tmp_path: Path) -> None:
    batch = torch.linspace(-1, 1, 5).view(5, 1, 1, 1).expand(5, 3, 8, 6)  # H=8, W=6
    grid = save_grid(batch, tmp_path / "grid.png", nrow=3, padding=2)
    with Image.open(tmp_path / "grid.png") as picture:
        assert picture.format == "PNG" and picture.mode == "RGB"
        assert picture.size == (3 * (6 + 2) + 2, 2 * (8 + 2) + 2)
        assert picture.getpixel((2 + 1, 12 + 1)) == (191, 191, 191)  # 4th tile (0.5): row 1, col 0
        assert picture.getpixel((10 + 1, 12 + 1)) == (255, 255, 255)  # 5th tile (1.0): row 1, col 1
        assert picture.getpixel((0, 0)) == (0, 0, 0)  # padding
    assert grid.shape == (3, 22, 26)


def test_hstack_grids_puts_sweeps_side_by_side(tmp_path: Path) -> None:
    tall = make_grid(torch.zeros(4, 3, 8, 8), nrow=2, padding=2)  # 22 x 22
    short = make_grid(torch.zeros(2, 3, 8, 8), nrow=2, padding=2)  # 12 x 22
    sweep = hstack_grids([tall, short, tall], gap=5)
    assert sweep.shape == (3, 22, 22 * 3 + 10)
    assert sweep[:, 15, 30].tolist() == [255] * 3  # below the short grid: background
    images.save_image(sweep, tmp_path / "sweep.png")
    with Image.open(tmp_path / "sweep.png") as picture:
        assert picture.size == (76, 22)
    with pytest.raises(ValueError, match="at least one grid"):
        hstack_grids([])


def test_strip_and_gif_are_readable(tmp_path: Path) -> None:
    frames = torch.linspace(-1, 1, 6).view(6, 1, 1, 1).expand(6, 3, 8, 10).contiguous()
    save_strip(frames, tmp_path / "strip.png")
    with Image.open(tmp_path / "strip.png") as picture:
        assert picture.size == (60, 8)
    save_gif(frames, tmp_path / "walk.gif", duration_ms=50)
    with Image.open(tmp_path / "walk.gif") as picture:
        assert picture.format == "GIF" and picture.size == (10, 8) and picture.n_frames == 6
        assert picture.info["duration"] == 50
        picture.seek(5)
        assert picture.convert("RGB").getpixel((0, 0)) == (255, 255, 255)


def test_unwritable_paths_raise_image_write_error(tmp_path: Path, monkeypatch) -> None:
    frames = torch.zeros(2, 3, 4, 4)
    missing = tmp_path / "no_such_dir" / "grid.png"
    with pytest.raises(ImageWriteError, match="no_such_dir.*does not exist"):
        save_grid(frames, missing, nrow=2)
    with pytest.raises(ImageWriteError, match="is a directory"):
        save_strip(frames, tmp_path)
    # Running as root makes chmod meaningless, so simulate the permission answer and Pillow's failure.
    with monkeypatch.context() as patch:
        patch.setattr(images.os, "access", lambda path, mode: False)
        with pytest.raises(ImageWriteError, match="not writable"):
            save_gif(frames, tmp_path / "a.gif")

    def refuse(*args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Image.Image, "save", refuse)
    with pytest.raises(ImageWriteError, match="grid.png.*Permission denied"):
        save_grid(frames, tmp_path / "grid.png", nrow=2)


# --- argument parsers ----------------------------------------------------------------------------

def test_parse_classes() -> None:
    assert parse_classes("1, 207,980", n_classes=1000) == [1, 207, 980]
    drawn = parse_classes("random", n_classes=1000, count=8, seed=3)
    assert len(set(drawn)) == 8 and all(0 <= c < 1000 for c in drawn)
    assert drawn == parse_classes("random", n_classes=1000, count=8, seed=3)
    with pytest.raises(ValueError, match=r"class index 1000 .* outside \[0, 1000\)"):
        parse_classes("1,1000", n_classes=1000)
    with pytest.raises(ValueError, match=r"class index -1"):
        parse_classes("-1", n_classes=1000)
    with pytest.raises(ValueError, match="'dog' is not an integer"):
        parse_classes("1,dog", n_classes=1000)
    with pytest.raises(ValueError, match="'' is not an integer"):
        parse_classes("1,,2", n_classes=1000)
    with pytest.raises(ValueError, match="cannot draw 11 distinct classes out of 10"):
        parse_classes("random", n_classes=10, count=11)


def test_parse_sweep() -> None:
    assert parse_sweep("0.2:1.0:0.2") == [0.2, 0.4, 0.6, 0.8, 1.0]
    assert parse_sweep("0.1:0.3:0.1") == [0.1, 0.2, 0.3]  # (0.3 - 0.1) / 0.1 = 1.9999999999999998
    assert parse_sweep("0.02:1:0.02")[-1] == 1.0 and len(parse_sweep("0.02:1:0.02")) == 50
    assert parse_sweep("0.5") == [0.5] and parse_sweep("0.3, 0.7") == [0.3, 0.7]
    for bad, reason in [("0.2:1.0", "three fields"), ("0.2:1:0", "step must be > 0"),
                        ("1:0.2:0.1", "below start"), ("a:1:0.1", "'a' is not a number"),
                        ("", "'' is not a number"), ("0:inf:1", "not finite"),
                        ("0:1:0.0000001", "more than the limit")]:
        with pytest.raises(ValueError, match=reason):
            parse_sweep(bad)


@given(start=st.integers(0, 200), count=st.integers(1, 60), step=st.integers(1, 50))
def test_parse_sweep_includes_the_end_for_decimal_grids(start: int, count: int, step: int) -> None:
    # Sweeps written in hundredths, e.g. "0.07:1.25:0.03", must give exactly count values.
    stop = start + (count - 1) * step
    values = parse_sweep(f"{start / 100}:{stop / 100}:{step / 100}")
    assert len(values) == count and values[-1] == stop / 100
