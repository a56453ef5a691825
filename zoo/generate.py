"""Load a generator for sampling: from a spec and weights, or from a training run folder."""
from __future__ import annotations

from pathlib import Path

from biggan_zoo.compiler.api import LoadedSpec, load_spec
from biggan_zoo.runtime import UserError
from biggan_zoo.model import Model, build, takes_truncation


class GeneratorSourceError(UserError):
    """The spec, run folder or weights given to sample from do not fit together."""


def load_run_spec(run_dir: Path, overrides: tuple[str, ...] = ()) -> LoadedSpec:
    """The resolved spec a `zoo train` run saved, named after the run folder."""
    if not (run_dir / "spec.json").is_file():
        raise GeneratorSourceError(f"'{run_dir}' is a folder without spec.json: give a spec file or a run "
                                   "folder written by `zoo train`")
    from biggan_zoo.compiler.resolved import load_resolved_file
    from biggan_zoo.weights import check_model_fits

    # spec.json is resolved data: its `extends` is never followed nor its `${...}` evaluated again.
    # spec.json's stem says nothing; the run folder names the model.
    spec = load_resolved_file(run_dir / "spec.json", run_dir.name, overrides)
    check_model_fits(spec, run_dir)
    return spec


def load_for_sampling(target: str, weights: str | None, ema: bool, overrides: tuple[str, ...] = (),
                      device: str = "cpu") -> tuple[Model, str]:
    """A Model whose G holds the requested weights, and a note saying where they came from.

    `target` is a spec (path or catalog name), a run folder (it holds spec.json) or a zoo weights file
    (it holds its spec); `weights` is a zoo weights file, a checkpoint folder (checkpoints/step_N) or,
    for a run folder, defaults to its latest checkpoint. With `ema`, a checkpoint's EMA generator is
    used when it has one. A hub folder (`zoo export --hub`) or `hf://ORG/NAME[@REV]` holds its weights.
    """
    from biggan_zoo import hub
    from biggan_zoo.runtime.checkpoint import latest_checkpoint

    if hub.is_reference(target) or hub.is_folder(target):
        import warnings

        if weights is not None:
            raise GeneratorSourceError(f"'{target}' holds its own weights; --weights {weights} is a second source")
        with warnings.catch_warnings():  # a hub model without D (a released G) is all that sampling needs
            warnings.filterwarnings("ignore", message=".* holds no D weights")
            model = build(target, overrides=overrides)
        model.G.to(device).eval()
        return model, f"G of {'hub model' if hub.is_reference(target) else 'hub folder'} {target}"

    if Path(target).suffix == ".safetensors" and Path(target).is_file():
        import warnings

        from biggan_zoo.weights import WeightsFile, spec_of_weights

        if weights is not None:
            raise GeneratorSourceError(f"'{target}' holds its own weights; --weights {weights} is a second source")
        stored = WeightsFile(target)
        with warnings.catch_warnings():  # a file without D (a released G) is all that sampling needs
            warnings.filterwarnings("ignore", message=".* holds no D weights")
            model = build(spec_of_weights(stored, overrides), weights=stored)
        model.G.to(device).eval()
        return model, f"G of weights file {target}"
    run_dir = Path(target) if Path(target).is_dir() else None
    if run_dir is not None:
        spec = load_run_spec(run_dir, overrides)
    else:
        from biggan_zoo.weights import check_model_fits

        spec = load_spec(target, overrides)
        check_model_fits(spec)  # sized on the meta device: a model too large is refused, never allocated
    model = build(spec)
    if weights is None and run_dir is not None:
        latest = latest_checkpoint(run_dir)
        if latest is None:
            raise GeneratorSourceError(f"'{run_dir}' holds no checkpoint yet; train longer or pass --weights")
        weights = str(latest)
    if weights is None:
        raise GeneratorSourceError(f"no weights given for {model.spec.name}: pass --weights FILE "
                                   "(a zoo weights file or a checkpoint folder); random weights draw noise")
    note = _load(model, Path(weights), ema)
    if model.class_names is None and run_dir is not None:
        from biggan_zoo.runtime.class_names import read_class_names

        model.class_names = read_class_names(run_dir)  # runs keep them beside spec.json too
    model.G.to(device).eval()
    return model, note


def _load(model: Model, path: Path, ema: bool) -> str:
    if path.is_dir():
        from biggan_zoo.runtime.checkpoint import load_checkpoint
        from biggan_zoo.weights import state_problems

        checkpoint = load_checkpoint(path, expected_spec=None)
        group = "G_ema" if ema and "G_ema" in checkpoint.tensors else "G"
        tensors = checkpoint.tensors[group]
        problems = state_problems(model.G.state_dict(), tensors, f"{path} {group}")
        if problems:
            raise GeneratorSourceError(f"the checkpoint does not fit {model.spec.name}; nothing loaded:\n  "
                                       + "\n  ".join(problems))
        model.G.load_state_dict(tensors)
        if checkpoint.state.get("classes") is not None:  # absent in checkpoints written before names were kept
            from biggan_zoo.runtime.class_names import checked_names

            model.class_names = checked_names(checkpoint.state["classes"], f"{path}/state.json: field 'classes'")
        return f"{group} of checkpoint {path} (step {checkpoint.step})"
    from biggan_zoo.weights import load_weights

    load_weights(model, path)
    return f"G of weights file {path}"


def default_truncation_mode(model: Model) -> str:
    """tfhub for models that take the truncation value as an input (TF-Hub ports), else the paper's."""
    return "tfhub" if takes_truncation(model.spec) else "resample"
