"""Progress without a terminal: one line per metrics record, with losses, throughput and time left."""
from pathlib import Path

import pytest

from biggan_zoo.runtime.progress import RunLog, progress_line, read_metrics


def test_progress_line_reads_like_a_log() -> None:
    record = {"step": 200, "D_real": 0.7124, "D_fake": 0.6209, "G": 0.99531, "images_per_s": 519.6}
    assert progress_line(record, 1000, 3725.4) == (
        "step 200/1000 (20%)  D_real 0.712  D_fake 0.621  G 0.995  520 img/s  ETA 1:02:05")
    assert progress_line({"step": 3}, 10, None) == "step 3/10 (30%)"


def test_without_a_bar_each_record_is_a_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = RunLog(tmp_path, total=10, initial=4, bar=False)  # resumed at step 4
    for step in (6, 8):
        log.record({"step": step, "D_real": 1.0, "D_fake": 0.5, "G": 0.25, "images_per_s": 10.0})
    log.close()
    lines = capsys.readouterr().err.strip().splitlines()
    assert [line.split("  ")[0] for line in lines] == ["step 6/10 (60%)", "step 8/10 (80%)"]
    assert all("ETA 0:00:0" in line for line in lines)  # a few ms per step so far: seconds left
    assert [r["step"] for r in read_metrics(tmp_path)] == [6, 8]
    RunLog(tmp_path, total=10, initial=0, enabled=False, bar=False).record({"step": 9})  # another rank: silent
    assert capsys.readouterr().err == ""
