"""`zoo build`: tables, totals, JSON, memory arithmetic and error cases (on tests/data/tiny.yaml)."""
from __future__ import annotations

import json
import sys

import pytest

from biggan_zoo.cli import main
from biggan_zoo.report.memory import BatchError, Recipe, parse_bytes

TINY = "tests/data/tiny.yaml"


@pytest.fixture(scope="module")
def report():  # noqa: ANN201 - a BuildReport
    from biggan_zoo.report import build_report

    return build_report(TINY, ["vars.ch=8"], batch=8)


def run_json(capsys: pytest.CaptureFixture, *args: str) -> dict:
    assert main(["build", TINY, "--json", *args]) == 0
    return json.loads(capsys.readouterr().out)


def test_json_document_has_the_documented_fields(capsys: pytest.CaptureFixture) -> None:
    doc = run_json(capsys, "--batch", "4")
    assert doc["spec"]["name"] == "tiny"
    for name in ("G", "D"):
        graph = doc["graphs"][name]
        assert all(isinstance(graph[k], int) and graph[k] > 0 for k in ("params", "buffers", "flops_per_sample"))
    memory = doc["memory"]
    assert isinstance(memory["per_device_peak_bytes"], int)
    parts = memory["breakdown"]
    steps = [v for k, v in parts.items() if k != "static"]
    assert memory["per_device_peak_bytes"] == sum(parts["static"].values()) + max(sum(s.values()) for s in steps)


def test_params_equal_numel_of_the_built_modules(report) -> None:  # noqa: ANN001
    from biggan_zoo.model import build

    model = build(TINY, device="meta", overrides=("vars.ch=8",))
    for name in ("G", "D"):
        assert report.graphs[name].params == sum(p.numel() for p in model.graphs[name].parameters())
        assert report.graphs[name].buffers == sum(b.numel() for b in model.graphs[name].buffers())


def test_totals_are_the_sums_of_the_rows(report) -> None:  # noqa: ANN001
    for g in report.graphs.values():
        assert g.params == sum(r.params for r in g.rows)
        assert g.flops.per_sample == sum(r.flops.per_sample for r in g.rows) > 0
        assert g.saved_bytes.per_sample == sum(r.saved_bytes.per_sample for r in g.rows) > 0


def test_flops_agree_with_torch_flop_counter_mode(report) -> None:  # noqa: ANN001
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from biggan_zoo.report.summary import example_inputs

    for name, g in report.graphs.items():
        with FlopCounterMode(display=False) as counter:
            report.modules[name](*example_inputs(report.spec.graphs[name], 3, torch.float32))
        assert counter.get_total_flops() == g.flops.at(3)


def test_linear_fit_predicts_a_third_batch(report) -> None:  # noqa: ANN001
    import torch

    from biggan_zoo.report.summary import trace_forward

    for name, g in report.graphs.items():
        _, saved, _ = trace_forward(report.modules[name], report.spec.graphs[name], 5, torch.float32)
        assert sum(saved.values()) == g.saved_bytes.at(5)


def test_meta_build_leaves_no_dynamo_stand_in(report) -> None:  # noqa: ANN001
    module = sys.modules.get("torch._dynamo")
    assert module is None or hasattr(module, "optimize")  # absent, or the real one


def test_text_report_lists_every_node_and_the_peak(capsys: pytest.CaptureFixture) -> None:
    assert main(["build", TINY, "--batch", "4", "--depth", "1"]) == 0
    out = capsys.readouterr().out
    for node in ("shared", "z_split", "block1", "image", "logit", "total", "peak", "adam_moments", "ema_G"):
        assert node in out
    assert "Total params" in out  # torchinfo's table


def test_bf16_halves_the_activations_on_cpu(report) -> None:  # noqa: ANN001
    from biggan_zoo.report import build_report

    half = build_report(report.spec, batch=8, precision="bf16", target="cpu")
    for name in ("G", "D"):
        ratio = half.graphs[name].saved_bytes.per_sample / report.graphs[name].saved_bytes.per_sample
        assert 0.4 < ratio < 0.6  # int64 labels and the like stay as they are
    assert half.memory.steps["G_step"]["autocast_weights"] > 0


def test_bf16_on_cuda_keeps_fp32_activations_and_adds_weight_copies(report) -> None:  # noqa: ANN001
    """CUDA autocast promotes most activations back to fp32 (measured on an H100, see README)."""
    from biggan_zoo.report import build_report

    half = build_report(report.spec, batch=8, precision="bf16", target="cuda")
    fp32 = build_report(report.spec, batch=8, precision="fp32", target="cuda")
    for name in ("G", "D"):
        assert half.graphs[name].saved_bytes.per_sample == fp32.graphs[name].saved_bytes.per_sample
    assert half.memory.steps["G_step"]["autocast_weights"] > 0
    assert half.memory.peak > fp32.memory.peak


def test_memory_budget_gives_the_largest_batch(capsys: pytest.CaptureFixture) -> None:
    doc = run_json(capsys, "--batch", "8", "--memory", "8MiB", "--devices", "2")
    memory = doc["memory"]
    largest = memory["largest_batch"]
    assert memory["fits"] is True and largest % 2 == 0 and largest >= 8
    above = run_json(capsys, "--batch", str(largest), "--devices", "2")["memory"]["per_device_peak_bytes"]
    assert above <= parse_bytes("8MiB")
    assert main(["build", TINY, "--json", "--batch", str(largest + 2), "--devices", "2", "--memory", "8MiB"]) == 1
    assert "more than --memory 8MiB" in capsys.readouterr().err


def test_impossible_budget_says_so(capsys: pytest.CaptureFixture) -> None:
    assert main(["build", TINY, "--batch", "2", "--memory", "1KiB"]) == 1
    captured = capsys.readouterr()
    assert "impossible" in captured.out and "no batch fits" in captured.err


@pytest.mark.parametrize("args,code,message", [
    (["specs/no_such_spec.yaml"], 1, "no_such_spec"),
    ([TINY, "--set", "vars.nope"], 1, "vars.nope"),
    ([TINY, "--batch", "0"], 2, "at least 1"),
    ([TINY, "--batch", "6", "--accum", "4"], 2, "multiple of 4"),
    ([TINY, "--batch", "8", "--devices", "3"], 2, "multiple of 3"),
    ([TINY, "--memory", "lots"], 2, "not a memory size"),
])
def test_errors_are_clear(capsys: pytest.CaptureFixture, args: list[str], code: int, message: str) -> None:
    assert main(["build", *args]) == code
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_parse_bytes() -> None:
    assert parse_bytes("80GiB") == 80 * 2**30
    assert parse_bytes("40 GB") == 40 * 10**9
    assert parse_bytes("1.5MiB") == 3 * 2**19
    with pytest.raises(ValueError):
        parse_bytes("80 parsecs")


def test_micro_batches_must_be_whole() -> None:
    assert Recipe(batch=64, accumulate_g=2, accumulate_d=4, devices=2).micro_batches() == (16, 8)
    with pytest.raises(BatchError, match="multiple of 8"):
        Recipe(batch=12, accumulate_d=4, devices=2).micro_batches()
