"""Top singular values (sigma_0) of the spectrally normalised layers of any module, and gradient norms.

The runtime knows nothing about how a model was built, so SN layers are recognised by the state they
keep, which is where their power iteration already left the estimate (reading it costs nothing):

- BigGAN-PyTorch style: a buffer ``sv0`` (the last estimate of sigma_0 of the raw weight);
- ``torch.nn.utils.spectral_norm`` style: buffers ``weight_u`` / ``weight_v`` next to a ``weight_orig``
  parameter: sigma_0 = u . (W v), one matrix-vector product;
- ``torch.nn.utils.parametrizations.spectral_norm``: a parametrisation holding ``_u`` / ``_v`` whose
  ``original`` is the raw weight: the same product.

sigma_0 is that of the raw (unnormalised) weight, as the BigGAN paper's section 4 plots it.
"""
from __future__ import annotations

import math
from typing import Iterable

import torch
from torch import nn


def _sigma_from_uv(weight: torch.Tensor, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    w_mat = weight.detach().flatten(1)
    return torch.dot(u.flatten().to(w_mat.dtype), torch.mv(w_mat, v.flatten().to(w_mat.dtype)))


def spectral_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """(name, module) of every layer of ``model`` that keeps a spectral-norm estimate, in module order."""
    found = []
    for name, module in model.named_modules():
        buffers = dict(module.named_buffers(recurse=False))
        params = dict(module.named_parameters(recurse=False))
        if "sv0" in buffers or ({"weight_u", "weight_v"} <= set(buffers) and "weight_orig" in params):
            found.append((name, module))
        parametrizations = getattr(module, "parametrizations", None)
        if parametrizations is not None:
            for tensor_name, plist in parametrizations.items():
                if any(hasattr(p, "_u") and hasattr(p, "_v") for p in plist):
                    found.append((f"{name}.{tensor_name}" if name else tensor_name, module))
    return found


@torch.no_grad()
def top_singular_values(model: nn.Module) -> dict[str, float]:
    """sigma_0 per spectrally normalised layer, keyed by the layer's module name ('block1.conv1')."""
    values: dict[str, torch.Tensor] = {}
    for name, module in model.named_modules():
        buffers = dict(module.named_buffers(recurse=False))
        if "sv0" in buffers:
            values[name] = buffers["sv0"].detach().flatten()[0].float()
        elif {"weight_u", "weight_v"} <= set(buffers) and isinstance(getattr(module, "weight_orig", None), torch.Tensor):
            values[name] = _sigma_from_uv(module.weight_orig, buffers["weight_u"], buffers["weight_v"]).float()
        parametrizations = getattr(module, "parametrizations", None)
        if parametrizations is not None:
            for tensor_name, plist in parametrizations.items():
                for parametrization in plist:
                    if hasattr(parametrization, "_u") and hasattr(parametrization, "_v"):
                        key = f"{name}.{tensor_name}" if name else tensor_name
                        values[key] = _sigma_from_uv(plist.original, parametrization._u, parametrization._v).float()
    if not values:
        return {}
    # one transfer for all layers (a GPU run would otherwise sync once per layer)
    numbers = torch.stack(list(values.values())).cpu().tolist()
    return dict(zip(values, numbers))


def spectra_record(graphs: dict[str, nn.Module]) -> dict[str, float]:
    """Metrics keys for each graph: ``sigma0/<graph>/<layer>`` and ``sigma0_max/<graph>``."""
    record: dict[str, float] = {}
    for graph, model in graphs.items():
        values = top_singular_values(model)
        record.update({f"sigma0/{graph}/{layer}": value for layer, value in values.items()})
        finite = [v for v in values.values() if math.isfinite(v)]
        if finite:
            record[f"sigma0_max/{graph}"] = max(finite)
    return record


@torch.no_grad()
def gradient_norm(parameters: Iterable[torch.Tensor], device: torch.device) -> torch.Tensor:
    """The L2 norm of all gradients together, as a 0-d tensor (no host sync); 0 when none has a gradient."""
    norms = [p.grad.detach().float().norm() for p in parameters if p.grad is not None]
    if not norms:
        return torch.zeros((), device=device)
    return torch.stack(norms).norm()
