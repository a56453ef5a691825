"""Mutation testing of the front end: every mutated spec is a valid build or a located SpecError.

Mutations: delete a key, rename a key (typo), retype a value, rename a reference, and at the
text level duplicate a key or a node. Nothing else may escape: no KeyError, no TypeError, no
pydantic or torch exception.
"""
import os
import tempfile
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from biggan_zoo.compiler.api import compile_graph, load_spec
from biggan_zoo.compiler.diagnostics import SpecError
from biggan_zoo.train_config import check_train

ROOT = Path(__file__).resolve().parent.parent
SEEDS = [ROOT / "tests" / "data" / "tiny.yaml"]
EXAMPLES = int(os.environ.get("ZOO_MUTATION_EXAMPLES", "2000"))
WORKDIR = Path(tempfile.mkdtemp(prefix="zoo-mutations-"))
REPLACEMENTS = [0, -1, 3, 2.5, 1e30, "", "x", "${ch * }", "${nope}", True, None, [], [1, "a"], {}, {"op": "relu"},
                "block1", "z_split.9", 10**9]


def _paths(data, prefix=()):
    yield prefix
    if isinstance(data, dict):
        for k, v in data.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(data, list):
        for i, v in enumerate(data):
            yield from _paths(v, prefix + (i,))


def _parent(data, path):
    for part in path[:-1]:
        data = data[part]
    return data


def mutate(text: str, kind: int, where: int, choice: int) -> str:
    data = yaml.safe_load(text)
    paths = [p for p in _paths(data) if p]
    path = paths[where % len(paths)]
    parent, last = _parent(data, path), path[-1]
    if kind == 0:  # delete
        del parent[last]
    elif kind == 1 and isinstance(last, str):  # rename a key with a typo
        value = parent.pop(last)
        parent[last[:-1] + chr(97 + choice % 26) if last else "x"] = value
    elif kind == 2:  # retype
        parent[last] = REPLACEMENTS[choice % len(REPLACEMENTS)]
    elif kind == 3:  # rename a reference somewhere in an inputs list
        refs = [p for p in paths if len(p) > 1 and p[-2] == "inputs"]
        if refs:
            ref = refs[choice % len(refs)]
            _parent(data, ref)[ref[-1]] = ["z", "y", "x", "shared", "block1", "block2", "linear", "z_split.1"][
                choice % 8]
    out = yaml.safe_dump(data, sort_keys=False)
    if kind == 4:  # duplicate a line (a key or a whole node) at the text level
        lines = out.splitlines()
        i = where % len(lines)
        lines.insert(i, lines[i])
        out = "\n".join(lines) + "\n"
    return out


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
@given(seed=st.sampled_from(SEEDS), kind=st.integers(0, 4), where=st.integers(0, 10**6),
       choice=st.integers(0, 10**6))
def test_mutated_spec_is_valid_or_a_located_spec_error(seed, kind, where, choice):
    text = mutate(seed.read_text(), kind, where, choice)
    path = WORKDIR / f"mutant_{os.getpid()}.yaml"
    path.write_text(text)
    try:
        spec = load_spec(path)
        check_train(spec)
    except SpecError as e:
        assert e.loc is not None, f"no location for: {e.render()}\n--- spec ---\n{text}"
        assert e.render().startswith(f"{e.loc.file}:{e.loc.line}:{e.loc.col}: error:")
        return
    for graph in spec.graphs:  # a spec that checks must also build
        compile_graph(spec, graph, device="meta")
