#!/usr/bin/env bash
# Run llama-stack's integration plans against relaystack, with llama-stack's options.
#
#   ./scripts/integration-tests.sh --stack-config server:ci-tests --setup together \
#       --subdirs inference --pattern openai [--inference-mode replay|record|live] [-- <pytest args>]
#   ./scripts/integration-tests.sh --setup ollama --subdirs inference     # llama-stack v0.7.1's
#
# maps onto
#
#   pytest tests/reference_plan -k openai --record-mode replay           # --setup together
#   pytest tests/reference_plan_v071 --record-mode replay                 # --setup ollama
#
# Each plan starts its own `relaystack run` over its recordings (tests/recordings/together,
# tests/recordings/llamastack-v0.7.1). Replay needs no key; record and live call the real
# services: Together needs TOGETHER_API_KEY, the Ollama plan an Ollama at OLLAMA_URL.
set -euo pipefail

usage() {
    sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'
    cat <<'EOF'
Options:
  --stack-config CFG     server:ci-tests (the plan's built-in run config), or server:PATH / PATH
                         to a run.yaml of your own; library mode is not supported
  --setup NAME           together (the seed's plan) or ollama (llama-stack v0.7.1's inference run)
  --subdirs LIST         comma-separated; inference is the only subdir
  --pattern EXPR         pytest -k expression
  --inference-mode MODE  replay (default), record or live
  --suite NAME           accepted for compatibility; only the base suite exists
  -h, --help             this text
EOF
}

die() { echo "integration-tests.sh: $*" >&2; exit 2; }

stack_config="server:ci-tests"
setup="together"
subdirs="inference"
pattern=""
mode="${RELAYSTACK_RECORD_MODE:-${LLAMA_STACK_TEST_INFERENCE_MODE:-replay}}"
extra=()

while [[ $# -gt 0 ]]; do
    case "$1" in
        --stack-config) stack_config="${2:?--stack-config needs a value}"; shift 2 ;;
        --setup) setup="${2:?--setup needs a value}"; shift 2 ;;
        --subdirs) subdirs="${2:?--subdirs needs a value}"; shift 2 ;;
        --pattern) pattern="${2:?--pattern needs a value}"; shift 2 ;;
        --inference-mode) mode="${2:?--inference-mode needs a value}"; shift 2 ;;
        --suite) shift 2 ;;
        -h|--help) usage; exit 0 ;;
        --) shift; extra+=("$@"); break ;;
        *) die "unknown option '$1' (see --help)" ;;
    esac
done

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"

case "$setup" in
    together) plan="tests/reference_plan" ;;
    ollama) plan="tests/reference_plan_v071" ;;
    *) die "--setup $setup: the plans here are 'together' and 'ollama'" ;;
esac
case "$mode" in replay|record|live) ;; *) die "--inference-mode $mode: choose replay, record or live" ;; esac

case "$stack_config" in
    server:ci-tests|ci-tests) unset RELAYSTACK_REFERENCE_CONFIG ;;
    server:*) export RELAYSTACK_REFERENCE_CONFIG="$(realpath "${stack_config#server:}")" ;;
    library:*|*::*) die "--stack-config $stack_config: relaystack runs as a server only (use server:...)" ;;
    *) export RELAYSTACK_REFERENCE_CONFIG="$(realpath "$stack_config")" ;;
esac
if [[ -n "${RELAYSTACK_REFERENCE_CONFIG:-}" && ! -f "$RELAYSTACK_REFERENCE_CONFIG" ]]; then
    die "--stack-config: no such file $RELAYSTACK_REFERENCE_CONFIG"
fi

paths=()
IFS=',' read -ra wanted <<< "$subdirs"
for subdir in "${wanted[@]}"; do
    case "$subdir" in
        inference) paths+=("$plan") ;;
        "") ;;
        *) die "--subdirs: '$subdir' has no plan here (only inference)" ;;
    esac
done
[[ ${#paths[@]} -gt 0 ]] || die "--subdirs: nothing to run"

if [[ "$setup" == "together" && "$mode" != "replay" && -z "${TOGETHER_API_KEY:-}" ]]; then
    die "--inference-mode $mode calls api.together.xyz: set TOGETHER_API_KEY"
fi

python="${PYTHON:-$repo/.venv/bin/python}"
[[ -x "$python" ]] || python="$(command -v python3)"

args=("${paths[@]}")
[[ -n "$pattern" ]] && args+=(-k "$pattern")
# the recording plugin's option when it is installed; the environment variable otherwise
if "$python" -m pytest --help 2>/dev/null | grep -q -- '--record-mode'; then
    args+=(--record-mode "$mode")
fi
export RELAYSTACK_RECORD_MODE="$mode"

echo "integration-tests.sh: pytest ${args[*]} ${extra[*]:-} (inference mode: $mode)" >&2
exec "$python" -m pytest "${args[@]}" "${extra[@]}"
