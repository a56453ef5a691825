#!/usr/bin/env bash
# The wheel as a new user gets it: build it, install it (torch==2.13.0 first) into a fresh venv, and from
# a temporary folder outside the checkout use the catalog, extends, train, export, convert and sample.
# Exits non-zero at the first step that fails, naming it.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PYTHON="${PYTHON:-python3.11}"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/zoo-wheel-check.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
step() { echo "wheel check: $*"; }
fail() { echo "wheel check FAILED: $*" >&2; exit 1; }

step "building the wheel in a fresh venv"
"$PYTHON" -m venv "$WORK/venv"
BIN="$WORK/venv/bin"
"$BIN/pip" wheel -q --no-deps "$ROOT" -w "$WORK/wheel" >"$WORK/build.log" 2>&1 || { cat "$WORK/build.log"; fail "pip wheel"; }
WHEEL="$(ls "$WORK"/wheel/biggan_zoo-*.whl)"
step "installing torch==2.13.0, then $(basename "$WHEEL")"
"$BIN/pip" install -q torch==2.13.0 >"$WORK/install.log" 2>&1 || { cat "$WORK/install.log"; fail "pip install torch"; }
"$BIN/pip" install -q "$WHEEL" >>"$WORK/install.log" 2>&1 || { cat "$WORK/install.log"; fail "pip install the wheel"; }

mkdir "$WORK/use" && cd "$WORK/use"  # nothing of the checkout is reachable from here
export PATH="$BIN:$PATH"
unset ZOO_CATALOG PYTHONPATH

step "the package is the installed one, not the checkout"
where="$(python -c 'import biggan_zoo, biggan_zoo.compiler.catalog as c; print(biggan_zoo.__file__, c.BUILTIN)')"
case "$where" in "$WORK/venv/"*) ;; *) fail "biggan_zoo imported from $where";; esac
zoo --version | grep -qx "zoo $(python -c 'import importlib.metadata as m; print(m.version("biggan-zoo"))')" \
  || fail "zoo --version"

step "zoo list shows every catalog entry"
zoo list > list.txt || fail "zoo list"
expected="$(cd "$ROOT/specs" && ls *.yaml | sed 's/\.yaml$//' | sort)"
listed="$(tail -n +2 list.txt | awk '$2 == "builtin" {print $1}' | sort)"
[ "$expected" = "$listed" ] || { diff <(echo "$expected") <(echo "$listed") || true; fail "zoo list entries differ from specs/"; }
if grep -E '^\S+ +builtin +- ' list.txt; then fail "a catalog entry does not check"; fi

step "zoo build biggan512"
zoo build biggan512 > build.txt || fail "zoo build biggan512"
grep -q "peak" build.txt || fail "zoo build biggan512 printed no memory estimate"

step "a variant that extends a catalog spec, by path and from a catalog folder"
mkdir mine
printf 'extends: biggan128.yaml\ndescription: biggan128 at ch 32 (a user variant)\nvars: {ch: 32}\n' > mine/narrow128.yaml
zoo check mine/narrow128.yaml || fail "zoo check of a variant"
zoo build mine/narrow128.yaml > variant.txt || fail "zoo build of a variant"
ZOO_CATALOG="$PWD/mine" zoo build narrow128 --json > variant.json || fail "zoo build by name from \$ZOO_CATALOG"
zoo list --no-params --catalog mine | grep -Eq "^narrow128 +mine " || fail "zoo list --catalog shows the variant"

step "zoo train demo32 --steps 2"
zoo train demo32 --steps 2 --out runs/demo32 --no-bar > train.txt 2>&1 || { cat train.txt; fail "zoo train demo32"; }
zoo export runs/demo32 --out demo32.safetensors --hub hub > export.txt || fail "zoo export"

step "zoo convert both ways"
zoo convert demo32.safetensors --to biggan-pytorch --out exported > convert.txt || fail "zoo convert --to biggan-pytorch"
[ -f exported/G.pth ] && [ -f exported/D.pth ] || fail "zoo convert --to wrote no G.pth/D.pth"
zoo convert exported --from biggan-pytorch --spec demo32 --out back.safetensors >> convert.txt \
  || fail "zoo convert --from biggan-pytorch"
if zoo convert missing_folder --from biggan-pytorch --spec demo32 --out x.safetensors 2> err.txt; then
  fail "zoo convert of a missing folder succeeded"
fi
if grep -q Traceback err.txt || [ "$(wc -l < err.txt)" -ne 1 ]; then cat err.txt; fail "zoo convert error is not one line"; fi

step "zoo sample on exported, converted and hub models"
for source in demo32.safetensors back.safetensors hub; do
  zoo sample "$source" --classes 0,3,7 --n 2 --truncation 0.7 --out "grid_${source%%.*}.png" \
      --tensors "t_${source%%.*}.safetensors" 2>/dev/null || fail "zoo sample $source"
done
python - <<'EOF' || fail "the samples differ"
import torch
from safetensors.torch import load_file

import biggan_zoo as zoo

exported, converted, hub = (load_file(f"t_{name}.safetensors")["images_t0"] for name in ("demo32", "back", "hub"))
assert torch.equal(exported, converted), "convert --to then --from changed the weights"
assert torch.equal(exported, hub), "the hub folder differs from the weights file"
model = zoo.build("hub")
assert torch.equal(model.sample([0, 3, 7], per_class=2, truncation=0.7), exported), "zoo.build differs from zoo sample"
EOF

step "a plugin package adds ops (examples/zoo-plugin-example, installed as a wheel)"
"$BIN/pip" install -q --no-deps "$ROOT/examples/zoo-plugin-example" >>"$WORK/install.log" 2>&1 \
  || { cat "$WORK/install.log"; fail "pip install the example plugin"; }
zoo list --ops | grep -Eq "^pixel_norm +plugin zoo-example-ops " || fail "zoo list --ops shows the plugin op"
zoo build "$ROOT/examples/zoo-plugin-example/specs/demo32_pixel_norm.yaml" | grep -q " pixel_norm " \
  || fail "zoo build of the plugin's spec"
zoo schema --authored | grep -q '"pixel_norm"' || fail "zoo schema --authored has the plugin op"

step "a user's runtime/ and compiler/ folders do not shadow ours"
for name in runtime compiler zoo; do mkdir -p "$name" && echo "raise ImportError('user folder $name imported')" > "$name/__init__.py"; done
python -c 'import biggan_zoo as zoo; m = zoo.build("demo32", weights="demo32.safetensors"); assert not m.G.training' \
  || fail "zoo.build with user folders named runtime/compiler/zoo"

echo "wheel check ok: the installed wheel works from $WORK/use"
