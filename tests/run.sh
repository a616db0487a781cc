#!/usr/bin/env bash
# The test command: builds the solution and runs every test. Needs ../shared beside the repository
# (third-party models with golden outputs). Extra arguments go to `dotnet test` (e.g. --filter Conformance).
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ ! -d ../shared/models ]]; then
  echo "error: ../shared/models not found beside the repository; the tests read their golden data from there" >&2
  exit 2
fi
exec dotnet test InferenceServer.sln --nologo "$@"
