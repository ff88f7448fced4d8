#!/usr/bin/env bash
# Optional peers for bench/run.py: llama-stack and LiteLLM, each in its own venv under
# bench/results/peers/ (not committed), configured against the bench's fake upstream by
# bench/peers/llamastack.yaml and bench/peers/litellm.yaml. run.py includes a peer only when
# its venv exists. Never run in CI: several hundred MB from PyPI, minutes of install.
#
#   bash bench/peers/setup.sh              # both
#   bash bench/peers/setup.sh litellm      # one
set -euo pipefail
cd "$(dirname "$0")/../.."

LLAMA_STACK_VERSION=${LLAMA_STACK_VERSION:-0.7.3}
LITELLM_VERSION=${LITELLM_VERSION:-1.108.7}
dest=bench/results/peers
mkdir -p "$dest"

python=${PYTHON:-}
if [ -z "$python" ]; then
  for candidate in python3.12 /root/.pyenv/versions/3.12*/bin/python3.12 python3; do
    if command -v "$candidate" >/dev/null 2>&1 && "$candidate" -c 'import sys' 2>/dev/null; then
      python=$candidate; break
    fi
  done
fi
export PIP_DISABLE_PIP_VERSION_CHECK=1

make_venv() {  # name, pip requirements...
  local name=$1; shift
  echo "==> $name: $*"
  rm -rf "${dest:?}/$name"
  "$python" -m venv "$dest/$name"
  "$dest/$name/bin/pip" install -q "$@"
}

want=${1:-all}
if [ "$want" = all ] || [ "$want" = llamastack ]; then
  # the remote::openai provider needs the openai SDK, the stores aiosqlite; mcp 2 renamed McpError
  make_venv llamastack "llama-stack==$LLAMA_STACK_VERSION" openai aiosqlite sqlalchemy "mcp<2"
fi
if [ "$want" = all ] || [ "$want" = litellm ]; then
  make_venv litellm "litellm[proxy]==$LITELLM_VERSION"
fi
echo "peers ready in $dest: python bench/run.py includes them"
