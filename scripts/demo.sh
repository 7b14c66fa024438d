#!/usr/bin/env bash
# The README demo: curate the bundled sample data end to end, offline.
set -euo pipefail
cd "$(dirname "$0")/.."
ftdata() { .venv/bin/ftdata "$@"; }
export FTDATA_STORE="${FTDATA_STORE:-datasets}"

# 200 synthetic rows aimed at the smallest categories: about 2 minutes on 2 idle CPU cores with the
# bundled 135M model (twice that or more while other work keeps a core busy); SYNTH=60 for a quicker run.
echo "== 1. Curate sample_data/raw.csv: validate, dedup, ${SYNTH:-200} synthetic rows, tokens + cost, balance, split" >&2
ftdata curate sample_data/raw.csv --name support \
    --label-col category --system-file sample_data/system_prompt.txt \
    --dedup --synth "${SYNTH:-200}" --synth-balance --balance cap --balance-cap 120 --split 90/10/0

echo >&2; echo "== 2. The version" >&2
ftdata show support@latest
ftdata verify support@latest

echo >&2; echo "== 3. Pre-commit check of a chat JSONL with malformed lines (exit 3 = problems found)" >&2
ftdata check sample_data/chat.jsonl && status=0 || status=$?
echo "ftdata check exited $status" >&2

echo >&2; echo "== 4. Preview an OpenAI fine-tuning job offline" >&2
ftdata train openai support@latest --model gpt-4.1-mini-2025-04-14 --dry-run --yes
