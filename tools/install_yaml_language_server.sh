#!/bin/sh
# Install the editor's YAML server (npm) where tests/test_editor_schema.py finds it:
#   tools/install_yaml_language_server.sh [DIR]      (default: .tools/yaml-language-server)
# The test drives it over stdio as an editor does; without node or this install it is skipped.
set -eu
VERSION=1.25.0
DIR=${1:-"$(dirname "$0")/../.tools/yaml-language-server"}
command -v npm >/dev/null || { echo "npm is not installed (apt-get install nodejs npm)" >&2; exit 1; }
mkdir -p "$DIR"
npm install --prefix "$DIR" --no-audit --no-fund --loglevel=error "yaml-language-server@$VERSION"
echo "yaml-language-server $VERSION in $DIR/node_modules/yaml-language-server"
