#!/usr/bin/env bash
# The fair benchmark suite in one command: fetch, gateway, charts and quota admission at
# full size, each in one run of the checked-out code, results as Markdown on stdout and
# JSON in OUT_DIR.
#
#   benchmarks/run.sh            # full size (about an hour on 2 quiet CPUs)
#   benchmarks/run.sh quick      # small sizes, a few minutes: does everything still work?
#
# PYTHON picks the environment (default /opt/datahub-dev/venv/bin/python, else
# /opt/datahub/venv/bin/python); OUT_DIR where the JSON goes (default a new temp dir).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
if [[ -z "${PYTHON:-}" ]]; then
  PYTHON=/opt/datahub-dev/venv/bin/python
  [[ -x "$PYTHON" ]] || PYTHON=/opt/datahub/venv/bin/python
fi
out="${OUT_DIR:-$(mktemp -d -t datahub-bench-XXXXXX)}"
mkdir -p "$out"
echo "JSON results in $out" >&2

case "${1:-full}" in
  quick)
    "$PYTHON" "$here/fetch.py" --rows 100000 --runs 2 --json "$out/fetch.json"
    "$PYTHON" "$here/gateway.py" --queries 30 --warmup 5 --clients 10 --each 5 --rounds 2 \
      --json "$out/gateway.json"
    "$PYTHON" "$here/charts.py" --rows 100000 --runs 2
    ;;
  full)
    "$PYTHON" "$here/fetch.py" --rows 1000000 --runs 5 --json "$out/fetch-1m.json"
    "$PYTHON" "$here/gateway.py" --json "$out/gateway.json"
    "$PYTHON" "$here/charts.py"
    "$PYTHON" "$here/admission.py"
    # Trino's local stack cannot sort 5M rows within its query memory: no ORDER BY, the
    # frames are compared as sets of rows. Last: a run that hangs is killed after
    # --run-timeout and fails the suite.
    "$PYTHON" "$here/fetch.py" --rows 5000000 --runs 3 --unordered --json "$out/fetch-5m.json" \
      --competitors datahub-gateway,datahub-gateway-direct,trino-gateway,trino-direct,drain,floor
    ;;
  *)
    echo "usage: $0 [quick|full]" >&2
    exit 2
    ;;
esac
