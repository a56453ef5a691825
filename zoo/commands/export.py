"""`zoo export RUN_DIR --out model.safetensors`: a stand-alone zoo weights file from a training run.

The file embeds the resolved spec, so `zoo.build(spec, weights="model.safetensors")` (or
`zoo sample SPEC --weights model.safetensors`) loads it back. By default its G is the EMA generator.

`--hub DIR` writes a folder in the layout of a Hugging Face model repository instead (model.safetensors,
config.json = the resolved spec, README.md = the model card), from a run or from a zoo weights file;
`zoo.build(DIR)` loads it, and so does `zoo.build("hf://ORG/NAME")` once it is uploaded.
"""
from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="write a stand-alone weights file (spec embedded), or a hub folder, from a run")
    p.add_argument("run_dir", metavar="RUN_DIR", help="a `zoo train` run folder (with --hub also a zoo weights file)")
    p.add_argument("--weights", default=None, help="checkpoint folder (default: the run's latest)")
    p.add_argument("--out", default=None, help="output .safetensors file")
    p.add_argument("--hub", default=None, metavar="DIR", help="write model.safetensors, config.json and a "
                   "README.md model card into DIR (the layout of a Hugging Face model repository)")
    p.add_argument("--no-ema", dest="ema", action="store_false", help="export the raw G instead of the EMA G")
    card = p.add_argument_group("model card (with --hub)")
    card.add_argument("--dataset", default=None, help="what G was trained on (default: the spec's train.data)")
    card.add_argument("--truncation-mode", default=None, metavar="MODE",
                      help="the truncation mode to sample with (default: tfhub for TF-Hub ports, else resample)")
    card.add_argument("--eval", dest="eval_record", default=None, metavar="RECORD.json",
                      help="a `zoo eval --out` record: its scores and protocol go into the card")
    card.add_argument("--repo-id", default=None, metavar="ORG/NAME", help="the Hub repository, for the card's examples")


def run(args: argparse.Namespace) -> int:
    from biggan_zoo.cli import UsageError
    from biggan_zoo.generate import GeneratorSourceError, load_run_spec
    from biggan_zoo.runtime.checkpoint import latest_checkpoint, load_checkpoint
    from biggan_zoo.weights import save_weights

    if not args.out and not args.hub:
        raise UsageError("give --out FILE (a weights file) or --hub DIR (a hub folder), or both")
    if not args.hub and (args.dataset or args.truncation_mode or args.eval_record or args.repo_id):
        raise UsageError("--dataset, --truncation-mode, --eval and --repo-id describe a --hub folder's model card")
    card = _card_args(args) if args.hub else None
    source = Path(args.run_dir)
    if source.is_file():
        if not args.hub or args.out or args.weights:
            raise UsageError(f"'{source}' is a file: a weights file exports only to --hub DIR (without --out, --weights)")
        from biggan_zoo.weights import WeightsFile, spec_of_weights

        stored = WeightsFile(source)
        spec = spec_of_weights(stored)
        states, note = stored.graphs, stored.metadata.get("source") or f"zoo weights file {source.name}"
        classes = stored.classes
    else:
        spec = load_run_spec(source)
        ckpt = Path(args.weights) if args.weights else latest_checkpoint(source)
        if ckpt is None:
            raise GeneratorSourceError(f"'{source}' holds no checkpoint yet")
        checkpoint = load_checkpoint(ckpt, expected_spec=spec.data)
        g_group = "G_ema" if args.ema and "G_ema" in checkpoint.tensors else "G"
        states = {"G": checkpoint.tensors[g_group], "D": checkpoint.tensors["D"]}
        note = f"{g_group} and D of {ckpt} (step {checkpoint.step})"
        classes = _run_classes(checkpoint, source)
        if args.out:
            path = save_weights(states, spec, args.out, source=note, classes=classes)
            print(f"wrote {path}: G from {g_group}, D, spec {spec.name} (step {checkpoint.step})")
    if args.hub:
        from biggan_zoo.hub import write_folder

        paths = write_folder(Path(args.hub), states, spec, note, classes=classes, **card)
        print(f"wrote {', '.join(str(p) for p in paths)}: spec {spec.name}; load with zoo.build({str(args.hub)!r})")
    return 0


def _run_classes(checkpoint, run_dir: Path) -> list[str] | None:
    """The class names of a run: its checkpoint's, else its classes.json; None for runs from before names were kept."""
    from biggan_zoo.runtime.class_names import checked_names, read_class_names

    stored = checkpoint.state.get("classes")
    if stored is not None:
        return checked_names(stored, f"{checkpoint.path}/state.json: field 'classes'")
    return read_class_names(run_dir)


def _card_args(args: argparse.Namespace) -> dict:
    from biggan_zoo.cli import UsageError
    from biggan_zoo.hub import read_record
    from biggan_zoo.runtime.truncation import MODES

    if args.truncation_mode is not None and args.truncation_mode not in MODES:
        raise UsageError(f"--truncation-mode {args.truncation_mode!r} is not one of {', '.join(MODES)}")
    if args.repo_id is not None:
        from biggan_zoo.hub import HubError, parse_reference

        try:
            parse_reference(f"hf://{args.repo_id}")
        except HubError:
            raise UsageError(f"--repo-id {args.repo_id!r} is not ORG/NAME") from None
    record = read_record(args.eval_record) if args.eval_record else None
    return {"dataset": args.dataset, "truncation_mode": args.truncation_mode, "record": record,
            "repo_id": args.repo_id}
