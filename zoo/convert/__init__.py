"""Weight interop: foreign checkpoints -> zoo weights files, and zoo weights -> foreign state_dicts.

    from biggan_zoo.convert import convert_checkpoint, export_weights
    states, notes = convert_checkpoint("runs/biggan128/weights", "biggan-pytorch", spec)
    export_weights("biggan128.safetensors", "biggan-pytorch", "out_folder")

Formats: `biggan-pytorch` (ajbrock/BigGAN-PyTorch G.pth / G_ema.pth / D.pth) and `pretrained-biggan`
(pytorch-pretrained-biggan's pytorch_model.bin + config.json). Name mappings live in `maps/*.yaml`.
"""
from __future__ import annotations

import pickle
import re
from pathlib import Path
import torch

from biggan_zoo.compiler.api import LoadedSpec
from biggan_zoo.convert.layout import export_state, import_state, key_table, load_map
from biggan_zoo.weights import WeightsError, WeightsFile, spec_of_weights, write_atomically

FORMATS = ("biggan-pytorch", "pretrained-biggan")
TORCH_SUFFIXES = (".pth", ".pt", ".bin", ".ckpt")


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """A flat {key: tensor} from a safetensors file or a torch pickle read with weights_only=True.

    A pickle that needs code to load (a pickled module or custom class) is refused: running it could
    execute anything.
    """
    from biggan_zoo.runtime.resources import check_fits
    from biggan_zoo.weights import read_safetensors

    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{path}: {'is not a regular file' if path.exists() else 'no such file'}")
    check_fits(path.stat().st_size, f"{path}", "convert it on a machine with more memory", share=0.9)
    if path.suffix == ".safetensors":
        return read_safetensors(path)[1]
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        found = re.search(r"Unsupported global: GLOBAL (\S+)", str(e))
        if found is None:  # a broken or foreign file rather than a pickled class
            detail = re.search(r"WeightsUnpickler error:\s*(.+)", str(e))
            raise WeightsError(f"{path}: not a torch checkpoint (torch.load with weights_only=True: "
                               f"{detail.group(1).strip() if detail else type(e).__name__})") from None
        raise WeightsError(f"{path}: refused: this pickle needs code to load ({found.group(1)}), and only "
                           "plain state_dicts of tensors are read (torch.load with weights_only=True). "
                           "Re-save it with torch.save(model.state_dict(), path) where it was made.") from None
    except (RuntimeError, EOFError, OSError, ValueError) as e:
        raise WeightsError(f"{path}: not a torch checkpoint ({str(e).splitlines()[0]})") from None
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        kind = type(obj).__name__
        keys = ", ".join(list(obj)[:5]) if isinstance(obj, dict) else ""
        raise WeightsError(f"{path}: holds a {kind} that is not a state_dict of tensors"
                           + (f" (keys {keys} ...)" if keys else "")
                           + "; BigGAN-PyTorch's G.pth/D.pth/G_ema.pth and pytorch_model.bin are")
    return {str(k): v for k, v in obj.items()}


def convert_state(foreign: dict[str, torch.Tensor], format_name: str, spec: LoadedSpec, graph: str,
                  source: str) -> dict[str, torch.Tensor]:
    """One graph's zoo state_dict from a foreign state_dict; lists every mismatch, converts nothing on one."""
    if graph not in spec.graphs:
        raise WeightsError(f"spec {spec.name} has no graph {graph} (it has {', '.join(spec.graphs)})")
    return import_state(key_table(spec, graph, load_map(format_name)), foreign, source)


def convert_checkpoint(source: str | Path, format_name: str, spec: LoadedSpec, graph: str | None = None,
                       ema: bool = True) -> tuple[dict[str, dict[str, torch.Tensor]], list[str]]:
    """Zoo state_dicts by graph from a foreign checkpoint (folder or file), and notes on what was used."""
    if format_name == "biggan-pytorch":
        from biggan_zoo.convert.biggan_pytorch import convert
    elif format_name == "pretrained-biggan":
        from biggan_zoo.convert.pretrained_biggan import convert  # type: ignore[no-redef]
    else:
        raise WeightsError(f"unknown format {format_name!r}; known: {', '.join(FORMATS)}")
    if not Path(source).exists():
        raise WeightsError(f"{source}: no such file or folder")
    return convert(Path(source), spec, graph=graph, ema=ema)


def export_weights(path: str | Path, format_name: str, out: str | Path, graph: str | None = None) -> list[Path]:
    """Write a zoo weights file's graphs as foreign state_dicts: `out` is a file for one graph, or a
    folder receiving `<graph>.pth` (biggan-pytorch) / `pytorch_model.bin` (pretrained-biggan)."""
    mapping = load_map(format_name)
    weights = WeightsFile(path)
    spec = spec_of_weights(weights)
    graphs = [graph] if graph else [g for g in weights.graphs if g in mapping["graphs"]]
    for name in graphs:
        if name not in weights.graphs:
            raise WeightsError(f"{path} holds no {name} weights (it has {', '.join(weights.graphs)})")
    if not graphs:
        raise WeightsError(f"{path} holds none of the graphs the {format_name} format has")
    out = Path(out)
    single_file = out.suffix in TORCH_SUFFIXES
    if single_file and len(graphs) > 1:
        raise WeightsError(f"{path} holds {', '.join(graphs)}: give a folder as --out, or pick one with --graph")
    states = {}
    for name in graphs:  # every graph converted before anything is written
        table = key_table(spec, name, mapping)
        missing = [e.zoo for e in table.entries if e.zoo not in weights.graphs[name]]
        if missing:
            raise WeightsError(f"{path}: graph {name} lacks {len(missing)} tensors of its spec: {', '.join(missing[:8])}")
        states[name] = export_state(table, weights.graphs[name])
    if out.exists() and not out.is_dir() and not single_file:
        raise WeightsError(f"--out '{out}' is a file; give a folder (or a file ending in .pth/.bin with --graph)")
    written = []
    for name, state in states.items():
        target = out if single_file else out / _file_name(format_name, name)
        write_atomically(target, lambda tmp, state=state: torch.save(state, tmp))
        written.append(target)
    if format_name == "pretrained-biggan" and not single_file:
        from biggan_zoo.convert.pretrained_biggan import write_config

        written.append(write_config(spec, out))
    return written


def _file_name(format_name: str, graph: str) -> str:
    return "pytorch_model.bin" if format_name == "pretrained-biggan" else f"{graph}.pth"


__all__ = ["FORMATS", "convert_checkpoint", "convert_state", "export_weights", "read_state_dict",
           "spec_of_weights"]

