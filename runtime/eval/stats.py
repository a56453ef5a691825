"""Streaming feature statistics and the reference-statistics file (`zoo stats` writes it, `zoo eval` reads it).

The file is an npz of plain arrays, read with `allow_pickle=False`:

    mu (D,) float64, sigma (D, D) float64, n ()       the statistics FID needs (TTUR / pytorch-fid layout)
    protocol ()  str                                  JSON: extractor, weights sha256, resize, resolution, ...
    features (M, D) float32                           a uniform random subset, for KID and precision/recall
    class_mu (C, D), class_sigma (C, D, D) float32,   per-class statistics, for intra-FID (optional)
    class_n (C,), class_names () str (JSON list)

A file with only `mu` and `sigma` (made by TTUR or pytorch-fid) is read too; its protocol is unknown.
"""
from __future__ import annotations

import json
import os
import stat
import struct
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .. import UserError
from ..resources import ResourceError, check_fits

FORMAT = "zoo-reference-stats/1"
_BROKEN = (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError, NotImplementedError, struct.error,
           zlib.error, KeyError, UnicodeDecodeError, OverflowError, SyntaxError, TypeError, IndexError)
"""What the zip and npy readers raise on a damaged file (numpy parses npy headers with ast.literal_eval)."""
PROTOCOL_KEYS = ("extractor", "sha256", "resize", "input_resolution", "quantisation")
"""Protocol fields that must agree between a reference file and the evaluation that uses it."""


class StatsFileError(UserError):
    """A reference-statistics file that cannot be used (malformed, pickled, or made another way)."""


class FeatureStats:
    """Mean and covariance of a stream of features in float64, plus a seeded uniform subset of the rows.

    Memory is D^2 float64 (32 MiB for D = 2048) plus `keep` rows, however many samples pass through. The
    covariance is accumulated around the first batch's mean (shifted sums), which keeps float64 exact
    enough when the mean is large against the spread.
    """

    def __init__(self, n_expected: int, dim: int = 2048, keep: int = 10_000, seed: int = 0,
                 device: str | torch.device = "cpu") -> None:
        self.dim, self.n = dim, 0
        self.shift: Tensor | None = None
        self.sum = torch.zeros(dim, dtype=torch.float64, device=device)
        self.sum_outer = torch.zeros(dim, dim, dtype=torch.float64, device=device)
        keep = max(0, min(keep, n_expected))
        chosen = torch.randperm(n_expected, generator=torch.Generator().manual_seed(seed))[:keep]
        self._keep_index = torch.sort(chosen).values
        self._kept: list[Tensor] = []

    def add(self, features: Tensor) -> None:
        """Add (N, D) features, in stream order."""
        x = features.detach().to(self.sum.device, torch.float64)
        if self.shift is None:
            self.shift = x.mean(dim=0)
        centred = x - self.shift
        self.sum += centred.sum(dim=0)
        self.sum_outer += centred.T @ centred
        lo, hi = torch.searchsorted(self._keep_index, torch.tensor([self.n, self.n + len(x)])).tolist()
        if hi > lo:
            self._kept.append(features[self._keep_index[lo:hi] - self.n].detach().float().cpu())
        self.n += len(x)

    @property
    def mu(self) -> np.ndarray:
        """The mean, float64."""
        return ((self.sum / self.n) + self.shift).cpu().numpy()

    @property
    def sigma(self) -> np.ndarray:
        """The unbiased covariance (divided by N - 1, as numpy.cov), float64."""
        mean = self.sum / self.n
        cov = (self.sum_outer - self.n * torch.outer(mean, mean)) / max(self.n - 1, 1)
        return cov.cpu().numpy()

    @property
    def features(self) -> Tensor:
        """The kept rows (float32, CPU), in stream order."""
        return torch.cat(self._kept) if self._kept else torch.empty(0, self.dim)


@dataclass
class Reference:
    """Reference statistics as read from a file."""

    mu: np.ndarray
    sigma: np.ndarray
    n: int
    protocol: dict[str, Any] | None
    features: Tensor | None = None
    class_mu: np.ndarray | None = None
    class_sigma: np.ndarray | None = None
    class_n: np.ndarray | None = None
    class_names: list[str] = field(default_factory=list)
    path: str = ""


def write_reference(path: str | os.PathLike[str], stats: FeatureStats, protocol: dict[str, Any],
                    per_class: list[FeatureStats] | None = None, class_names: list[str] | None = None) -> Path:
    """Write the npz atomically (a temporary file renamed into place): a failed write leaves no half file."""
    arrays: dict[str, Any] = {
        "format": np.array(FORMAT), "mu": stats.mu, "sigma": stats.sigma, "n": np.array(stats.n, np.int64),
        "protocol": np.array(json.dumps(protocol, sort_keys=True)), "features": stats.features.numpy(),
    }
    if per_class is not None:
        arrays["class_mu"] = np.stack([s.mu for s in per_class])
        arrays["class_sigma"] = np.stack([s.sigma.astype(np.float32) for s in per_class])
        arrays["class_n"] = np.array([s.n for s in per_class], np.int64)
        arrays["class_names"] = np.array(json.dumps(class_names or [str(i) for i in range(len(per_class))]))
    target = Path(path)
    if target.suffix != ".npz":
        raise StatsFileError(f"--out {target}: reference statistics are an .npz file; name it e.g. ref.npz")
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except OSError as error:
        tmp.unlink(missing_ok=True)
        raise StatsFileError(f"cannot write '{target}': {error.strerror or error}") from None
    return target


def _checked_members(path: Path) -> None:
    """A regular file that is a zip whose members, unpacked, fit in half the memory available."""
    try:
        info = os.stat(path)
    except OSError as error:
        raise StatsFileError(f"cannot read reference statistics '{path}': {error.strerror or error}") from None
    if not stat.S_ISREG(info.st_mode):
        raise StatsFileError(f"'{path}' is not a regular file; give the .npz written by `zoo stats`")
    try:
        with zipfile.ZipFile(path) as archive:
            unpacked = sum(member.file_size for member in archive.infolist())
    except _BROKEN as error:
        raise StatsFileError(f"'{path}' is not an npz file ({_short(error)}); make one with `zoo stats DATA --out "
                             "ref.npz`") from None
    try:
        check_fits(unpacked, f"reading '{path}'", "refused (a reference file is mu, sigma and a feature subset)",
                   share=0.5)
    except ResourceError as error:
        raise StatsFileError(str(error)) from None


def _short(error: BaseException) -> str:
    """One line of an exception's text, at most 120 characters (a damaged header can be long)."""
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= 120 else text[:117] + "..."


def _array(data: Any, key: str, path: Path, shape: tuple[int | None, ...], kind: str = "f") -> np.ndarray:
    if key not in data.files:
        raise StatsFileError(f"'{path}' has no '{key}' array (it has: {', '.join(data.files) or 'none'})")
    try:
        value = data[key]
    except ValueError as error:
        if "allow_pickle" in str(error):  # object arrays need pickle, which is never allowed
            raise StatsFileError(f"'{path}': '{key}' cannot be read without pickle; refused") from None
        raise StatsFileError(f"'{path}': '{key}' is corrupt ({_short(error)})") from None
    except _BROKEN as error:
        raise StatsFileError(f"'{path}': '{key}' is corrupt ({_short(error)})") from None
    if value.dtype.kind != kind and not (kind == "f" and value.dtype.kind in "iu"):
        raise StatsFileError(f"'{path}': '{key}' has dtype {value.dtype}, expected {'float' if kind == 'f' else kind}")
    if len(value.shape) != len(shape) or any(want is not None and got != want for got, want in zip(value.shape, shape)):
        want = "(" + ", ".join("?" if s is None else str(s) for s in shape) + ")"
        raise StatsFileError(f"'{path}': '{key}' has shape {tuple(value.shape)}, expected {want}")
    if kind == "f" and not np.isfinite(value).all():
        raise StatsFileError(f"'{path}': '{key}' holds NaN or infinite values")
    return value


def _json_string(data: Any, key: str, path: Path) -> Any:
    value = _array(data, key, path, (), kind="U")
    try:
        return json.loads(str(value))
    except (json.JSONDecodeError, RecursionError) as error:
        raise StatsFileError(f"'{path}': '{key}' is not valid JSON ({error})") from None


def read_reference(path: str | os.PathLike[str]) -> Reference:
    """Read and check a reference file (ours, or the mu/sigma layout of TTUR and pytorch-fid)."""
    path = Path(path)
    try:
        return _read(path)
    except _BROKEN as error:  # anything a damaged archive raises that the checks below did not name
        raise StatsFileError(f"'{path}' is a damaged npz file ({_short(error)})") from None


def _read(path: Path) -> Reference:
    _checked_members(path)
    try:
        data = np.load(path, allow_pickle=False)
    except _BROKEN as error:
        raise StatsFileError(f"cannot read '{path}' as npz: {_short(error)}") from None
    with data:
        mu = _array(data, "mu", path, (None,)).astype(np.float64)
        dim = len(mu)
        sigma = _array(data, "sigma", path, (dim, dim)).astype(np.float64)
        protocol = _json_string(data, "protocol", path) if "protocol" in data.files else None
        if protocol is not None and not isinstance(protocol, dict):
            raise StatsFileError(f"'{path}': 'protocol' is not a JSON object")
        n = int(_array(data, "n", path, (), kind="i")) if "n" in data.files else 0
        reference = Reference(mu=mu, sigma=sigma, n=n, protocol=protocol, path=str(path))
        if "features" in data.files:
            reference.features = torch.from_numpy(_array(data, "features", path, (None, dim)).astype(np.float32))
        if "class_mu" in data.files:
            reference.class_mu = _array(data, "class_mu", path, (None, dim)).astype(np.float64)
            classes = len(reference.class_mu)
            reference.class_sigma = _array(data, "class_sigma", path, (classes, dim, dim))
            reference.class_n = _array(data, "class_n", path, (classes,), kind="i")
            names = _json_string(data, "class_names", path) if "class_names" in data.files else None
            if names is not None and (not isinstance(names, list) or len(names) != classes):
                raise StatsFileError(f"'{path}': 'class_names' is not a list of {classes} names")
            reference.class_names = [str(x) for x in names] if names else [str(i) for i in range(classes)]
    return reference


def protocol_differences(reference: dict[str, Any] | None, ours: dict[str, Any]) -> list[str]:
    """Lines naming each protocol field that differs ('resize: file X, here Y'); empty when they agree."""
    if reference is None:
        return []
    return [f"{key}: the file has {reference.get(key)!r}, this evaluation {ours.get(key)!r}"
            for key in PROTOCOL_KEYS if reference.get(key) != ours.get(key)]
