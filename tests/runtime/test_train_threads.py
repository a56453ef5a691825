"""`zoo train --threads N`: torch's intra-op thread count for the run, checked before anything is built."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from biggan_zoo.cli import main


@pytest.mark.parametrize("threads", ["0", "-1", "100000"])
def test_threads_out_of_range_is_a_usage_error(threads: str, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["train", "demo32", "--out", str(tmp_path / "run"), "--steps", "1", "--threads", threads, "--no-bar"])
    assert code == 2
    assert "--threads must be in [1, " in capsys.readouterr().err
    assert not (tmp_path / "run").exists()  # refused before the run folder is made


def test_threads_sets_torchs_thread_count_for_the_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    real = torch.set_num_threads
    monkeypatch.setattr(torch, "set_num_threads", lambda n: (calls.append(n), real(n))[1])
    code = main(["train", "demo32", "--data", "builtin:shapes", "--out", str(tmp_path / "run"), "--steps", "1",
                 "--threads", "2", "--no-bar"])
    assert code == 0 and calls == [2] and torch.get_num_threads() == 2  # the suite's fixture restores it after
    assert (tmp_path / "run" / "checkpoints" / "step_00000001").is_dir()
