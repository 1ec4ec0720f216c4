#!/usr/bin/env bash
# Build the real InvokeAI server's environment for the tests that register embeddings with it
# (tests/invokeai_server.py). It goes to $INVOKEAI_ENV, else .invokeai-env/ in the checkout (about
# 1.8 GB, ignored by git); run again, it does nothing while the pinned version is there.
set -euo pipefail
cd "$(dirname "$0")/.."

REQUIREMENTS=tools/invokeai-server-requirements.txt
ENV_DIR="${INVOKEAI_ENV:-$PWD/.invokeai-env}"
VERSION="$(sed -n 's/^InvokeAI==//p' "$REQUIREMENTS")"

if [ -x "$ENV_DIR/bin/python" ] && "$ENV_DIR/bin/python" - "$VERSION" <<'PY' 2>/dev/null
import importlib.metadata, sys
sys.exit(importlib.metadata.version("InvokeAI") != sys.argv[1])
PY
then
    echo "InvokeAI $VERSION is already built in $ENV_DIR"
    exit 0
fi

python3 -m venv "$ENV_DIR"
"$ENV_DIR/bin/pip" install --quiet --upgrade pip
# The CPU build of torch first; --no-deps then keeps InvokeAI's pins from replacing it with CUDA.
"$ENV_DIR/bin/pip" install --quiet torch==2.13.0
"$ENV_DIR/bin/pip" install --quiet --no-deps -r "$REQUIREMENTS"
echo "InvokeAI $VERSION is built in $ENV_DIR"
