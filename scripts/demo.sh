#!/usr/bin/env bash
# The README demo: curate the bundled sample data end to end, offline.
set -euo pipefail
cd "$(dirname "$0")/.."
ftdata() { .venv/bin/ftdata "$@"; }
export FTDATA_STORE="${FTDATA_STORE:-datasets}"

# 60 synthetic rows aimed at the smallest categories keep the demo to a few minutes on 2 CPU cores;
# --synth 200 works the same way and takes 5-15 minutes with the bundled 135M model here.
echo "== 1. Curate sample_data/raw.csv: validate, dedup, 60 synthetic rows, tokens + cost, balance, split" >&2
ftdata curate sample_data/raw.csv --name support \
    --label-col category --system-file sample_data/system_prompt.txt \
    --dedup --synth "${SYNTH:-60}" --synth-balance --balance cap --balance-cap 120 --split 90/10/0

echo >&2; echo "== 2. The version" >&2
ftdata show support@latest
ftdata verify support@latest

echo >&2; echo "== 3. Pre-commit check of a chat JSONL with malformed lines (exit 3 = problems found)" >&2
ftdata check sample_data/chat.jsonl && status=0 || status=$?
echo "ftdata check exited $status" >&2

echo >&2; echo "== 4. Preview an OpenAI fine-tuning job offline" >&2
ftdata train openai support@latest --model gpt-4.1-mini-2025-04-14 --dry-run --yes
