"""The spec side of the reference knobs: located errors, and the BigGAN-deep reference recipe as its script has it."""
from __future__ import annotations

from pathlib import Path

import pytest

from biggan_zoo.cli import main
from biggan_zoo.compiler.api import load_spec
from biggan_zoo.train_config import check_train

TINY = str(Path(__file__).resolve().parent / "data" / "tiny.yaml")


@pytest.mark.parametrize("override, message", [
    ("train.ortho_reg_D.exclude=[blok1]", "train.ortho_reg_D.exclude[0]: 'blok1' matches no parameter of D: D has "
                                          "no node 'blok1'"),
    ("train.betas_D=[0, 1.5]", "train.betas_D: Adam betas must lie in [0, 1), got [0.0, 1.5]"),
    ("train.g_batch_size=10", "g_batch_size 10 is not divisible by accumulate.G (4)"),
])
def test_knob_mistakes_are_located(override: str, message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", TINY, "--set", "train.accumulate.G=4", "--set", "train.batch_size=8",
                 "--set", override]) == 1
    err = capsys.readouterr().err
    assert message in err and "<--set " in err and "Traceback" not in err


def test_a_d_exclude_naming_a_submodule_that_does_not_exist_is_refused_when_built() -> None:
    from biggan_zoo import build
    from biggan_zoo.compiler.diagnostics import SpecError

    with pytest.raises(SpecError, match="'block1.nothing' matches no parameter of D"):
        build(TINY, overrides=("train.ortho_reg_D.exclude=[block1.nothing]",))
    assert build(TINY, overrides=("train.ortho_reg_D.exclude=[block1.conv1]",)).D is not None


def test_the_deep_reference_spec_has_the_launch_script_recipe() -> None:
    """scripts/launch_BigGAN_deep.sh: batch 256 x 8 accumulations, lr 1e-4 / 4e-4, betas (0, 0.999),
    eps 1e-6, one D step, EMA from 20000, no ortho reg; graphs unchanged from biggan_deep128."""
    spec = load_spec("biggan_deep128_reference")
    cfg = check_train(spec)
    assert (cfg.batch_size, cfg.accumulate.G, cfg.accumulate.D, cfg.d_steps) == (2048, 8, 8, 1)
    assert (cfg.lr.G, cfg.lr.D, cfg.eps) == (1e-4, 4e-4, 1e-6)
    assert cfg.adam_betas("G") == cfg.adam_betas("D") == (0.0, 0.999)
    assert cfg.ortho_reg.beta == cfg.ortho_reg_D.beta == 0.0 and cfg.g_batch_size is None
    assert (cfg.ema.decay, cfg.ema.start, cfg.loss, cfg.seed) == (0.9999, 20000, "hinge", 0)
    assert "launch_BigGAN_deep.sh" in cfg.citation
    assert spec.data["graphs"] == load_spec("biggan_deep128").data["graphs"]


def test_the_memory_estimate_counts_g_s_own_batch() -> None:
    from biggan_zoo.report import build_report

    same = build_report(TINY, ["train.batch_size=8"], target="cpu")
    larger = build_report(TINY, ["train.batch_size=8", "train.g_batch_size=64"], target="cpu")
    assert (same.memory.micro_g, larger.memory.micro_g, larger.memory.micro_d) == (8, 64, 8)
    assert larger.memory.steps["D_step"] == same.memory.steps["D_step"]  # D's step is unchanged
    assert larger.memory.step_bytes["G_step"] > 4 * same.memory.step_bytes["G_step"]
