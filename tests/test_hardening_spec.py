"""Issue 13, the spec side: every hostile or unusual spec text ends in one located line, quickly.

Classes: bounded expressions (typed values, capped results, a per-spec budget, no recursion through
vars), only regular files read and `extends` kept inside the spec's tree and the catalog, any nesting
depth, names that cannot compile, unusual but valid input, non-finite recipe values, one-screen quotes
and "did you mean" ranking.
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import sys
import threading
import time
from pathlib import Path

import pytest

from biggan_zoo.cli import main
from biggan_zoo.compiler import limits
from biggan_zoo.compiler.api import load_spec
from biggan_zoo.compiler.expr import ExprError, evaluate

ROOT = Path(__file__).resolve().parent.parent
BIGGAN32 = (ROOT / "specs" / "biggan32.yaml").read_text()


def check(path: Path | str, *extra: str, command: str = "check") -> tuple[int, str, str]:
    """Run `zoo COMMAND path` in-process; (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([command, str(path), *extra])
    return code, out.getvalue(), err.getvalue()


def refused(path: Path | str, *needles: str, seconds: float = 2.0) -> str:
    """`zoo check` exits 1 within `seconds` of CPU time (typically 0.05 s) with one located error mentioning
    each needle. CPU time, not wall time: other processes on a loaded machine do not count against it."""
    start = time.process_time()
    code, _, err = check(path)
    took = time.process_time() - start
    assert code == 1, err
    assert "Traceback" not in err
    assert took < seconds, f"took {took:.2f} s"
    first = err.splitlines()[0]
    assert ": error: " in first, err
    for needle in needles:
        assert needle in err, err
    return err


def spec_with_vars(tmp_path: Path, vars_text: str, name: str = "s.yaml") -> Path:
    text = BIGGAN32.replace("vars: {ch: 64, dim_z: 128, n_classes: 10}",
                            "vars: {ch: 64, dim_z: 128, n_classes: 10, " + vars_text + "}")
    path = tmp_path / name
    path.write_text(text)
    return path


# --- 2. expressions -----------------------------------------------------------------------------

NAMES = {"ch": "abc", "n": 96, "big": list(range(10_000))}


@pytest.mark.parametrize("text, message", [
    ("16 * ch", "on a string"), ("ch * 16", "on a string"), ("ch + ch", "on a string"),
    ("9 ** 9 ** 9", "exponent larger than 64"), ("10 ** 16", "larger than"), ("2 ** 64", "larger than"),
    ("(-8) ** 0.5", "no real value"), ("1e308 * 10", "larger than"), ("1e999", "not a finite number"),
    ("range(10 ** 15)", "range longer"), ("sum(range(10 ** 15))", "range longer"),
    ("[1] * 100000", "list longer"), ("big * 2", "list longer"), ("big + big", "list longer"),
    ("[big]", "must be a number"), ("[ch]", "must be a number"), ("ch[0]", "cannot index"),
    ("int(ch)", "must be a number"), ("float('1e999')", "must be a number"), ("len(n)", "len() of a number"),
    ("round(1e14, -400)", "more than 20 digits"), ("[x for x in big]", "'ListComp' is not allowed"),
    ("(" * 240 + "1" + ")" * 240, "invalid expression"), ("-" * 300 + "1", "deeper than"),
    ("[" + ",".join(["1"] * 210) + "]", "more than 200 parts"),
    ("1" * 499, "larger than"), ("None", "not allowed"), ("big[::0]", "step cannot be zero"),
    ("n is n", "'is' is not allowed"), ("min([])", "empty list"), ("ch < 3", "cannot order"),
])
def test_expression_refusals_are_quick_expr_errors(text, message):
    start = time.process_time()  # CPU time: the bound is on the work done, whatever the machine's load
    with pytest.raises(ExprError) as e:
        evaluate(text, NAMES)
    assert message in e.value.message, e.value.message
    assert time.process_time() - start < 0.2


def test_long_if_else_chain_is_bounded():
    text = " if n else ".join(["1"] * 15)  # nested 15 deep, inside the depth limit
    assert evaluate(text, NAMES) == 1
    with pytest.raises(ExprError):
        evaluate(" if n else ".join(["1"] * 200)[:499], NAMES)


def test_strings_pass_through_and_compare():
    assert evaluate("ch", NAMES) == "abc"
    assert evaluate("'x' if ch == 'abc' else 'y'", NAMES) == "x"


def test_budget_over_the_whole_spec(tmp_path):
    # each expression is fine on its own; together they make far more than the per-spec budget
    many = ", ".join(f'v{i}: "${{range(10000)}}"' for i in range(40))
    refused(spec_with_vars(tmp_path, many), "in total")


def test_interpolated_text_is_bounded(tmp_path):
    refused(spec_with_vars(tmp_path, 'r: "${range(10000)}", t: "x ${r} ${r} ${r}"'), "longer than")


def test_long_chain_of_vars_is_a_located_error_not_recursion(tmp_path):
    chain = ", ".join(f'v{i}: "${{v{i + 1}}}"' for i in range(3000)) + ", v3000: 1"
    err = refused(spec_with_vars(tmp_path, chain), f"more than {limits.MAX_VARS_CHAIN} vars")
    assert "RecursionError" not in err


def test_chain_within_the_limit_resolves(tmp_path):
    chain = ", ".join(f'v{i}: "${{v{i + 1} + 1}}"' for i in range(40)) + ", v40: 0"
    spec = load_spec(spec_with_vars(tmp_path, "_" + chain))  # `_v0`: read by no expression, on purpose
    assert spec.data["vars"]["_v0"] == 40


def test_vars_cycle_is_still_reported(tmp_path):
    refused(spec_with_vars(tmp_path, 'a: "${b}", b: "${c}", c: "${a}"'), "cycle: a -> b -> c -> a")


# --- 3. files, extends and nesting ----------------------------------------------------------------

def test_fifo_is_refused_at_once(tmp_path):
    fifo = tmp_path / "pipe.yaml"
    os.mkfifo(fifo)
    result: list[str] = []
    worker = threading.Thread(target=lambda: result.append(refused(fifo, "FIFO")), daemon=True)
    worker.start()
    worker.join(5)
    assert result, "zoo check blocked on a FIFO"


@pytest.mark.parametrize("target, needle", [
    ("/dev/zero", "character device"), ("/dev/null", "character device"), ("/proc/self/status", "spec"),
])
def test_devices_and_proc_files_are_refused(target, needle):
    if not os.path.exists(target):
        pytest.skip(f"{target} does not exist here")
    refused(target, needle)


def test_proc_file_reads_are_bounded(tmp_path):
    # /proc files say size 0; the read stops at the cap all the same (here a file that grows is simulated
    # by a large regular file, which the size check refuses before reading)
    big = tmp_path / "big.yaml"
    big.write_text("a: 1\n" * (limits.MAX_FILE_BYTES // 5 + 10))
    refused(big, "bytes")


def test_folder_symlink_loop_and_binary(tmp_path):
    code, _, err = check(tmp_path)  # a folder without specs is a usage error
    assert code == 2 and "Traceback" not in err
    loop = tmp_path / "loop.yaml"
    loop.symlink_to(tmp_path / "loop.yaml")
    refused(loop, "loop of symbolic links")
    binary = tmp_path / "b.yaml"
    binary.write_bytes(b"spec_version: 1\n\xff\xfe\x00")
    refused(binary, "not UTF-8")


SECRET = "secret-line-that-must-not-be-quoted"


@pytest.mark.parametrize("extends", ["/etc/passwd", "{outside}/other.yaml", "../outside/other.yaml",
                                     "../../../../../../../etc/hostname", "~/x.yaml", "link.yaml"])
def test_extends_outside_the_tree_is_refused_without_quoting(tmp_path, extends):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "other.yaml").write_text(f"{SECRET}: [\n")
    inside = tmp_path / "inside"
    inside.mkdir()
    (inside / "link.yaml").symlink_to(outside / "other.yaml")
    spec = inside / "s.yaml"
    spec.write_text(f"extends: {extends.format(outside=outside)}\ndescription: x\n")
    err = refused(spec, "extends")
    assert SECRET not in err
    assert err.splitlines()[0].startswith(f"{spec}:1:"), err


def test_extends_inside_the_tree_and_catalog_still_work(tmp_path):
    (tmp_path / "bases").mkdir()
    (tmp_path / "bases" / "b32.yaml").write_text(BIGGAN32)
    (tmp_path / "variants").mkdir()
    (tmp_path / "variants" / "v.yaml").write_text("extends: ../bases/b32.yaml\ndescription: v\n")
    (tmp_path / "top.yaml").write_text("extends: variants/v.yaml\ndescription: top\n")
    assert check(tmp_path / "top.yaml")[0] == 0
    (tmp_path / "cat.yaml").write_text("extends: biggan32.yaml\ndescription: from the catalog\n")
    assert check(tmp_path / "cat.yaml")[0] == 0


@pytest.mark.parametrize("name, text", [
    ("flow.yaml", "[" * 100_000), ("flow_closed.yaml", "a: " + "[" * 5000 + "]" * 5000),
    ("block.yaml", "".join(" " * i + f"k{i}:\n" for i in range(3000))),
    ("seq.yaml", "- " * 20_000 + "1\n"), ("obj.json", '{"a":' * 50_000), ("arr.json", "[" * 5000 + "]" * 5000),
    ("alias.yaml", "a: &a [[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]\nb: [[[[[[[[[[[[[[[[*a]]]]]]]]]]]]]]]]\n"),
    ("self_alias.yaml", "a: &a [*a]\n"),
])
def test_any_nesting_ends_in_a_located_error(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    err = refused(path, seconds=2.0)
    assert "Recursion" not in err


def test_huge_numbers_in_yaml(tmp_path):
    path = tmp_path / "n.yaml"
    path.write_text("spec_version: 1\nvars: {x: " + "9" * 5000 + "}\n")
    refused(path, "a number of 5000 characters")


# --- 7. names that cannot compile ----------------------------------------------------------------

@pytest.mark.parametrize("name, why", [
    ("forward", "attribute"), ("training", "attribute"), ("code", "attribute"), ("graph", "attribute"),
    ("state_dict", "attribute"), ("to", "attribute"), ("_code", "attribute"), ("self", "module itself"),
    ("class", "keyword"), ("None", "keyword"), ("__init__", "special name"),
])
def test_reserved_node_names(tmp_path, name, why):
    text = BIGGAN32.replace("      stem: {op: reshape, inputs: [linear]", f"      {name}: {{op: reshape, inputs: [linear]")
    text = text.replace("inputs: [stem, y]", f"inputs: ['{name}', y]")
    path = tmp_path / "s.yaml"
    path.write_text(text.replace(f"      {name}:", f"      '{name}':"))
    err = refused(path, why, f"nodes.{name}")
    assert ":16:7:" in err.splitlines()[0]


@pytest.mark.parametrize("name, ok", [("self", False), ("def", False), ("forward", True), ("torch", True)])
def test_reserved_input_names(tmp_path, name, ok):
    text = BIGGAN32.replace("      z: {vector:", f"      {name}: {{vector:").replace("inputs: [z], out", f"inputs: [{name}], out")
    path = tmp_path / "s.yaml"
    path.write_text(text)
    assert check(path)[0] == (0 if ok else 1)


def test_reserved_list_matches_torch():
    """In a fresh interpreter: torch.compile, run earlier in the same worker, patches nn.Module at run time."""
    import subprocess

    pytest.importorskip("torch")
    from biggan_zoo.compiler.reserved import MODULE_ATTRIBUTES

    code = ("import json, torch, torch.fx as fx; g = fx.Graph(); g.output(g.placeholder('x')); "
            "m = fx.GraphModule(torch.nn.Module(), g); "
            "print(json.dumps(sorted(set(dir(torch.nn.Module())) | set(dir(m)) | set(dir(fx.GraphModule)))))")
    names = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                      check=True).stdout)
    live = {n for n in names if n.isidentifier() and not (n.startswith("__") and n.endswith("__"))}
    missing = sorted(live - MODULE_ATTRIBUTES)
    assert not missing, (f"torch added module attributes {missing}: add them to MODULE_ATTRIBUTES in "
                         "compiler/reserved.py (regenerate the list from dir(nn.Module()) and dir(GraphModule))")


def test_reserved_names_need_no_torch():
    import subprocess

    code = ("import sys; from biggan_zoo.compiler import reserved; "
            "assert 'torch' not in sys.modules; print(len(reserved.MODULE_ATTRIBUTES))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert int(out.stdout) > 100


# --- 8. unusual but valid input, non-finite values, quotes, did-you-mean ---------------------------

def _json_spec() -> str:
    return json.dumps(load_spec(ROOT / "specs" / "biggan32.yaml").data, indent="\t")


@pytest.mark.parametrize("name, make", [
    ("bom.json", lambda: b"\xef\xbb\xbf" + _json_spec().encode()),
    ("crlf.json", lambda: _json_spec().replace("\n", "\r\n").encode()),
    ("bom.yaml", lambda: b"\xef\xbb\xbf" + BIGGAN32.encode()),
    ("crlf.yaml", lambda: BIGGAN32.replace("\n", "\r\n").encode()),
    ("bom_crlf.yaml", lambda: b"\xef\xbb\xbf" + BIGGAN32.replace("\n", "\r\n").encode()),
    ("min.json", lambda: json.dumps(json.loads(_json_spec()), separators=(",", ":")).encode()),
    ("escapes.json", lambda: _json_spec().replace('"description": "', '"description": "\\ud83d\\ude00 \\/ ').encode()),
])
def test_unusual_valid_input_is_accepted(tmp_path, name, make):
    path = tmp_path / name
    path.write_bytes(make())
    code, out, err = check(path)
    assert code == 0, err
    assert "ok" in out


@pytest.mark.parametrize("setting", [
    "train.lr.G=.inf", "train.lr.D=.nan", "train.eps=.inf", "train.betas=[0.0, .nan]",
    "train.ortho_reg.beta=.inf", "train.ema.decay=.nan", "graphs.G.settings.sn_eps=.inf", "vars.ch=.inf",
])
def test_non_finite_values_are_refused_at_check_time(setting):
    code, _, err = check(ROOT / "specs" / "biggan32.yaml", "--set", setting)
    assert code == 1 and "not a finite number" in err and "Traceback" not in err, err


def test_non_finite_in_the_file_is_located(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text(BIGGAN32.replace("  eps: 1.0e-8", "  eps: .inf"))
    err = refused(path, "train.eps", "not a finite number")
    line = BIGGAN32.splitlines().index("  eps: 1.0e-8") + 1
    assert err.splitlines()[0].startswith(f"{path}:{line}:8:"), err


def test_long_lines_are_quoted_as_one_screen_line(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("spec_version: 1\ndescription: x\nvars: {" + ", ".join(f"a{i}: {i}" for i in range(3000))
                    + ', bad: "${nope}"}\n')
    err = refused(path, "unknown name 'nope'")
    quoted, caret = err.splitlines()[1:3]
    assert len(quoted) <= limits.MAX_QUOTE_CHARS + 12 and len(caret) <= limits.MAX_QUOTE_CHARS + 12
    assert quoted[caret.index("^"):].startswith("nope")


def test_long_names_are_clipped_in_messages(tmp_path):
    path = tmp_path / "s.yaml"
    long = "n" * 50_000
    path.write_text(BIGGAN32.replace("inputs: [stem, y]", f"inputs: [{long}, y]"))
    err = refused(path, "unknown")
    assert all(len(line) <= 400 for line in err.splitlines())


@pytest.mark.parametrize("typo, meant", [("biggan129", "biggan128"), ("bigan128", "biggan128"),
                                         ("biggan_dep128", "biggan_deep128"), ("sagan12", "sagan128")])
def test_did_you_mean_ranks_by_edits(typo, meant):
    code, _, err = check(typo)
    assert code == 1 and f"did you mean '{meant}'" in err, err
