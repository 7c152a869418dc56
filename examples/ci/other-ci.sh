#!/usr/bin/env bash
# portico in any CI system, as plain commands. Set PORTICO_DATABASE_URL and
# PORTICO_MANIFESTS (the folder of manifests) in the job's environment.
set -euo pipefail

case "${1:-}" in
  review)
    # On a merge/pull request: validate, plan, keep the plan and its digest as artifacts.
    portico validate
    set +e
    portico plan --detailed-exitcode --out plan.json | tee plan.txt
    code=${PIPESTATUS[0]}
    set -e
    [ "$code" -eq 0 ] || [ "$code" -eq 2 ] || exit "$code"
    portico plan --format markdown > plan.md       # post this as the review comment
    grep '^Plan digest:' plan.txt || echo "No changes."
    ;;
  merge)
    # After merge: apply only the reviewed plan. Either apply the saved plan artifact
    # (refused with exit 3 if the live database changed since) ...
    if [ -f plan.json ]; then
      portico apply --plan plan.json --auto-approve
    else
      # ... or recompute and require the reviewed digest (exit 3 if it differs).
      portico apply --auto-approve --expect-digest "${REVIEWED_DIGEST:?set REVIEWED_DIGEST}"
    fi
    ;;
  *)
    echo "usage: $0 review|merge" >&2
    exit 64
    ;;
esac
