"""Fuzzing the CLI with hostile files and flags: weights files, checkpoint state.json, flag values.

Property for every input: `zoo` ends with exit code 0, 1 or 2, prints no traceback, writes nothing
outside the output it was given, and stays within a time and memory bound. Examples per target come
from ZOO_FUZZ_EXAMPLES (default 60 for weights, a third of it for checkpoints and flags); run with
ZOO_FUZZ_EXAMPLES=2000 for a long session.
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import resource
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from biggan_zoo.cli import main

TINY = str(Path(__file__).resolve().parent / "data" / "tiny.yaml")
SETS = ["--set", "vars.n_classes=10", "--set", "train.batch_size=4", "--set", "train.d_steps=1",
        "--set", "train.sample_every=100", "--set", "train.checkpoint_every=1", "--set", "train.log_every=1"]
EXAMPLES = int(os.environ.get("ZOO_FUZZ_EXAMPLES", "60"))
SECONDS_PER_RUN = 60.0
RSS_BOUND = 3 * 2**30  # peak RSS of this test process (ru_maxrss) stays below it
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=False, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory):
    """A folder holding everything: inputs, outputs, and Python's temp dir (so escapes land where we look)."""
    root = tmp_path_factory.mktemp("fuzz")
    (root / "tmp").mkdir()
    saved_tempdir, saved_env = tempfile.tempdir, dict(os.environ)
    tempfile.tempdir = str(root / "tmp")
    os.environ["ZOO_MEMORY_LIMIT"] = "512MiB"  # what "the machine can hold" is, for this test's bounds
    run = root / "run"
    assert _cli(["train", TINY, *SETS, "--out", str(run), "--steps", "2", "--no-bar"])[0] == 0
    assert _cli(["export", str(run), "--out", str(root / "base.safetensors")])[0] == 0
    yield root
    tempfile.tempdir = saved_tempdir
    os.environ.clear()
    os.environ.update(saved_env)


def _cli(argv: list[str]) -> tuple[int, str]:
    err, out = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        try:
            code = main(argv)
        except SystemExit as e:  # argparse: a bad flag
            code = e.code if isinstance(e.code, int) else 2
        except BaseException as e:  # noqa: BLE001 - any escape is the failure we look for
            import traceback

            return -1, err.getvalue() + "".join(traceback.format_exception(e))
    return code, err.getvalue()


def _listing(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_size if p.is_file() else -1
            for p in root.rglob("*") if not p.is_symlink()}


def _holds(sandbox: Path, argv: list[str], outputs: list[Path]) -> None:
    """Run `zoo argv` and check the property; `outputs` may be written (and are removed after)."""
    before = _listing(sandbox)
    started = time.perf_counter()
    code, err = _cli(argv)
    took = time.perf_counter() - started
    assert code in (0, 1, 2), f"exit {code} for {argv}:\n{err[-3000:]}"
    assert "Traceback" not in err, f"traceback for {argv}:\n{err[-3000:]}"
    if code == 1:
        assert err.strip(), f"exit 1 without a message for {argv}"
    assert took < SECONDS_PER_RUN, f"{argv} took {took:.1f} s"
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 < RSS_BOUND
    allowed = [str(o.relative_to(sandbox)) for o in outputs]
    after = _listing(sandbox)
    new = [p for p in after if p not in before and not any(p == a or p.startswith(a + os.sep) for a in allowed)]
    changed = [p for p in before if p in after and before[p] != after[p] and p not in allowed and not p.startswith("run")]
    assert not new and not changed, f"{argv} wrote outside its output: new {new[:5]}, changed {changed[:5]}"
    for output in outputs:
        shutil.rmtree(output, ignore_errors=True) if output.is_dir() else output.unlink(missing_ok=True)


# --- weights files -----------------------------------------------------------------------------

def _split(blob: bytes) -> tuple[dict, bytes]:
    length = struct.unpack("<Q", blob[:8])[0]
    return json.loads(blob[8:8 + length]), blob[8 + length:]


def _join(header: dict, data: bytes) -> bytes:
    text = json.dumps(header).encode()
    return struct.pack("<Q", len(text)) + text + data


JSON_VALUES = st.recursive(st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats() | st.text(max_size=20),
                           lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                                        max_size=4), max_leaves=12)
SPEC_EDITS = st.sampled_from([
    ("extends", "../../../../etc/passwd"), ("extends", "/etc/hostname"), ("vars.ch", "${16 * ch}"),
    ("graphs.G.nodes.linear.out", 10**6), ("graphs.G.nodes.linear.out", 999_999), ("graphs.G.nodes.linear.out", -4),
    ("graphs.G.inputs.z.vector", 1_000_000), ("graphs.G.inputs.y.classes", 1_000_000),
    ("graphs.G.nodes.block1.out", 100_000), ("graphs.G.nodes.linear.out", "${'a' * 10**9}"),
    ("graphs.G.nodes.stem.shape", [10**6, 10**6, 10**6]), ("graphs", None), ("graphs.G", []),
    ("graphs.G.nodes", {"__class__": {"op": "relu", "inputs": ["z"]}}), ("spec_version", 2),
    ("description", "x" * 2_000_000), ("graphs.D.inputs.x.image", [3, 10**6, 10**6]),
])


def _edit(data: dict, dotted: str, value: object) -> dict:
    target, parts = data, dotted.split(".")
    for part in parts[:-1]:
        if not isinstance(target, dict):
            return data
        target = target.setdefault(part, {})
    if isinstance(target, dict):
        target[parts[-1]] = value
    return data


@st.composite
def weights_mutation(draw: st.DrawFn, base: bytes) -> bytes:
    header, data = _split(base)
    kind = draw(st.sampled_from(["length", "header_bytes", "metadata", "spec", "spec_value", "tensor_entry",
                                 "tensor_bytes", "truncate", "nesting"]))
    if kind == "length":
        return struct.pack("<Q", draw(st.sampled_from([0, 1, 7, 2**31, 2**63, 2**64 - 1, len(base)])
                                      | st.integers(0, 2**64 - 1))) + base[8:]
    if kind == "header_bytes":
        raw = bytearray(base)
        length = struct.unpack("<Q", base[:8])[0]
        for _ in range(draw(st.integers(1, 4))):
            raw[draw(st.integers(8, 8 + length - 1))] = draw(st.integers(0, 255))
        return bytes(raw)
    meta = header.setdefault("__metadata__", {})
    if kind == "metadata":
        key = draw(st.sampled_from(["format", "version", "spec", "graphs", "spec_name", "spec_hash", "source", "new"]))
        if draw(st.booleans()):
            meta.pop(key, None)
        else:
            meta[key] = draw(st.sampled_from(["../../escape", "/tmp/abs", "..", "", "zoo-weights", "[]", "{}",
                                              '["G","../D"]', '["' + "G" * 100 + '"]', "null", "1"]) | st.text(max_size=30))
    elif kind in ("spec", "spec_value"):
        spec = json.loads(meta["spec"])
        if kind == "spec":
            dotted, value = draw(SPEC_EDITS)
        else:
            dotted = draw(st.sampled_from(["vars.ch", "graphs.G.nodes.linear.out", "graphs.G.nodes.shared.dim",
                                           "graphs.D.nodes.logit.op", "graphs.G.outputs", "train.batch_size"]))
            value = draw(JSON_VALUES)
        meta["spec"] = json.dumps(_edit(spec, dotted, value))
        if draw(st.booleans()):  # a careful forger recomputes the hash
            from biggan_zoo.compiler.api import spec_hash

            meta["spec_hash"] = spec_hash(json.loads(meta["spec"]))
        if draw(st.booleans()):
            meta["spec_name"] = draw(st.sampled_from(["../../../escape", "/abs/path", "tiny", "a/b"]))
    elif kind == "tensor_entry":
        name = draw(st.sampled_from(sorted(k for k in header if k != "__metadata__")))
        field = draw(st.sampled_from(["dtype", "shape", "data_offsets"]))
        header[name][field] = draw(st.sampled_from({
            "dtype": ["F64", "I64", "BOOL", "U8", "F8_E4M3", "C64", "XX", 5],
            "shape": [[], [0], [2**40], [-1], [1, 1, 1, 1, 1], "a"],
            "data_offsets": [[0, 0], [0, 2**62], [5, 3], [0], "x"]}[field]))
    elif kind == "nesting":
        meta["spec"] = "[" * draw(st.integers(30, 100_000)) + "]" * draw(st.integers(0, 10))
    elif kind == "tensor_bytes":
        raw = bytearray(data)
        for _ in range(draw(st.integers(1, 16))):
            raw[draw(st.integers(0, len(raw) - 1))] = draw(st.integers(0, 255))
        data = bytes(raw)
    blob = _join(header, data)
    if kind == "truncate":
        blob = blob[:draw(st.integers(0, len(blob) - 1))]
    return blob


@FUZZ
@given(data=st.data())
def test_mutated_weights_files(sandbox: Path, data: st.DataObject) -> None:
    blob = data.draw(weights_mutation((sandbox / "base.safetensors").read_bytes()))
    command = data.draw(st.sampled_from(["sample", "interpolate", "convert", "train"]))
    weights = sandbox / "w.safetensors"
    weights.write_bytes(blob)
    out = sandbox / "out"
    argv = {"sample": ["sample", str(weights), "--n", "1", "--rows", "1", "--out", str(out) + ".png"],
            "interpolate": ["interpolate", str(weights), "--from-class", "0", "--steps", "2", "--out", str(out) + ".gif"],
            "convert": ["convert", str(weights), "--to", "biggan-pytorch", "--out", str(out)],
            "train": ["train", TINY, *SETS, "--weights", str(weights), "--steps", "1", "--no-bar", "--out", str(out)],
            }[command]
    _holds(sandbox, argv, [out, Path(str(out) + ".png"), Path(str(out) + ".gif")])


# --- checkpoint state.json ---------------------------------------------------------------------

@st.composite
def state_mutation(draw: st.DrawFn, document: dict) -> str:
    kind = draw(st.sampled_from(["drop", "replace", "deep", "files", "text"]))
    if kind == "text":
        text = json.dumps(document)
        cut = draw(st.integers(0, len(text)))
        return text[:cut] + draw(st.text(max_size=5))
    if kind == "deep":
        depth = draw(st.integers(60, 50_000))
        document["state"]["window"] = json.loads("[" * min(depth, 900) + "]" * min(depth, 900)) if depth < 900 else 0
        return json.dumps(document) if depth < 900 else json.dumps(document)[:-1] + ',"x":' + "[" * depth + "]" * depth + "}"
    if kind == "files":
        name = draw(st.sampled_from(["../../../escape.safetensors", "/etc/hostname", "G.safetensors", "x"]))
        document["files"][name] = draw(st.sampled_from([{"size": 1, "sha256": "0" * 64}, 5, None, {"size": -1}]))
        return json.dumps(document)
    paths = [("step",), ("files",), ("state",), ("spec",), ("spec_hash",), ("state", "optim"), ("state", "optim", "G"),
             ("state", "scalers"), ("state", "python_rng"), ("state", "numpy_rng"), ("state", "consumed"),
             ("state", "window"), ("state", "elapsed_s"), ("state", "optim", "G", "state"), ("version",), ("format",)]
    path = draw(st.sampled_from(paths))
    target = document
    for part in path[:-1]:
        target = target.get(part, {}) if isinstance(target, dict) else {}
    if isinstance(target, dict):
        if kind == "drop":
            target.pop(path[-1], None)
        else:
            target[path[-1]] = draw(JSON_VALUES)
    return json.dumps(document)


@settings(FUZZ, max_examples=max(1, EXAMPLES // 3))
@given(data=st.data())
def test_mutated_checkpoint_state(sandbox: Path, data: st.DataObject) -> None:
    run = sandbox / "run_copy"
    shutil.rmtree(run, ignore_errors=True)
    shutil.copytree(sandbox / "run", run)
    latest = sorted((run / "checkpoints").iterdir())[-1]
    document = json.loads((latest / "state.json").read_text())
    (latest / "state.json").write_text(data.draw(state_mutation(document)))
    command = data.draw(st.sampled_from(["resume", "export", "sample"]))
    out = sandbox / "out"
    argv = {"resume": ["train", TINY, *SETS, "--resume", "--steps", "3", "--no-bar", "--out", str(run)],
            "export": ["export", str(run), "--out", str(out)],
            "sample": ["sample", str(run), "--n", "1", "--rows", "1", "--out", str(out)]}[command]
    _holds(sandbox, argv, [out, run])
    shutil.rmtree(run, ignore_errors=True)


# --- flags -------------------------------------------------------------------------------------

ODD_INTS = st.sampled_from([0, -1, 1, 2, 3, 10**3, 10**6, 10**9, 2**31, 2**63, 2**64, -2**63, 10**30]) | st.integers(-5, 50)
ODD_FLOATS = st.sampled_from(["nan", "inf", "-inf", "0", "-0", "1e-300", "1e300", "0.5", "1", "2", "abc", "1e-45"])


@st.composite
def flag_case(draw: st.DrawFn) -> list[str]:
    command = draw(st.sampled_from(["sample", "interpolate", "train"]))
    argv: list[str] = []
    if command == "sample":
        for flag in draw(st.sets(st.sampled_from(["--n", "--rows", "--seed", "--standing-stats"]))):
            argv += [flag, str(draw(ODD_INTS))]
        if draw(st.booleans()):
            argv += ["--truncation", draw(ODD_FLOATS)]
        if draw(st.booleans()):
            argv += ["--sweep", draw(st.sampled_from(["0.1:1:0.1", "0:1e9:1e-9", "1e-300:1:1e-300", "1,2,3",
                                                      "nan:1:0.1", "0.5:0.1:0.1", "a:b:c", "", ":::", "0.5"]))]
        if draw(st.booleans()):
            argv += ["--classes", draw(st.sampled_from(["random", "0,1", "-1", "10", "99999999999999999999", "",
                                                        ",".join(["1"] * 5000), "1.5", "0x1"]))]
        if draw(st.booleans()):
            argv += ["--truncation-mode", draw(st.sampled_from(["resample", "tfhub", "clamp", "scale", "none", "x"]))]
        return ["sample", "RUN", *argv, "--out", "OUT.png"]
    if command == "interpolate":
        for flag in draw(st.sets(st.sampled_from(["--steps", "--seed", "--seed2", "--from-class", "--to-class"]))):
            argv += [flag, str(draw(ODD_INTS))]
        if "--from-class" not in argv:
            argv += ["--from-class", "0"]
        if draw(st.booleans()):
            argv += ["--truncation", draw(ODD_FLOATS)]
        return ["interpolate", "RUN", *argv, "--out", draw(st.sampled_from(["OUT.png", "OUT.gif", "OUT.xyz"]))]
    argv += ["--steps", str(min(draw(ODD_INTS), 2))]  # never the default 1000: the bound is on time too
    if draw(st.booleans()):
        argv += ["--workers", str(draw(ODD_INTS))]
    if draw(st.booleans()):
        argv += ["--dist-timeout", draw(ODD_FLOATS)]
    if draw(st.booleans()):
        argv += ["--set", f"train.batch_size={draw(st.sampled_from([0, -4, 4, 2**40, 10**7]))}"]
    return ["train", TINY, *SETS, *argv, "--no-bar", "--out", "OUT"]


@settings(FUZZ, max_examples=max(1, EXAMPLES // 2))
@given(case=flag_case())
def test_odd_flags(sandbox: Path, case: list[str]) -> None:
    out = sandbox / "flag_out"
    suffix = next((a[len("OUT"):] for a in case if a.startswith("OUT")), "")
    argv = [str(sandbox / "run") if a == "RUN" else (str(out) + a[3:] if a.startswith("OUT") else a) for a in case]
    _holds(sandbox, argv, [Path(str(out) + suffix)])


def test_a_few_end_to_end_through_the_console_script(sandbox: Path) -> None:
    """The same property through a real process, whose memory is capped by the OS."""
    weights = sandbox / "w.safetensors"
    header, data = _split((sandbox / "base.safetensors").read_bytes())
    header["__metadata__"]["spec_name"] = "../../../escaped"
    weights.write_bytes(_join(header, data))
    cases = [["convert", str(weights), "--to", "biggan-pytorch", "--out", str(sandbox / "exported")],
             ["sample", str(sandbox / "run"), "--n", str(10**9), "--out", str(sandbox / "big.png")],
             ["interpolate", str(sandbox / "run"), "--from-class", "0", "--steps", str(10**12)]]
    for argv in cases:
        before = _listing(sandbox.parent)
        result = subprocess.run([sys.executable, "-m", "biggan_zoo", *argv], capture_output=True, text=True,
                                timeout=120, cwd=sandbox, env={**os.environ, "TMPDIR": str(sandbox / "tmp")},
                                preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_AS, (8 * 2**30, 8 * 2**30)))
        assert result.returncode in (0, 1, 2) and "Traceback" not in result.stderr, result.stderr[-2000:]
        new = [p for p in _listing(sandbox.parent) if p not in before]
        assert all(p.startswith(str(Path(sandbox.name) / "exported")) for p in new), new
    shutil.rmtree(sandbox / "exported", ignore_errors=True)
