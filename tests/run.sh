#!/usr/bin/env bash
# The test command: builds the solution and runs every test. Needs ../shared beside the repository
# (third-party models with golden outputs). Extra arguments go to `dotnet test` (e.g. --filter Conformance).
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ ! -d ../shared/models ]]; then
  echo "error: ../shared/models not found beside the repository; the tests read their golden data from there" >&2
  exit 2
fi
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
dotnet test InferenceServer.sln --nologo "$@" 2>&1 | tee "$log" || status=$?
# One plain summary line over every test assembly: "N passed, N failed, N skipped".
awk '/^(Passed|Failed)!/ { for (i = 1; i <= NF; i++) { gsub(",", "", $(i+1)); if ($i == "Passed:") p += $(i+1); if ($i == "Failed:") f += $(i+1); if ($i == "Skipped:") s += $(i+1) } }
     END { printf "%d passed, %d failed, %d skipped\n", p, f, s }' "$log"
exit "$status"
