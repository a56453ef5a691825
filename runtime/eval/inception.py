"""The FID Inception-v3: the TensorFlow graph of 2015-12-05 (``classify_image_graph_def.pb``) in torch.

This is the network every published FID and Inception Score is measured with. It is not torchvision's
Inception-v3 (other weights, and the graph differs), so it is written here from the graph's structure:

- every convolution has no bias and is followed by a BatchNorm with eps 1e-3 and a ReLU; the graph's
  BatchNorm has no scale (NVIDIA's file has none, we use 1), the pytorch-fid file stores one, so it is
  kept as a tensor;
- every 3x3 average pool in a branch (``Mixed_5b``-``Mixed_7b``) divides by the number of *valid*
  inputs, not counting the zero padding (``count_include_pad=False``);
- the pool branch of the last block (``Mixed_7c``) is a 3x3 *max* pool, not an average pool;
- the features ("pool_3") are the 8x8 average of ``Mixed_7c``: 2048 values per image;
- the classifier has 1008 outputs (1000 ImageNet classes and 8 unused ones).

The module takes images already resized to 299x299 and normalised to ``(x - 128) / 128`` (see
``extractor.py``). Parameter names are those of the pytorch-fid / torch-fidelity weights file, which
keeps the TensorFlow block names (``Conv2d_1a_3x3``, ``Mixed_5b``, ...); each block class also lists
the names NVIDIA's TorchScript port uses for the same tensors (``NVIDIA_NAMES``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

FEATURE_DIM = 2048
NUM_CLASSES = 1008
INPUT_SIZE = 299
BATCH_NORM_EPS = 1e-3

__all__ = ["BATCH_NORM_EPS", "FEATURE_DIM", "INPUT_SIZE", "NUM_CLASSES", "FIDInceptionV3", "LayoutError",
           "match_layout", "nvidia_name_map"]


class ConvBN(nn.Module):
    """Convolution without bias, BatchNorm (eps 1e-3), ReLU: the unit every Inception tower is made of."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int | tuple[int, int],
                 stride: int = 1, padding: int | tuple[int, int] = 0) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel, stride=stride, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(out_channels, eps=BATCH_NORM_EPS)

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.bn(self.conv(x)))


def _avg_pool_3x3_valid(x: Tensor) -> Tensor:
    # TF's AvgPool with SAME padding averages only the inputs inside the image.
    return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)


def _max_pool_3x3_stride2(x: Tensor) -> Tensor:
    return F.max_pool2d(x, kernel_size=3, stride=2)


class InceptionA(nn.Module):
    """35x35 block (``Mixed_5b``-``Mixed_5d``): 1x1, 5x5, double 3x3 and pooled branches."""

    NVIDIA_NAMES = {
        "branch1x1": "conv", "branch5x5_1": "tower.conv", "branch5x5_2": "tower.conv_1",
        "branch3x3dbl_1": "tower_1.conv", "branch3x3dbl_2": "tower_1.conv_1",
        "branch3x3dbl_3": "tower_1.conv_2", "branch_pool": "tower_2.conv",
    }

    def __init__(self, in_channels: int, pool_channels: int) -> None:
        super().__init__()
        self.branch1x1 = ConvBN(in_channels, 64, 1)
        self.branch5x5_1 = ConvBN(in_channels, 48, 1)
        self.branch5x5_2 = ConvBN(48, 64, 5, padding=2)
        self.branch3x3dbl_1 = ConvBN(in_channels, 64, 1)
        self.branch3x3dbl_2 = ConvBN(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = ConvBN(96, 96, 3, padding=1)
        self.branch_pool = ConvBN(in_channels, pool_channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([
            self.branch1x1(x),
            self.branch5x5_2(self.branch5x5_1(x)),
            self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x))),
            self.branch_pool(_avg_pool_3x3_valid(x)),
        ], dim=1)


class ReductionB(nn.Module):
    """35x35 -> 17x17 (``Mixed_6a``): strided 3x3, strided double 3x3 and a max pool."""

    NVIDIA_NAMES = {
        "branch3x3": "conv", "branch3x3dbl_1": "tower.conv", "branch3x3dbl_2": "tower.conv_1",
        "branch3x3dbl_3": "tower.conv_2",
    }

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        self.branch3x3 = ConvBN(in_channels, 384, 3, stride=2)
        self.branch3x3dbl_1 = ConvBN(in_channels, 64, 1)
        self.branch3x3dbl_2 = ConvBN(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = ConvBN(96, 96, 3, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([
            self.branch3x3(x),
            self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x))),
            _max_pool_3x3_stride2(x),
        ], dim=1)


class InceptionC(nn.Module):
    """17x17 block (``Mixed_6b``-``Mixed_6e``): factorised 7x7 towers (1x7 then 7x1) of width ``mid``."""

    NVIDIA_NAMES = {
        "branch1x1": "conv",
        "branch7x7_1": "tower.conv", "branch7x7_2": "tower.conv_1", "branch7x7_3": "tower.conv_2",
        "branch7x7dbl_1": "tower_1.conv", "branch7x7dbl_2": "tower_1.conv_1",
        "branch7x7dbl_3": "tower_1.conv_2", "branch7x7dbl_4": "tower_1.conv_3",
        "branch7x7dbl_5": "tower_1.conv_4", "branch_pool": "tower_2.conv",
    }

    def __init__(self, mid: int, in_channels: int = 768) -> None:
        super().__init__()
        wide, tall = ((1, 7), (0, 3)), ((7, 1), (3, 0))
        self.branch1x1 = ConvBN(in_channels, 192, 1)
        self.branch7x7_1 = ConvBN(in_channels, mid, 1)
        self.branch7x7_2 = ConvBN(mid, mid, wide[0], padding=wide[1])
        self.branch7x7_3 = ConvBN(mid, 192, tall[0], padding=tall[1])
        self.branch7x7dbl_1 = ConvBN(in_channels, mid, 1)
        self.branch7x7dbl_2 = ConvBN(mid, mid, tall[0], padding=tall[1])
        self.branch7x7dbl_3 = ConvBN(mid, mid, wide[0], padding=wide[1])
        self.branch7x7dbl_4 = ConvBN(mid, mid, tall[0], padding=tall[1])
        self.branch7x7dbl_5 = ConvBN(mid, 192, wide[0], padding=wide[1])
        self.branch_pool = ConvBN(in_channels, 192, 1)

    def forward(self, x: Tensor) -> Tensor:
        tower = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        double = self.branch7x7dbl_1(x)
        for layer in (self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4, self.branch7x7dbl_5):
            double = layer(double)
        return torch.cat([self.branch1x1(x), tower, double, self.branch_pool(_avg_pool_3x3_valid(x))], dim=1)


class ReductionD(nn.Module):
    """17x17 -> 8x8 (``Mixed_7a``): strided 3x3, a 7x7 tower ending in a strided 3x3, a max pool."""

    NVIDIA_NAMES = {
        "branch3x3_1": "tower.conv", "branch3x3_2": "tower.conv_1",
        "branch7x7x3_1": "tower_1.conv", "branch7x7x3_2": "tower_1.conv_1",
        "branch7x7x3_3": "tower_1.conv_2", "branch7x7x3_4": "tower_1.conv_3",
    }

    def __init__(self, in_channels: int = 768) -> None:
        super().__init__()
        self.branch3x3_1 = ConvBN(in_channels, 192, 1)
        self.branch3x3_2 = ConvBN(192, 320, 3, stride=2)
        self.branch7x7x3_1 = ConvBN(in_channels, 192, 1)
        self.branch7x7x3_2 = ConvBN(192, 192, (1, 7), padding=(0, 3))
        self.branch7x7x3_3 = ConvBN(192, 192, (7, 1), padding=(3, 0))
        self.branch7x7x3_4 = ConvBN(192, 192, 3, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        tower = self.branch7x7x3_4(self.branch7x7x3_3(self.branch7x7x3_2(self.branch7x7x3_1(x))))
        return torch.cat([self.branch3x3_2(self.branch3x3_1(x)), tower, _max_pool_3x3_stride2(x)], dim=1)


class InceptionE(nn.Module):
    """8x8 block (``Mixed_7b``, ``Mixed_7c``): towers that fork into a 1x3 and a 3x1 convolution.

    ``max_pool`` selects the pool branch: ``Mixed_7b`` averages (padding not counted), ``Mixed_7c``
    takes the maximum - a quirk of the 2015 graph.
    """

    NVIDIA_NAMES = {
        "branch1x1": "conv",
        "branch3x3_1": "tower_conv", "branch3x3_2a": "tower_mixed_conv", "branch3x3_2b": "tower_mixed_conv_1",
        "branch3x3dbl_1": "tower_1_conv", "branch3x3dbl_2": "tower_1_conv_1",
        "branch3x3dbl_3a": "tower_1_mixed_conv", "branch3x3dbl_3b": "tower_1_mixed_conv_1",
        "branch_pool": "tower_2_conv",
    }

    def __init__(self, in_channels: int, max_pool: bool) -> None:
        super().__init__()
        self.max_pool = max_pool
        self.branch1x1 = ConvBN(in_channels, 320, 1)
        self.branch3x3_1 = ConvBN(in_channels, 384, 1)
        self.branch3x3_2a = ConvBN(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3_2b = ConvBN(384, 384, (3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = ConvBN(in_channels, 448, 1)
        self.branch3x3dbl_2 = ConvBN(448, 384, 3, padding=1)
        self.branch3x3dbl_3a = ConvBN(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = ConvBN(384, 384, (3, 1), padding=(1, 0))
        self.branch_pool = ConvBN(in_channels, 192, 1)

    def forward(self, x: Tensor) -> Tensor:
        tower = self.branch3x3_1(x)
        double = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        if self.max_pool:
            pooled = F.max_pool2d(x, kernel_size=3, stride=1, padding=1)
        else:
            pooled = _avg_pool_3x3_valid(x)
        return torch.cat([
            self.branch1x1(x),
            self.branch3x3_2a(tower), self.branch3x3_2b(tower),
            self.branch3x3dbl_3a(double), self.branch3x3dbl_3b(double),
            self.branch_pool(pooled),
        ], dim=1)


# Our block name -> the block's name in NVIDIA's port (under ``layers.``), in network order.
_NVIDIA_BLOCKS = {
    "Conv2d_1a_3x3": "conv", "Conv2d_2a_3x3": "conv_1", "Conv2d_2b_3x3": "conv_2",
    "Conv2d_3b_1x1": "conv_3", "Conv2d_4a_3x3": "conv_4",
    "Mixed_5b": "mixed", "Mixed_5c": "mixed_1", "Mixed_5d": "mixed_2", "Mixed_6a": "mixed_3",
    "Mixed_6b": "mixed_4", "Mixed_6c": "mixed_5", "Mixed_6d": "mixed_6", "Mixed_6e": "mixed_7",
    "Mixed_7a": "mixed_8", "Mixed_7b": "mixed_9", "Mixed_7c": "mixed_10",
}


class FIDInceptionV3(nn.Module):
    """The 2015-12-05 TF Inception-v3 on normalised 299x299 input; see the module docstring.

    ``with_logits=False`` builds it without the 1008-class layer (fid-helper's file has none).
    """

    def __init__(self, with_logits: bool = True) -> None:
        super().__init__()
        self.Conv2d_1a_3x3 = ConvBN(3, 32, 3, stride=2)
        self.Conv2d_2a_3x3 = ConvBN(32, 32, 3)
        self.Conv2d_2b_3x3 = ConvBN(32, 64, 3, padding=1)
        self.Conv2d_3b_1x1 = ConvBN(64, 80, 1)
        self.Conv2d_4a_3x3 = ConvBN(80, 192, 3)
        self.Mixed_5b = InceptionA(192, pool_channels=32)
        self.Mixed_5c = InceptionA(256, pool_channels=64)
        self.Mixed_5d = InceptionA(288, pool_channels=64)
        self.Mixed_6a = ReductionB(288)
        self.Mixed_6b = InceptionC(mid=128)
        self.Mixed_6c = InceptionC(mid=160)
        self.Mixed_6d = InceptionC(mid=160)
        self.Mixed_6e = InceptionC(mid=192)
        self.Mixed_7a = ReductionD()
        self.Mixed_7b = InceptionE(1280, max_pool=False)
        self.Mixed_7c = InceptionE(2048, max_pool=True)
        self.fc = nn.Linear(FEATURE_DIM, NUM_CLASSES) if with_logits else None

    @property
    def has_logits(self) -> bool:
        """Whether the 1008-class layer is present (Inception Score needs it)."""
        return self.fc is not None

    def features(self, x: Tensor) -> Tensor:
        """Pool features (N, 2048) of normalised (N, 3, 299, 299) input."""
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
        x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(_max_pool_3x3_stride2(x)))
        x = _max_pool_3x3_stride2(x)
        for block in (self.Mixed_5b, self.Mixed_5c, self.Mixed_5d, self.Mixed_6a, self.Mixed_6b, self.Mixed_6c,
                      self.Mixed_6d, self.Mixed_6e, self.Mixed_7a, self.Mixed_7b, self.Mixed_7c):
            x = block(x)
        # An average over the whole 8x8 map, as the graph's 8x8 AvgPool (and NVIDIA's port) computes it.
        return F.avg_pool2d(x, kernel_size=x.shape[2:]).flatten(1)

    def logits(self, features: Tensor) -> Tensor:
        """Class logits (N, 1008) without the layer's bias.

        The Inception Score code that every published IS comes from multiplies pool_3 by the softmax
        weights only (TF ``softmax/logits/MatMul``); NVIDIA's metrics (``no_output_bias=True``) and
        torch-fidelity (``logits_unbiased``) do the same. The bias is kept in the state_dict.
        """
        if self.fc is None:
            raise RuntimeError("this Inception was built without its 1008-class layer")
        return F.linear(features, self.fc.weight)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor | None]:
        """(pool features (N, 2048), unbiased logits (N, 1008) or None) of normalised 299x299 input."""
        features = self.features(x)
        return features, (self.logits(features) if self.fc is not None else None)


def nvidia_name_map(with_logits: bool) -> dict[str, str]:
    """Our state_dict key -> the key of the same tensor in NVIDIA's TorchScript (``layers.``, ``output.``).

    NVIDIA's BatchNorm has no scale tensor (``beta``, ``mean``, ``var`` only), so our ``bn.weight``
    keys are absent here; they are ones in the graph.
    """
    with torch.device("meta"):  # the structure only: no memory, no initialisation
        model = FIDInceptionV3(with_logits=with_logits)
    mapping: dict[str, str] = {}
    for block_name, block in model.named_children():
        if block_name == "fc":
            mapping.update({"fc.weight": "output.weight", "fc.bias": "output.bias"})
            continue
        theirs = f"layers.{_NVIDIA_BLOCKS[block_name]}"
        units = ({block_name: theirs} if isinstance(block, ConvBN) else
                 {f"{block_name}.{branch}": f"{theirs}.{name}" for branch, name in block.NVIDIA_NAMES.items()})
        for unit, name in units.items():
            mapping[f"{unit}.conv.weight"] = f"{name}.weight"
            mapping[f"{unit}.bn.bias"] = f"{name}.beta"
            mapping[f"{unit}.bn.running_mean"] = f"{name}.mean"
            mapping[f"{unit}.bn.running_var"] = f"{name}.var"
    return mapping


class LayoutError(ValueError):
    """The tensors of a file are not one of the known Inception layouts; the message says how."""


def _listed(names: list[str], limit: int = 3) -> str:
    shown = ", ".join(repr(name) for name in sorted(names)[:limit])
    return f"{len(names)} ({shown}{', ...' if len(names) > limit else ''})"


def match_layout(tensors: dict[str, Tensor]) -> tuple[dict[str, Tensor], str, bool]:
    """Rename a weights file's tensors to our state_dict keys.

    Returns (state_dict for ``FIDInceptionV3``, source, has_logits). Two naming schemes are known: ours,
    which is pytorch-fid's (source "pytorch-fid"), and NVIDIA's, optionally under ``net.`` as in
    fid-helper's wrapper (source "nvidia-torchscript" with its classifier, "fid-helper" without). The
    classifier (weight and bias) is optional in both; every other tensor must be there with its shape,
    holding finite floating-point values, and nothing else may be.
    """
    with torch.device("meta"):
        reference = FIDInceptionV3(with_logits=True).state_dict()
    counters = {key for key in reference if key.endswith(".num_batches_tracked")}
    scales = {key for key in reference if key.endswith(".bn.weight")}
    head = {"fc.weight", "fc.bias"}
    nvidia = nvidia_name_map(with_logits=True)

    if tensors and all(name.startswith("net.") for name in tensors):  # fid-helper's WrapNet
        tensors = {name[len("net."):]: value for name, value in tensors.items()}
    known_ours = len(tensors.keys() & reference.keys())
    known_nvidia = len(tensors.keys() & set(nvidia.values()))
    if known_ours == 0 and known_nvidia == 0:
        raise LayoutError(f"none of its tensors has a name of the pytorch-fid or NVIDIA Inception layout "
                          f"(it has {_listed(list(tensors))})")
    if known_ours >= known_nvidia:
        scheme, file_name = "pytorch-fid", {key: key for key in reference}
        optional = head | counters
        required = set(reference) - optional
    else:
        scheme, file_name = "NVIDIA", nvidia
        optional = head
        required = set(nvidia) - optional
    to_ours = {theirs: ours for ours, theirs in file_name.items()}
    unexpected = [name for name in tensors if to_ours.get(name) not in required | optional]
    if unexpected:
        raise LayoutError(f"{scheme} layout, but it has {_listed(unexpected)} unexpected tensors")
    present = {to_ours[name] for name in tensors}
    missing = required - present
    if present & head:
        missing |= head - present  # the classifier comes whole or not at all
    if missing:
        raise LayoutError(f"{scheme} layout, but {_listed([file_name[key] for key in missing])} tensors are missing")

    state: dict[str, Tensor] = {}
    for name, value in tensors.items():
        ours = to_ours[name]
        if ours in counters:
            continue
        expected = tuple(reference[ours].shape)
        if tuple(value.shape) != expected:
            raise LayoutError(f"tensor {name!r} has shape {tuple(value.shape)}, expected {expected}")
        if not value.is_floating_point():
            raise LayoutError(f"tensor {name!r} holds {value.dtype}, not floating-point numbers")
        if not bool(torch.isfinite(value).all()):
            raise LayoutError(f"tensor {name!r} holds NaN or infinite values")
        state[ours] = value.to(torch.float32)
    for key in scales - state.keys():  # NVIDIA's BatchNorms have no scale: it is 1 in the graph
        state[key] = torch.ones(reference[key].shape)
    for key in counters:
        state[key] = torch.zeros((), dtype=torch.long)
    has_logits = head <= present
    source = "pytorch-fid" if scheme == "pytorch-fid" else ("nvidia-torchscript" if has_logits else "fid-helper")
    return state, source, has_logits
