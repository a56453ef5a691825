"""The corpus of bad specs: each gives its golden message (file:line:col, caret, hint) and exit 1.

A file's first line may be `# args: ...` with extra `zoo check` arguments (e.g. a bad --set).
Regenerate the golden files after an intended change: ZOO_UPDATE_GOLDEN=1 pytest tests/test_bad_specs.py
"""
import os
import shlex
from pathlib import Path

import pytest

from biggan_zoo.cli import main

ROOT = Path(__file__).resolve().parent.parent
CORPUS = sorted(p for p in (ROOT / "tests" / "bad_specs").iterdir() if p.suffix in (".yaml", ".json"))
GOLDEN = ROOT / "tests" / "bad_specs" / "golden"


def test_corpus_is_large_enough():
    assert len(CORPUS) >= 40


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: p.stem)
def test_bad_spec_gives_golden_message(path, capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    first = path.read_text().splitlines()[0] if path.read_text() else ""
    extra = shlex.split(first.removeprefix("# args:")) if first.startswith("# args:") else []
    code = main(["check", str(path.relative_to(ROOT)), *extra])
    out = capsys.readouterr()
    assert code == 1, out.out
    assert "Traceback" not in out.err
    golden = GOLDEN / f"{path.stem}.err"
    if os.environ.get("ZOO_UPDATE_GOLDEN"):
        GOLDEN.mkdir(exist_ok=True)
        golden.write_text(out.err)
    assert out.err == golden.read_text()
