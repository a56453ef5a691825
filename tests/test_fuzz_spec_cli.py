"""Fuzzing the CLI end to end with mutated spec text (issue 13): `zoo check`, `expand` and `build`.

Property, for every example: exit code 0, 1 or 2; no traceback; nothing written outside the example's
own temporary folder; `check` within ZOO_FUZZ_CHECK_SECONDS of CPU time (2 s; typically under 0.1 s) and 100 MB of Python allocations (tracemalloc), `expand`
within 3 s, `build` within 15 s. Mutations work on characters of real specs: flips, insertions,
deletions, duplicated spans, and splices of hostile snippets (deep nesting, huge numbers, long lines,
BOM and CRLF, odd names, `extends` to odd paths, expressions built to blow up).

ZOO_FUZZ_EXAMPLES sets the number of `check` examples (default 60); expand gets a fifth, build a
twentieth (at least 3).
"""
from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from biggan_zoo.cli import main

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = int(os.environ.get("ZOO_FUZZ_EXAMPLES", "60"))
CHECK_SECONDS = float(os.environ.get("ZOO_FUZZ_CHECK_SECONDS", "2.0"))  # typically < 0.1 s; CI machines are shared
SEEDS = [
    (ROOT / "specs" / "biggan32.yaml").read_text(),
    (ROOT / "tests" / "bad_specs" / "base" / "tiny.yaml").read_text(),
    '{"spec_version": 1, "description": "x", "vars": {"ch": 4, "s": "abc"}, "graphs": {"G": {"inputs": '
    '{"z": {"vector": "${ch * 4}"}}, "nodes": {"l": {"op": "linear", "inputs": ["z"], "out": 8}}, '
    '"outputs": ["l"]}}, "train": {"lr": {"G": 1e-4}}}\n',
]
SNIPPETS = [
    "[" * 5000, "{a: " * 3000, "- " * 3000, "\n" + "".join(" " * i + f"k{i}:\n" for i in range(400)),
    "9" * 5000, "1e999", ".inf", ".nan", "-.inf", "0x" + "f" * 300, "x" * 20000, "\ufeff", "\r\n", "\r", "\t",
    "\x00", "\x7f", "\ud7ff", "&a [*a]", "*undefined", "&a [1, 2]\nb: [*a, *a, *a, *a, *a, *a, *a, *a]",
    "!!python/object/apply:os.system ['true']", "!tag 1", "<<: *a", "---\n---\n",
    "extends: /etc/passwd\n", "extends: ../../../../etc/hostname\n", "extends: /dev/zero\n",
    "extends: /proc/self/status\n", "extends: ~/x.yaml\n", "extends: biggan32.yaml\n", "extends: .\n",
    "extends: [1]\n", "extends: biggan129\n",
    "forward", "training", "self", "class", "None", "__init__", "code", "graph", "state_dict", "to", "_code",
    "${16 * s}", "${s * 9999}", "${9 ** 9 ** 9}", "${2 ** 64}", "${range(10 ** 15)}", "${sum(range(10000))}",
    "${[1] * 10000}", "${[range(100)] * 100}", "${1e308 * 10}", "${(-8) ** 0.5}", "${" + "(" * 190 + "1" + ")" * 190 + "}",
    "${" + " if 1 else ".join(["1"] * 40) + "}", "${" + "-" * 400 + "1}", "${ch}", "${nope}", "${ch / 0}",
    "${int(1e15) * 1000}", "${round(1.5, 99)}", "${len(range(10000)) ** 4}", "${[x for x in range(9)]}",
    "${__import__('os')}", "${ch.__class__}", "${", "}", "${${ch}}",
]


def _mutate(text: str, ops: list[tuple[int, int, int, int]]) -> str:
    for kind, where, size, pick in ops:
        i = where % (len(text) + 1)
        if kind == 0:  # splice a hostile snippet
            text = text[:i] + SNIPPETS[pick % len(SNIPPETS)] + text[i:]
        elif kind == 1:  # delete a span
            text = text[:i] + text[i + size % 40:]
        elif kind == 2:  # duplicate a span
            text = text[:i] + text[i:i + size % 200] * (1 + pick % 4) + text[i:]
        elif kind == 3:  # replace one character
            text = text[:i] + chr(32 + pick % 95) + text[i + 1:]
        else:  # insert one arbitrary code point (no surrogates: the file is UTF-8)
            code = pick % 0x10FFFF
            text = text[:i] + (chr(code) if not 0xD800 <= code < 0xE000 else "?") + text[i:]
    return text


OPS = st.lists(st.tuples(st.integers(0, 4), st.integers(0, 10**6), st.integers(0, 10**6), st.integers(0, 10**6)),
               min_size=1, max_size=6)
TEXTS = st.builds(lambda seed, ops, crlf, bom: (("\ufeff" if bom else "")
                                                + _mutate(SEEDS[seed], ops).replace("\n", "\r\n" if crlf else "\n")),
                  st.integers(0, len(SEEDS) - 1), OPS, st.booleans(), st.booleans())


_WARM: set[str] = set()


def _warm(command: str) -> None:
    """Run `command` once on a catalog spec untimed: the bounds are per example, not for first imports."""
    if command not in _WARM:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            main([command, str(ROOT / "specs" / "biggan32.yaml")])
        _WARM.add(command)


def _run(command: str, text: str, suffix: str, seconds: float, megabytes: float | None) -> None:
    _warm(command)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        path = folder / f"spec{suffix}"
        path.write_bytes(text.encode("utf-8", errors="surrogatepass"))
        before = sorted(os.listdir(ROOT))
        out, err = io.StringIO(), io.StringIO()
        cwd = os.getcwd()
        os.chdir(folder)
        if megabytes is not None:
            tracemalloc.start()
        start = time.process_time()  # CPU time: other processes' load does not count against the bound
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                try:
                    code = main([command, str(path)])
                except SystemExit as e:  # argparse's usage errors
                    code = e.code
        finally:
            took = time.process_time() - start
            peak = tracemalloc.get_traced_memory()[1] / 2**20 if megabytes is not None else 0.0
            if megabytes is not None:
                tracemalloc.stop()
            os.chdir(cwd)
        assert code in (0, 1, 2), (code, err.getvalue()[-2000:])
        assert "Traceback" not in err.getvalue(), err.getvalue()[-2000:]
        assert took < seconds, f"zoo {command} took {took:.2f} s"
        if megabytes is not None:
            assert peak < megabytes, f"zoo {command} allocated {peak:.0f} MB"
        assert sorted(os.listdir(folder)) == [path.name], os.listdir(folder)
        assert sorted(os.listdir(ROOT)) == before


FUZZ = dict(deadline=None, derandomize=False, suppress_health_check=list(HealthCheck), database=None)


@settings(max_examples=EXAMPLES, **FUZZ)
@given(text=TEXTS, suffix=st.sampled_from([".yaml", ".json", ".yml"]))
def test_check_holds_the_property(text, suffix):
    _run("check", text, suffix, seconds=CHECK_SECONDS, megabytes=100)


@settings(max_examples=max(3, EXAMPLES // 5), **FUZZ)
@given(text=TEXTS, suffix=st.sampled_from([".yaml", ".json"]))
def test_expand_holds_the_property(text, suffix):
    _run("expand", text, suffix, seconds=3.0, megabytes=None)


@settings(max_examples=max(3, EXAMPLES // 20), **FUZZ)
@given(text=TEXTS)
def test_build_holds_the_property(text):
    _run("build", text, ".yaml", seconds=15.0, megabytes=None)


def test_a_few_mutants_as_processes(tmp_path):
    """The real `zoo` process: exit 0/1/2 and no traceback, on hostile texts chosen to be different."""
    texts = [SEEDS[0].replace("ch: 64", "ch: " + snippet) for snippet in ("${9 ** 9 ** 9}", "[" * 5000, "1e999")]
    texts += ["\ufeff" + SEEDS[2].replace("\n", "\r\n"), SEEDS[1].replace("block1", "forward")]
    for i, text in enumerate(texts):
        path = tmp_path / f"m{i}.yaml"
        path.write_text(text)
        run = subprocess.run([sys.executable, "-m", "biggan_zoo", "check", str(path)], capture_output=True,
                             text=True, timeout=60, cwd=tmp_path)
        assert run.returncode in (0, 1, 2) and "Traceback" not in run.stderr, run.stderr[-2000:]
