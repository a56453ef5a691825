"""`zoo plot`: curves of one or several runs from metrics.jsonl; damaged lines are skipped, bad input is one line."""
import json
from pathlib import Path

from PIL import Image

from biggan_zoo.cli import main
from biggan_zoo.runtime.plot import PANELS, read_metrics


def _run(folder: Path, records: list[dict], extra: str = "") -> Path:
    folder.mkdir(parents=True)
    (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records) + extra)
    return folder


def _records(scale: float) -> list[dict]:
    out = [{"step": s, "D_real": scale / s, "D_fake": 0.5, "G": 1.0, "images_per_s": 100.0,
            "grad_norm/G": 2.0, "sigma0_max/G": 1.5 + s / 100} for s in range(10, 101, 10)]
    out += [{"step": 50, "fid": 80.0 * scale, "is": 3.0}, {"step": 100, "fid": 60.0 * scale, "is": 4.0}]
    return out


def test_two_runs_overlaid_into_one_png(tmp_path, capsys):
    a = _run(tmp_path / "a", _records(1.0), extra='{"step": 110, "D_re')  # a line cut short by a crash
    b = _run(tmp_path / "b", _records(2.0))
    assert [r["step"] for r in read_metrics(a)][-1] == 100
    out = tmp_path / "curves.png"
    assert main(["plot", str(a), str(b), "--out", str(out), "--title", "ablation"]) == 0
    width, height = Image.open(out).size
    assert width > 1000 and height > 600  # losses, FID, IS, grad norm, sigma, img/s: two rows of three panels
    assert "2 run(s)" in capsys.readouterr().out
    assert {"fid", "sigma0_max/G"} <= {k for _, keys in PANELS for k in keys}


def test_bad_input_is_one_line(tmp_path, capsys):
    assert main(["plot", str(tmp_path), "--out", str(tmp_path / "c.png")]) == 1
    assert "no metrics.jsonl" in capsys.readouterr().err
    empty = _run(tmp_path / "empty", [], extra="not json\n[1, 2]\n")
    assert main(["plot", str(empty), "--out", str(tmp_path / "c.png")]) == 1
    assert "no metrics to plot" in capsys.readouterr().err
    assert main(["plot", str(empty), "--out", str(tmp_path / "c.jpg")]) == 2
