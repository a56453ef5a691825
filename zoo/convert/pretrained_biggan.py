"""pytorch-pretrained-biggan model folders (`pytorch_model.bin` + `config.json`) for the
`biggan_deep*_tfhub` specs. The key layout comes from `maps/pretrained_biggan.yaml`; the folder's
config.json is compared with the config the spec implies, so a 256 model is not read into a 128 spec.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from biggan_zoo.compiler.api import LoadedSpec
from biggan_zoo.weights import WeightsError, write_atomically

WEIGHTS_NAME = "pytorch_model.bin"
CONFIG_NAME = "config.json"


def config_of_spec(spec: LoadedSpec) -> dict[str, Any]:
    """The package's BigGANConfig fields that G of `spec` corresponds to (as config.json writes them)."""
    graph = spec.graphs["G"]
    blocks = [n for n in graph.nodes if n.op.op in ("truncation_deep_g_block", "self_attention")]
    rgb = [n for n in graph.nodes if n.op.op == "conv2d"]
    embeddings = [n for n in graph.nodes if n.op.op == "embedding"]
    if not rgb or not embeddings or not blocks:
        raise WeightsError(f"spec {spec.name} is not laid out like pytorch-pretrained-biggan's BigGAN "
                           "(embedding, truncation_deep_g_block, conv2d); use a biggan_deep*_tfhub spec")
    ch = rgb[-1].in_types[0].channels
    layers, attention = [], -1
    for node in blocks:
        if node.op.op == "self_attention":
            attention = len(layers)
            continue
        layers.append([bool(node.op.upsample), node.in_types[0].channels // ch, node.op.out // ch])
    vector = next(t for t in graph.inputs.values() if t.kind == "vector")
    classes = next(t for t in graph.inputs.values() if t.kind == "classes")
    return {"output_dim": graph.output_types[0].shape[-1], "z_dim": vector.shape[0],
            "class_embed_dim": embeddings[0].op.dim, "channel_width": ch, "num_classes": classes.classes,
            "layers": layers, "attention_layer_position": attention, "eps": graph.settings.sn_eps,
            "n_stats": next(n.op.stats for n in blocks if n.op.op == "truncation_deep_g_block")}


def read_config(path: Path) -> dict[str, Any]:
    """A config.json as a JSON object, size-capped; WeightsError naming the file otherwise."""
    try:
        if path.stat().st_size > 1_000_000:
            raise WeightsError(f"{path}: larger than the 1000000 bytes a config.json holds")
        config = json.loads(path.read_bytes().decode("utf-8"))
    except OSError as e:
        raise WeightsError(f"{path}: cannot read it ({e.strerror or e})") from None
    except (ValueError, RecursionError) as e:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise WeightsError(f"{path}: not a JSON file ({str(e)[:120] or 'nested too deeply'})") from None
    if not isinstance(config, dict):
        raise WeightsError(f"{path}: must hold a JSON object of BigGANConfig fields")
    return config


def _same(key: str, got: Any, want: Any) -> bool:
    if isinstance(want, float) and isinstance(got, (int, float)) and not isinstance(got, bool):
        return abs(float(got) - want) <= 1e-12
    if key == "layers":
        return isinstance(got, list) and [list(x) if isinstance(x, list) else x for x in got] == want
    return got == want and type(got) is type(want)


def check_config(config: dict[str, Any], spec: LoadedSpec, source: Path) -> None:
    """WeightsError naming every config.json field that disagrees with the spec."""
    implied = config_of_spec(spec)
    wrong = []
    for key, want in implied.items():
        if key not in config:
            continue
        got = config[key]
        if not _same(key, got, want):
            wrong.append(f"{key}: {json.dumps(got)[:80]} in {source.name}, {json.dumps(want)} in spec {spec.name}")
    if wrong:
        raise WeightsError(f"{source} describes another model than spec {spec.name}; nothing converted:\n  "
                           + "\n  ".join(wrong))


def convert(source: Path, spec: LoadedSpec, graph: str | None = None,
            ema: bool = True) -> tuple[dict[str, dict[str, torch.Tensor]], list[str]]:
    """G's zoo state_dict from a pytorch-pretrained-biggan folder or weights file (it has no D)."""
    from biggan_zoo.convert import convert_state, read_state_dict

    if graph not in (None, "G"):
        raise WeightsError("pytorch-pretrained-biggan models hold a generator only (--graph G)")
    notes = []
    if source.is_dir():
        weights = source / WEIGHTS_NAME
        if not weights.is_file():
            raise WeightsError(f"{source}: no {WEIGHTS_NAME} (a pytorch-pretrained-biggan model folder holds "
                               f"{WEIGHTS_NAME} and {CONFIG_NAME})")
        config = source / CONFIG_NAME
        if config.is_file():
            check_config(read_config(config), spec, config)
            notes.append(f"{CONFIG_NAME} matches spec {spec.name}")
        else:
            notes.append(f"no {CONFIG_NAME} in {source}: checked tensor names and shapes only")
    else:
        weights = source
        notes.append("no config.json given: checked tensor names and shapes only")
    state = convert_state(read_state_dict(weights), "pretrained-biggan", spec, "G", str(weights))
    notes.insert(0, f"G <- {weights}")
    return {"G": state}, notes


def write_config(spec: LoadedSpec, folder: Path) -> Path:
    """Write the package's config.json for G of `spec` next to an exported pytorch_model.bin."""
    path = folder / CONFIG_NAME
    text = json.dumps(config_of_spec(spec), indent=2, sort_keys=True) + "\n"
    write_atomically(path, lambda tmp: tmp.write_text(text))
    return path
