"""BigGAN-PyTorch checkpoints: a weights folder (`G.pth`, `G_ema.pth`, `D.pth`, any subset) or one
state_dict file for one graph. The key layout comes from `maps/biggan_pytorch.yaml`."""
from __future__ import annotations

from pathlib import Path

import torch

from biggan_zoo.compiler.api import LoadedSpec
from biggan_zoo.weights import WeightsError

# graph -> candidate files in preference order (with EMA preferred for G)
FILES = {"G": ("G_ema.pth", "G.pth"), "D": ("D.pth",)}


def graph_of_file(path: Path) -> str | None:
    """The graph a BigGAN-PyTorch file name stands for (G.pth, G_ema.pth -> G; D.pth -> D)."""
    stem = path.stem
    if stem in ("G", "G_ema"):
        return "G"
    if stem == "D":
        return "D"
    return None


def pick_files(folder: Path, ema: bool) -> tuple[dict[str, Path], list[str]]:
    """Which file feeds which graph in a weights folder, and notes saying what was found and used."""
    found = [name for name in ("G.pth", "G_ema.pth", "D.pth") if (folder / name).is_file()]
    if not found:
        raise WeightsError(f"{folder}: no G.pth, G_ema.pth or D.pth (a BigGAN-PyTorch weights folder holds "
                           "them); for another file name give the file and --graph")
    notes = [f"found {', '.join(found)} in {folder}"]
    chosen: dict[str, Path] = {}
    for graph, names in FILES.items():
        available = [n for n in (names if ema else tuple(reversed(names))) if n in found]
        if not available:
            notes.append(f"no {graph} weights (no {' or '.join(names)})")
            continue
        chosen[graph] = folder / available[0]
        unused = f" ({available[1]} unused; {'--no-ema' if ema else '--ema'} picks it)" if len(available) > 1 else ""
        notes.append(f"{graph} <- {available[0]}{unused}")
    return chosen, notes


def convert(source: Path, spec: LoadedSpec, graph: str | None = None,
            ema: bool = True) -> tuple[dict[str, dict[str, torch.Tensor]], list[str]]:
    """Zoo state_dicts by graph from a BigGAN-PyTorch folder or file; all graphs checked before returning."""
    from biggan_zoo.convert import convert_state, read_state_dict

    if source.is_dir():
        files, notes = pick_files(source, ema)
        if graph is not None:
            if graph not in files:
                raise WeightsError(f"{source}: no {graph} weights ({', '.join(FILES.get(graph, ()))})")
            files = {graph: files[graph]}
    else:
        graph = graph or graph_of_file(source)
        if graph is None:
            raise WeightsError(f"{source}: which graph is it? name it G.pth, G_ema.pth or D.pth, or pass --graph")
        files, notes = {graph: source}, [f"{graph} <- {source}"]
    states, problems = {}, []
    for name, path in files.items():
        if name not in spec.graphs:
            raise WeightsError(f"spec {spec.name} has no graph {name} for {path}")
        try:
            states[name] = convert_state(read_state_dict(path), "biggan-pytorch", spec, name, str(path))
        except WeightsError as e:
            problems.append(str(e))
    if problems:
        raise WeightsError("\n".join(problems))
    return states, notes
