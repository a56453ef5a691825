"""Models in the layout of a Hugging Face model repository: a local folder, or `hf://ORG/NAME[@REV]`.

    DIR/model.safetensors   a zoo weights file (its metadata holds the resolved spec and its hash)
    DIR/config.json         the resolved spec, as `zoo expand` prints it (what `zoo.build` compiles)
    DIR/README.md           the model card: dataset, truncation mode, evaluation protocol, how to load

`zoo export RUN_DIR --hub DIR` writes it; `zoo.build(DIR)` and `zoo.build("hf://ORG/NAME@REV")` read it.
`huggingface_hub` (the `hub` extra) is imported only for `hf://`; `HF_HUB_OFFLINE` and
`local_files_only` read the local cache without asking the network.
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from biggan_zoo.runtime import UserError

if TYPE_CHECKING:  # pragma: no cover
    from biggan_zoo.compiler.api import LoadedSpec
    from biggan_zoo.weights import WeightsFile

PREFIX = "hf://"
WEIGHTS = "model.safetensors"
CONFIG = "config.json"
CARD = "README.md"
MAX_CONFIG_BYTES = 4 * 2**20  # a resolved spec is tens of kilobytes
MAX_RECORD_BYTES = 4 * 2**20
INSTALL = "pip install 'biggan-zoo[hub]'"
_REPO_PART = r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9])?"
_REF = re.compile(rf"hf://({_REPO_PART})/({_REPO_PART})(?:@([^\s@]{{1,256}}))?")
_TRUE = {"1", "ON", "YES", "TRUE"}  # what huggingface_hub reads as true in HF_HUB_OFFLINE


class HubError(UserError):
    """An `hf://` reference or a hub folder that cannot be read, or a hub folder that cannot be written."""


def is_reference(source: Any) -> bool:
    """True for an `hf://...` string."""
    return isinstance(source, str) and source.startswith(PREFIX)


def is_folder(source: Any) -> bool:
    """True for a folder holding config.json and model.safetensors (a hub folder, not a run folder)."""
    if not isinstance(source, (str, Path)) or is_reference(source):
        return False
    folder = Path(source)
    return folder.is_dir() and (folder / CONFIG).is_file() and (folder / WEIGHTS).is_file()


def parse_reference(reference: str) -> tuple[str, str | None]:
    """`hf://ORG/NAME@REV` -> ("ORG/NAME", "REV"); the revision is None when not given."""
    found = _REF.fullmatch(reference)
    if found is None:
        raise HubError(f"'{reference}' is not a hub reference: write hf://ORG/NAME or hf://ORG/NAME@REVISION "
                       "(a branch, tag or commit)")
    org, name, revision = found.groups()
    return f"{org}/{name}", revision


def offline(local_files_only: bool = False) -> bool:
    """True when downloads must come from the local cache: `local_files_only`, or HF_HUB_OFFLINE set."""
    return local_files_only or os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in _TRUE


def download(reference: str, local_files_only: bool = False) -> Path:
    """The local snapshot folder of `hf://ORG/NAME[@REV]` (downloaded, or found in the cache)."""
    repo_id, revision = parse_reference(reference)
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        raise HubError(f"{reference}: loading from the Hugging Face Hub needs huggingface_hub: {INSTALL}") from None
    cache_only = offline(local_files_only)
    try:
        folder = snapshot_download(repo_id, revision=revision, allow_patterns=[WEIGHTS, CONFIG, CARD],
                                   local_files_only=cache_only, library_name="biggan-zoo")
    except Exception as e:  # noqa: BLE001 - the hub's and its HTTP clients' errors are reported; others raised
        if not isinstance(e, (OSError, ValueError)) and type(e).__module__.split(".")[0] not in (
                "huggingface_hub", "httpx", "httpcore", "requests", "urllib3"):
            raise
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:300]
        where = "in the local cache (offline: HF_HUB_OFFLINE or local_files_only)" if cache_only else "on the Hub"
        raise HubError(f"{reference}: cannot get {repo_id}" + (f"@{revision}" if revision else "")
                       + f" {where}: {type(e).__name__}: {first}") from None
    return Path(folder)


def read_folder(folder: Path, overrides: tuple[str, ...] = (), name: str | None = None
                ) -> tuple["LoadedSpec", "WeightsFile"]:
    """The spec of config.json and the weights of model.safetensors in a hub folder; HubError if missing."""
    from biggan_zoo.compiler.resolved import load_resolved_file
    from biggan_zoo.weights import WeightsFile, check_model_fits

    for file in (CONFIG, WEIGHTS):
        if not (folder / file).is_file():
            raise HubError(f"'{folder}' has no {file}: a hub folder holds {WEIGHTS}, {CONFIG} and {CARD} "
                           "(written by `zoo export RUN_DIR --hub DIR`)")
    size = (folder / CONFIG).stat().st_size
    if size > MAX_CONFIG_BYTES:
        raise HubError(f"'{folder / CONFIG}' is {size} bytes, more than the {MAX_CONFIG_BYTES} a resolved spec needs")
    stored = WeightsFile(folder / WEIGHTS)
    # config.json is resolved data (it may come from anyone's repository): read under the limits of a
    # spec file, never following `extends` nor evaluating `${...}` again
    spec = load_resolved_file(folder / CONFIG, name or stored.spec_name, overrides)
    check_model_fits(spec, folder)  # sized on the meta device: a model too large is refused, never allocated
    return spec, stored


def open_source(source: str | Path, overrides: tuple[str, ...] = (), local_files_only: bool = False
                ) -> tuple["LoadedSpec", "WeightsFile"]:
    """Spec and weights of a hub folder or an `hf://` reference."""
    if is_reference(source):
        return read_folder(download(str(source), local_files_only), overrides)
    return read_folder(Path(source), overrides)


# --- writing -------------------------------------------------------------------------------

def write_folder(folder: Path, states: Mapping[str, Mapping[str, Any]], spec: "LoadedSpec", source: str,
                 dataset: str | None = None, truncation_mode: str | None = None,
                 record: Mapping[str, Any] | None = None, repo_id: str | None = None,
                 classes: list[str] | None = None) -> list[Path]:
    """Write model.safetensors (with the class names, when known), config.json and README.md into `folder`;
    returns the three paths."""
    from biggan_zoo.weights import save_weights, write_atomically

    if folder.exists() and not folder.is_dir():
        raise HubError(f"--hub {folder}: is a file; give a folder (it is created if missing)")
    weights = save_weights(states, spec, folder / WEIGHTS, source=source, classes=classes)
    config = folder / CONFIG
    write_atomically(config, lambda tmp: tmp.write_text(json.dumps(spec.data, indent=2) + "\n", encoding="utf-8"))
    card = folder / CARD
    text = model_card(spec, source, dataset, truncation_mode, record, repo_id)
    write_atomically(card, lambda tmp: tmp.write_text(text, encoding="utf-8"))
    return [weights, config, card]


def read_record(path: str | Path) -> dict[str, Any]:
    """A `zoo eval --out` record (JSON object) for the model card; HubError if it is not one."""
    path = Path(path)
    if not path.is_file():
        raise HubError(f"--eval {path}: no such file (write one with `zoo eval ... --out FILE.json`)")
    if path.stat().st_size > MAX_RECORD_BYTES:
        raise HubError(f"--eval {path}: larger than {MAX_RECORD_BYTES} bytes; an evaluation record is a few kilobytes")
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise HubError(f"--eval {path}: not JSON ({e})") from None
    if not isinstance(record, dict):
        raise HubError(f"--eval {path}: a `zoo eval --out` record is a JSON object, this is a {type(record).__name__}")
    return record


def _flat(value: Any, prefix: str = "") -> list[tuple[str, Any]]:
    if isinstance(value, dict):
        return [item for key, sub in value.items() for item in _flat(sub, f"{prefix}.{key}" if prefix else str(key))]
    return [(prefix, value)]


def model_card(spec: "LoadedSpec", source: str, dataset: str | None = None, truncation_mode: str | None = None,
               record: Mapping[str, Any] | None = None, repo_id: str | None = None) -> str:
    """README.md of a hub folder: front matter for the Hub, then dataset, truncation, evaluation, usage."""
    from biggan_zoo.model import latent_dim, n_classes, takes_truncation
    from biggan_zoo.runtime.truncation import MODES

    takes = takes_truncation(spec)
    mode = truncation_mode or ("tfhub" if takes else "resample")
    dataset = dataset or spec.data.get("train", {}).get("data")
    resolution = spec.graphs["G"].output_types[0].shape[-1]
    front = ["---", "library_name: biggan-zoo", "tags:", "- biggan-zoo", "- gan", "- image-generation"]
    if dataset and re.fullmatch(r"[\w.-]+(/[\w.-]+)?", dataset):
        front += ["datasets:", f"- {json.dumps(dataset)}"]
    front.append("---")
    lines = [*front, "", f"# {spec.name}", "", " ".join(str(spec.data.get("description", "")).split()), "",
             f"A class-conditional generator at {resolution}x{resolution}: {n_classes(spec)} classes, "
             f"latent z of {latent_dim(spec)}. Weights: {source}. Spec sha256 `{spec.hash}`.", "",
             "## Dataset", "",
             (f"Trained on `{dataset}`." if dataset else
              "Not recorded: pass `zoo export --dataset NAME` to say what it was trained on."), "",
             "## Truncation", "",
             f"Mode `{mode}` ({MODES[mode]}), as `zoo sample` uses by default for this model."
             + (" G takes the truncation value as an input (it selects BatchNorm statistics); without one, "
                "`zoo sample` passes 1.0." if takes else ""), "",
             "## Evaluation protocol", ""]
    if record:
        protocol = record.get("protocol")
        if isinstance(protocol, dict):
            lines += [f"- {key}: {json.dumps(value)}" for key, value in _flat(protocol)] + [""]
        scores = {k: v for k, v in record.items() if k != "protocol"}
        lines += ["`zoo eval` record:", "", "```json", json.dumps(scores, indent=2), "```", ""]
    else:
        lines += ["No evaluation was recorded (`zoo export --eval RECORD.json` adds one). `zoo eval` measures "
                  "FID, IS, KID and precision/recall and writes its protocol next to every number.", ""]
    where = f"hf://{repo_id or 'ORG/NAME'}"
    lines += ["## Use", "", "```python", "import biggan_zoo as zoo", "",
              f'model = zoo.build("{where}")   # or a local copy of this folder; eval mode, ready to sample',
              f"images = model.sample([0, 1], per_class=4, truncation={1.0 if takes else 0.5}, "
              f'mode="{mode}")   # (8, 3, {resolution}, {resolution}) in [-1, 1]',
              "```", "", "```sh", "pip install 'biggan-zoo[hub]'",
              f"zoo sample {where} --classes 0,1 --n 4 --truncation-mode {mode} --out grid.png", "```", ""]
    return "\n".join(lines)
