"""The schema of authored text (specs/schema.authored.json, schema.partial.json for mixins): jsonschema
over every file in specs/, and yaml-language-server (npm) driven over stdio as an editor drives it.

Install the server with tools/install_yaml_language_server.sh (or set ZOO_YAML_LANGUAGE_SERVER to its
bin/yaml-language-server); without node or the server the editor tests are skipped, saying why.
"""
from __future__ import annotations

import copy
import json
import os
import queue
import shutil
import subprocess
import threading
import time
from pathlib import Path

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
SPECS = ROOT / "specs"
FILES = sorted(SPECS.rglob("*.yaml"))
MIXINS = sorted((SPECS / "mixins").glob("*.yaml")) + sorted((SPECS / "blocks").glob("*.yaml"))  # partial files
AUTHORED = json.loads((SPECS / "schema.authored.json").read_text())
PARTIAL = json.loads((SPECS / "schema.partial.json").read_text())


@pytest.mark.parametrize("kind, name", [("authored", "schema.authored.json"), ("partial", "schema.partial.json")])
def test_authored_schema_files_are_current(kind, name):
    from biggan_zoo.commands.schema import schema_text

    assert (SPECS / name).read_text() == schema_text(kind), \
        f"specs/{name} is stale: run `zoo schema --{kind} > specs/{name}`"


def test_mixins_name_the_partial_schema():  # catalog files: tests/test_compiler.py
    for path in MIXINS:
        assert path.read_text().startswith("# yaml-language-server: $schema=../schema.partial.json\n"), path


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(SPECS)))
def test_every_file_in_specs_validates_as_written(path):
    jsonschema.Draft7Validator.check_schema(AUTHORED)
    schema = PARTIAL if path in MIXINS else AUTHORED
    errors = [e.message for e in jsonschema.Draft7Validator(schema).iter_errors(yaml.safe_load(path.read_text()))]
    assert errors == []


def _errors(data, schema=AUTHORED) -> list[str]:
    return [e.message for e in jsonschema.Draft7Validator(schema).iter_errors(data)]


BASE = yaml.safe_load((SPECS / "biggan128.yaml").read_text())


@pytest.mark.parametrize("change", [
    lambda d: d["graphs"]["G"]["nodes"]["block1"].update(upsampel=True),  # a misspelt field
    lambda d: d["graphs"]["G"]["nodes"]["block1"].update(out="wide"),     # a wrong type
    lambda d: d["graphs"]["G"]["nodes"]["block1"].pop("op"),              # a complete spec's node names its op
    lambda d: d.pop("description"),                                       # a complete spec is complete
    lambda d: d["train"].update(los="hinge"),
    lambda d: d["train"].update(loss="hinged"),
    lambda d: d["graphs"]["G"]["nodes"]["block1"].update(out="${ch"),     # not an expression
])
def test_real_errors_are_still_flagged(change):
    data = copy.deepcopy(BASE)
    change(data)
    assert _errors(data)


@pytest.mark.parametrize("variant", [
    {"extends": "biggan128.yaml", "graphs": {"G": {"nodes": {"block1": {"inputs": ["x"], "upsampel": 1}}}}},
    {"extends": "biggan128.yaml", "train": {"batch_size": "many"}},
    {"extends": ["biggan128.yaml"], "descripton": "x"},
    {"extends": []},
])
def test_partial_files_still_flag_real_errors(variant):
    assert _errors(variant)


def test_partial_files_may_delete_and_leave_out_op():
    variant = {"extends": ["biggan128.yaml", "mixins/no_shared.yaml"], "vars": {"ch": "${2 * 32}", "x": None},
               "graphs": {"G": {"nodes": {"block1": {"out": "${ch}"}, "shared": None}}}}
    assert _errors(variant) == []
    assert _errors({"graphs": {"G": {"nodes": {"shared": None}}}}, PARTIAL) == []


def test_descriptions_survive_for_hover():
    text = json.dumps(AUTHORED)
    assert "Discriminator steps per generator step" in text and "Target per-sample shape" in text


# --- the real editor server ----------------------------------------------------------------------

def _server() -> list[str]:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed (the editor test drives yaml-language-server, an npm package)")
    candidates = [os.environ.get("ZOO_YAML_LANGUAGE_SERVER", ""),
                  str(ROOT / ".tools/yaml-language-server/node_modules/yaml-language-server/bin/yaml-language-server")]
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            return [node, candidate, "--stdio"]
    found = shutil.which("yaml-language-server")
    if found:
        return [found, "--stdio"]
    pytest.skip("yaml-language-server is not installed: run tools/install_yaml_language_server.sh")


class _Editor:
    """An LSP client over the server's stdio: open documents, collect the diagnostics it publishes."""

    SETTINGS = {"yaml": {"validate": True, "hover": True, "completion": True, "schemaStore": {"enable": False},
                         "schemas": {}}}

    def __init__(self, command: list[str]) -> None:
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=subprocess.DEVNULL, cwd=ROOT)
        self.messages: queue.Queue = queue.Queue()
        self.next_id = 0
        threading.Thread(target=self._read, daemon=True).start()
        self.request("initialize", {"processId": os.getpid(), "rootUri": ROOT.as_uri(),
                                    "workspaceFolders": [{"uri": ROOT.as_uri(), "name": "zoo"}],
                                    "capabilities": {"workspace": {"configuration": True},
                                                     "textDocument": {"publishDiagnostics": {},
                                                                      "hover": {"contentFormat": ["plaintext"]}}}})
        self.notify("initialized", {})
        self.notify("workspace/didChangeConfiguration", {"settings": self.SETTINGS})

    def _read(self) -> None:
        stream = self.process.stdout
        while True:
            length = None
            while True:
                line = stream.readline()
                if not line:
                    return
                if not line.strip():
                    break
                name, _, value = line.decode().partition(":")
                if name.lower() == "content-length":
                    length = int(value)
            self.messages.put(json.loads(stream.read(length)))

    def _send(self, message: dict) -> None:
        data = json.dumps({"jsonrpc": "2.0", **message}).encode()
        self.process.stdin.write(b"Content-Length: %d\r\n\r\n%s" % (len(data), data))
        self.process.stdin.flush()

    def request(self, method: str, params: dict) -> int:
        self.next_id += 1
        self._send({"id": self.next_id, "method": method, "params": params})
        return self.next_id

    def notify(self, method: str, params: dict) -> None:
        self._send({"method": method, "params": params})

    def open(self, path: Path, text: str | None = None) -> str:
        uri = path.resolve().as_uri()
        self.notify("textDocument/didOpen", {"textDocument": {"uri": uri, "languageId": "yaml", "version": 1,
                                                              "text": path.read_text() if text is None else text}})
        return uri

    def wait(self, uris: set[str], reply_to: int | None = None, timeout: float = 60.0) -> tuple[dict, dict | None]:
        """Diagnostics per uri (the last published, after a quiet second) and the reply to `reply_to`."""
        diagnostics: dict[str, list] = {}
        reply = None
        deadline, quiet_until = time.monotonic() + timeout, None
        while time.monotonic() < deadline:
            if uris <= diagnostics.keys() and (reply_to is None or reply is not None):
                quiet_until = quiet_until or time.monotonic() + 1.0
                if time.monotonic() > quiet_until:
                    break
            try:
                message = self.messages.get(timeout=0.2)
            except queue.Empty:
                continue
            if message.get("method") == "workspace/configuration":
                self._send({"id": message["id"], "result": [self.SETTINGS["yaml"]] * len(message["params"]["items"])})
            elif "method" in message and "id" in message:  # other server requests: nothing to add
                self._send({"id": message["id"], "result": None})
            elif message.get("method") == "textDocument/publishDiagnostics":
                diagnostics[message["params"]["uri"]] = message["params"]["diagnostics"]
            elif reply_to is not None and message.get("id") == reply_to:
                reply = message
        return diagnostics, reply

    def close(self) -> None:
        self.process.kill()
        self.process.wait(timeout=10)


@pytest.fixture(scope="module")
def editor():
    client = _Editor(_server())
    yield client
    client.close()


def test_editor_shows_no_diagnostics_on_the_catalog(editor):
    uris = {editor.open(path): path for path in FILES}
    diagnostics, _ = editor.wait(set(uris))
    shown = {str(uris[u].relative_to(SPECS)): [d["message"] for d in found] for u, found in diagnostics.items() if found}
    assert set(diagnostics) >= set(uris) and shown == {}


def test_editor_shows_one_diagnostic_at_a_misspelt_field(editor):
    text = (SPECS / "biggan128_ch64.yaml").read_text() + "train: {batch_sise: 256}\n"
    line = text.splitlines().index("train: {batch_sise: 256}")
    uri = editor.open(SPECS / "typo_probe.yaml", text)  # never written: the editor sends the text
    diagnostics, _ = editor.wait({uri})
    found = diagnostics[uri]
    assert len(found) == 1, found
    assert found[0]["range"]["start"]["line"] == line and "batch_sise" in found[0]["message"]


def test_editor_hover_shows_the_field_description(editor):
    path = SPECS / "biggan128.yaml"
    lines = path.read_text().splitlines()
    line = next(i for i, text in enumerate(lines) if text.startswith("  d_steps:"))
    uri = editor.open(path)
    asked = editor.request("textDocument/hover", {"textDocument": {"uri": uri}, "position": {"line": line, "character": 4}})
    _, reply = editor.wait({uri}, reply_to=asked)
    assert reply is not None and "Discriminator steps per generator step" in json.dumps(reply.get("result"))
