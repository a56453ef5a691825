"""bench/gpu_train.py runs on a CPU with tiny settings, its FLOP count agrees with torch's counter, peaks are looked up."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

BENCH = Path(__file__).resolve().parents[1] / "bench"
TINY = str(Path(__file__).resolve().parent / "data" / "tiny.yaml")


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


gpu_train = _load("gpu_train")


def test_it_runs_on_a_cpu_and_reports_img_s_and_mfu(capsys: pytest.CaptureFixture[str]) -> None:
    results = gpu_train.main([TINY, "--device", "cpu", "--batch", "2", "--iters", "1", "--warmup", "0",
                              "--variants", "eager", "--peak", "0.5"])
    (row,) = results
    assert row["variant"] == "eager" and row["seconds"] > 0
    flops, d_steps = gpu_train.iteration_flops(TINY, [], 2)
    assert row["images_per_s"] == pytest.approx(2 * d_steps / row["seconds"])
    assert row["tflops"] == pytest.approx(flops / row["seconds"] / 1e12)
    assert row["mfu"] == pytest.approx(row["tflops"] / 0.5)
    out = capsys.readouterr().out
    assert "TFLOP per iteration (zoo build report)" in out and "peak 0.5 TFLOP/s (--peak)" in out
    assert "img/s" in out and "MFU" in out


def test_the_report_flops_agree_with_torch_counting_an_iteration() -> None:
    """The rule 'backward = 2 x forward (1 x for D in the G step)' over-counts only the input gradients of the
    first layers, which no one needs: within 5% on the tiny spec, where those layers weigh most."""
    train_step = _load("train_step")
    _, model, cfg = train_step.make_trainer(TINY, 2, "fp32", False, False)
    counted = train_step.iteration_flops(model, cfg, 2)
    flops, _ = gpu_train.iteration_flops(TINY, [], 2)
    assert counted <= flops <= 1.05 * counted


def test_peaks_come_from_the_flag_or_the_table(monkeypatch: pytest.MonkeyPatch) -> None:
    cuda = torch.device("cuda")
    for name, peak in (("NVIDIA H200", 989.4), ("NVIDIA H100 PCIe", 756.0), ("NVIDIA H100 80GB HBM3", 989.4),
                       ("NVIDIA A100-SXM4-80GB", 312.0)):
        monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None, name=name: name)
        assert gpu_train.peak_tflops(cuda, None)[0] == peak, name
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Some GPU")
    assert gpu_train.peak_tflops(cuda, None) == (None, "Some GPU is not in the table (give --peak)")
    assert gpu_train.peak_tflops(cuda, 123.0) == (123.0, "--peak")
    assert gpu_train.peak_tflops(torch.device("cpu"), None)[0] is None


def test_bad_flags_are_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        gpu_train.main([TINY, "--device", "cpu", "--variants", "eager,fast"])
    assert exit_info.value.code == 2 and "bad --variants ['fast']" in capsys.readouterr().err
