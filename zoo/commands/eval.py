"""`zoo eval RUN_DIR|WEIGHTS --ref ref.npz`: FID, IS, KID, precision/recall (and intra-FID) with their protocol.

    zoo stats /data/imagenet/train --resolution 128 --out imagenet128.npz
    zoo eval runs/b128 --ref imagenet128.npz --n 50000
    zoo eval b128.safetensors --ref imagenet128.npz --sweep 0.2:1.0:0.1 --out sweep.json
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

from biggan_zoo.commands.sample import add_sampling_args
from biggan_zoo.commands.stats import add_inception_args, check_inception_args

MAX_N = 10_000_000


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="FID, IS, KID, precision/recall of a generator against zoo stats output")
    add_sampling_args(p)
    p.add_argument("--ref", required=True, metavar="REF.npz", help="reference statistics (`zoo stats`, or a "
                   "TTUR / pytorch-fid npz with mu and sigma)")
    p.add_argument("--n", type=int, default=50_000, help="samples to draw (default 50000, as published FIDs)")
    p.add_argument("--per-class", action="store_true", help="also intra-FID (needs `zoo stats --per-class`)")
    p.add_argument("--per-class-n", type=int, default=None, metavar="K",
                   help="samples per class for intra-FID (default: n / classes)")
    p.add_argument("--sweep", default=None, metavar="START:STOP:STEP",
                   help="evaluate at each truncation value: the IS-vs-FID trade-off (JSON table and PNG plot)")
    p.add_argument("--no-kid", action="store_true", help="skip KID")
    p.add_argument("--no-pr", action="store_true", help="skip precision/recall")
    p.add_argument("--json", action="store_true", help="print the record as JSON instead of a table")
    p.add_argument("--out", default=None, metavar="FILE.json", help="also write the record here")
    p.add_argument("--plot", default=None, metavar="FILE.png", help="with --sweep: the plot (default: next to --out)")
    add_inception_args(p, device=False)


def _check_flags(args: argparse.Namespace) -> None:
    from biggan_zoo.cli import UsageError

    check_inception_args(args)
    if not 2 <= args.n <= MAX_N:
        raise UsageError(f"--n must be in [2, {MAX_N}], got {args.n}")
    if args.per_class_n is not None and not 2 <= args.per_class_n <= MAX_N:
        raise UsageError(f"--per-class-n must be in [2, {MAX_N}], got {args.per_class_n}")
    if args.plot and not args.sweep:
        raise UsageError("--plot draws the truncation sweep: give --sweep START:STOP:STEP")
    if args.sweep and args.truncation is not None:
        raise UsageError("--sweep gives the truncation values; drop --truncation")


def run(args: argparse.Namespace) -> int:
    import torch

    from biggan_zoo.cli import UsageError
    from biggan_zoo.commands.sample import prepare
    from biggan_zoo.model import takes_truncation
    from biggan_zoo.runtime.eval.evaluate import Sampling, generated_features, intra_fid, scores_against
    from biggan_zoo.runtime.eval.extractor import load_extractor
    from biggan_zoo.runtime.eval.stats import StatsFileError, protocol_differences, read_reference
    from biggan_zoo.runtime.sampling import parse_sweep
    from biggan_zoo.runtime.truncation import check_truncation

    _check_flags(args)
    reference = read_reference(args.ref)  # the cheap checks first: a wrong file fails before any model loads
    try:
        values = parse_sweep(args.sweep) if args.sweep else None
    except ValueError as e:
        raise UsageError(str(e)) from None
    model, mode = prepare(args)
    extractor = load_extractor(args.inception, args.device, allow_download=args.download, batch_size=args.batch)
    ours = extractor.protocol(model.resolution)
    differences = protocol_differences(reference.protocol, ours)
    if differences:
        raise StatsFileError(f"{args.ref} was made another way than this evaluation; its numbers would not be "
                             "comparable:\n  " + "\n  ".join(differences)
                             + "\n  hint: remake it with `zoo stats DATA --resolution "
                               f"{model.resolution}` and the same --inception file")
    if reference.protocol is None:
        import warnings

        warnings.warn(f"{args.ref} records no protocol (a TTUR / pytorch-fid file): it is assumed to hold TF Inception "
                      f"pool_3 statistics of {model.resolution}px images; nothing checks that", UserWarning)
    values = values or [args.truncation]
    for t in values:
        check_truncation(mode, t)
    per_class_n = args.per_class_n or max(2, args.n // max(model.n_classes, 1))
    rows = []
    started = time.perf_counter()
    base = Sampling(model.z_dim, model.n_classes, mode, None, takes_truncation(model.spec), args.seed,
                    min(args.batch, args.n))
    for t in values:
        sampling = dataclasses.replace(base, truncation=t)
        t0 = time.perf_counter()
        stats, score = generated_features(model.G, args.n, sampling, extractor, keep=args.keep,
                                          progress=not args.no_bar, label=f"t={t}")
        scores = scores_against(reference, stats, score, kid=not args.no_kid, pr=not args.no_pr, seed=args.seed)
        if args.per_class:
            try:
                scores.intra_fid, scores.class_fids = intra_fid(model.G, reference, sampling, extractor, per_class_n,
                                                                progress=not args.no_bar)
            except ValueError as e:
                raise StatsFileError(str(e)) from None
        rows.append({"truncation": t} | scores.as_dict() | {"seconds": round(time.perf_counter() - t0, 2)})
    record = {
        "model": model.spec.name,
        "protocol": ours | {"samples": args.n, "per_class_samples": per_class_n if args.per_class else None,
                            "kid": "polynomial kernel (x.y/d + 1)^3, 100 subsets of up to 1000" if not args.no_kid else None,
                            "precision_recall": "k = 3 nearest neighbours, Inception pool_3 features" if not args.no_pr else None,
                            "features_kept": args.keep, "is_splits": 10,
                            "standing_stats": args.standing_stats or None, "ema": args.ema,
                            "hardware": _hardware(args.device), "torch": torch.__version__}
                     | base.describe(),
        "reference": {"path": str(args.ref), "n": reference.n, "protocol": reference.protocol},
        "results": rows, "wall_seconds": round(time.perf_counter() - started, 2),
    }
    text = json.dumps(record, indent=2)
    if args.out:
        _write_text(Path(args.out), text + "\n")
    if args.sweep:
        plot = args.plot or (str(Path(args.out).with_suffix(".png")) if args.out else "eval_sweep.png")
        _plot_sweep(rows, plot, model.spec.name, mode)
    print(text if args.json else _table(record))
    return 0


def _hardware(device: str) -> str:
    import platform

    import torch

    if device.startswith("cuda") and torch.cuda.is_available():
        return torch.cuda.get_device_name(torch.device(device))
    return f"{platform.processor() or platform.machine()} CPU, {torch.get_num_threads()} threads"


def _write_text(path: Path, text: str) -> None:
    from biggan_zoo.weights import write_atomically

    write_atomically(path, lambda tmp: Path(tmp).write_text(text))


def _table(record: dict) -> str:
    p = record["protocol"]
    lines = [f"{record['model']}: {p['samples']} samples, truncation mode {p['truncation_mode']}, seed {p['seed']}",
             f"  Inception {p['weights_file']} (sha256 {p['sha256'][:16]}...), {p['resize']}",
             f"  reference {record['reference']['path']} ({record['reference']['n']} images)", ""]
    header = f"{'truncation':>10} {'FID':>9} {'IS':>14} {'KID x 1e3':>14} {'precision':>9} {'recall':>7}"
    if any("intra_fid" in r for r in record["results"]):
        header += f" {'intra-FID':>9}"
    lines.append(header)
    for r in record["results"]:
        t = "none" if r["truncation"] is None else f"{r['truncation']:g}"
        is_ = f"{r['is']['mean']:.2f} +- {r['is']['std']:.2f}" if "is" in r else "-"
        kid = f"{r['kid']['mean'] * 1e3:.2f} +- {r['kid']['std'] * 1e3:.2f}" if "kid" in r else "-"
        pr = (f"{r['precision']:9.3f} {r['recall']:7.3f}" if "precision" in r else f"{'-':>9} {'-':>7}")
        row = f"{t:>10} {r['fid']:9.3f} {is_:>14} {kid:>14} {pr}"
        if "intra_fid" in r:
            row += f" {r['intra_fid']:9.3f}"
        lines.append(row)
    if not any("is" in r for r in record["results"]):
        lines.append("  (no IS: these Inception weights have no classifier head; use pt_inception-2015-12-05-"
                     "6726825d.pth)")
    return "\n".join(lines)


def _plot_sweep(rows: list[dict], path: str, name: str, mode: str) -> None:
    """IS against FID over truncation values (the BigGAN paper's Figure 2b), or FID against t without IS."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("note: no plot (matplotlib is not installed: pip install 'biggan-zoo[eval]')", file=sys.stderr)
        return
    figure, axes = plt.subplots(figsize=(5, 4), dpi=120)
    fids = [r["fid"] for r in rows]
    if all("is" in r for r in rows):
        axes.plot([r["is"]["mean"] for r in rows], fids, marker="o")
        for r in rows:
            axes.annotate(f"{r['truncation']:g}", (r["is"]["mean"], r["fid"]), fontsize=7)
        axes.set_xlabel("Inception Score")
    else:
        axes.plot([r["truncation"] for r in rows], fids, marker="o")
        axes.set_xlabel(f"truncation ({mode})")
    axes.set_ylabel("FID")
    axes.set_title(f"{name}: truncation sweep", fontsize=9)
    figure.tight_layout()
    try:
        figure.savefig(path)
    except OSError as e:
        from biggan_zoo.runtime import UserError

        raise UserError(f"cannot write the plot '{path}': {e.strerror or e}") from None
    finally:
        plt.close(figure)
    print(f"wrote {path}", file=sys.stderr)
