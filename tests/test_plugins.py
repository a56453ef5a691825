"""Plugin ops (the `zoo.ops` entry-point group): the example plugin works end to end like built-in ops,
and a plugin that is broken is skipped with a warning that names it, never a traceback.

The registry-wide tests of tests/test_ops.py run over the example plugin's ops too, because they are
in the registry whenever the plugin is installed (`make venv` installs examples/zoo-plugin-example).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import jsonschema
import pytest
import yaml

from biggan_zoo.compiler import plugins
from biggan_zoo.compiler.api import load_spec
from biggan_zoo.compiler.diagnostics import SpecError
from biggan_zoo.compiler.ops import REGISTRY

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "zoo-plugin-example"
EXAMPLE_SPEC = EXAMPLE / "specs" / "demo32_pixel_norm.yaml"
EXAMPLE_OPS = ("noise_injection", "pixel_norm")
INSTALL = f"install the example plugin: pip install -e {EXAMPLE.relative_to(ROOT)} (`make venv` does)"


def zoo(*args: str, env: dict | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "biggan_zoo", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, cwd=cwd, timeout=300)


@pytest.fixture
def example_installed() -> None:
    missing = [tag for tag in EXAMPLE_OPS if tag not in REGISTRY]
    assert not missing, f"plugin ops {missing} are not registered; {INSTALL}"


def test_example_ops_are_registered_with_their_origin(example_installed) -> None:
    for tag in EXAMPLE_OPS:
        assert plugins.ORIGIN[tag] == "plugin zoo-example-ops 0.1.0"
    listed = zoo("list", "--ops")
    assert listed.returncode == 0, listed.stderr
    rows = {line.split()[0]: line for line in listed.stdout.splitlines()[1:]}
    assert "plugin zoo-example-ops 0.1.0" in rows["pixel_norm"] and "builtin" in rows["g_block"]
    assert set(rows) == set(REGISTRY)


def test_example_spec_checks_builds_and_trains(example_installed, tmp_path: Path) -> None:
    spec = load_spec(EXAMPLE_SPEC)
    ops = {node["op"] for node in spec.data["graphs"]["G"]["nodes"].values()}
    assert set(EXAMPLE_OPS) <= ops
    built = zoo("build", str(EXAMPLE_SPEC))
    assert built.returncode == 0, built.stderr
    assert [line.split()[1] for line in built.stdout.splitlines() if line.startswith("  noise")] \
        == ["noise_injection", "noise_injection"]
    trained = zoo("train", str(EXAMPLE_SPEC), "--steps", "2", "--out", str(tmp_path / "run"), "--no-bar")
    assert trained.returncode == 0, trained.stderr
    assert list((tmp_path / "run").glob("checkpoints/*")), "no checkpoint written"


def test_schema_has_plugin_ops_unless_builtin(example_installed) -> None:
    from biggan_zoo.commands.schema import schema_text

    with_plugins, builtin = (json.loads(schema_text("authored", plugins=p)) for p in (True, False))
    assert "pixel_norm" in json.dumps(with_plugins) and "pixel_norm" not in json.dumps(builtin)
    assert set(REGISTRY) >= set(EXAMPLE_OPS), "builtin_ops_only() must restore the registry"
    # the authored schema with the plugin's ops accepts the example's file as written (it is partial)
    text = yaml.safe_load(EXAMPLE_SPEC.read_text())
    jsonschema.validate(text, with_plugins)
    text["graphs"]["G"]["nodes"]["normed"]["epsilon"] = 1e-8  # a misspelt field of a plugin op
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(text, with_plugins)


def test_plugin_ops_are_validated_like_builtin_ones(example_installed, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(EXAMPLE_SPEC.read_text().replace("{op: pixel_norm, inputs: [block3]}",
                                                     "{op: pixel_norm, inputs: [block3], eps: -1}"))
    with pytest.raises(SpecError) as e:
        load_spec(bad)
    assert "eps" in str(e.value) and f"{bad}:" in e.value.render()


def test_without_plugins_the_example_spec_is_an_unknown_op_saying_why() -> None:
    result = zoo("check", str(EXAMPLE_SPEC), env={"ZOO_NO_PLUGINS": "1"})
    assert result.returncode == 1
    assert "unknown op 'noise_injection'" in result.stderr and "ZOO_NO_PLUGINS is set" in result.stderr
    assert "Traceback" not in result.stderr
    listed = zoo("list", "--ops", env={"ZOO_NO_PLUGINS": "1"})
    assert "pixel_norm" not in listed.stdout and "g_block" in listed.stdout


class _Dist:
    name, version = "bad-ops", "9.9"


def _entry(name: str, value: str) -> metadata.EntryPoint:
    entry = metadata.EntryPoint(name=name, value=value, group=plugins.GROUP)
    return entry._for(_Dist())  # what importlib.metadata does for an installed distribution


@pytest.fixture
def clean_registry():
    saved = dict(REGISTRY), dict(plugins.ORIGIN), dict(plugins.FAILED)
    yield
    for live, old in zip((REGISTRY, plugins.ORIGIN, plugins.FAILED), saved):
        live.clear()
        live.update(old)


BROKEN = {  # entry point -> what the warning must say
    ("relu", "zoo_example_ops.pixel_norm:PixelNorm"): "already registered by builtin",
    ("Bad-Name", "zoo_example_ops.pixel_norm:PixelNorm"): "must be lower case",
    ("pixel_normal", "zoo_example_ops.pixel_norm:PixelNorm"): "op tag is 'pixel_norm'",
    ("not_a_class", "json:dumps"): "not a subclass",
    ("no_module", "no_such_module_anywhere:Op"): "ModuleNotFoundError",
    ("no_attribute", "zoo_example_ops.pixel_norm:Missing"): "AttributeError",
    ("bare_op", "biggan_zoo.compiler.ops.base:Op"): "not a subclass",
}


@pytest.mark.parametrize("name,value", list(BROKEN), ids=[n for n, _ in BROKEN])
def test_a_broken_entry_point_is_skipped_with_a_warning_naming_it(clean_registry, example_installed,
                                                                  name: str, value: str) -> None:
    before = dict(REGISTRY)
    with pytest.warns(plugins.PluginWarning) as caught:
        plugins.register_entry_points([_entry(name, value)])
    message = str(caught[0].message)
    assert f"plugin op '{name}' of bad-ops 9.9 was not loaded" in message and BROKEN[(name, value)] in message
    assert REGISTRY == before
    assert plugins.unknown_op_hint(name, "known ops: ...") == plugins.FAILED[name]


def test_an_op_class_without_a_shape_rule_or_with_a_when_field_is_refused(clean_registry) -> None:
    from typing import Literal

    from biggan_zoo.compiler.ops import Op

    class NoInfer(Op):
        """An op that forgot its shape rule."""
        op: Literal["no_infer"] = "no_infer"
        example = ({}, [])

    with pytest.raises(plugins.PluginError, match="does not define `infer`"):
        plugins._check("no_infer", NoInfer)

    class TakesWhen(NoInfer):
        """An op with a field that template nodes use for their condition."""
        op: Literal["takes_when"] = "takes_when"
        when: bool = True

    with pytest.raises(plugins.PluginError, match="field named `when`"):
        plugins._check("takes_when", TakesWhen)


def test_a_broken_installed_plugin_warns_once_per_op_and_zoo_still_works(tmp_path: Path) -> None:
    """A real distribution on the path (a dist-info folder) whose module raises on import."""
    info = tmp_path / "broken_ops-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-ops\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[zoo.ops]\nwobble = broken_ops_mod:Wobble\n")
    (tmp_path / "broken_ops_mod.py").write_text("raise RuntimeError('boom at import')\n")
    spec = tmp_path / "use.yaml"
    spec.write_text("extends: demo32.yaml\ngraphs:\n  G:\n    nodes:\n"
                    "      w: {op: wobble, inputs: [block3]}\n      output_layer: {inputs: [w]}\n")
    env = {"PYTHONPATH": str(tmp_path)}
    fine = zoo("check", "demo32", env=env)
    assert fine.returncode == 0 and "Traceback" not in fine.stderr
    assert fine.stderr.count("warning: plugin op 'wobble' of broken-ops 0.1 was not loaded") == 1
    used = zoo("check", str(spec), env=env)
    assert used.returncode == 1 and "Traceback" not in used.stderr
    assert f"{spec}:5:15: error: graphs.G.nodes.w.op: unknown op 'wobble'" in used.stderr
    assert "hint: plugin op 'wobble' of broken-ops 0.1 was not loaded: importing broken_ops_mod:Wobble " \
           "raised RuntimeError: boom at import" in used.stderr
