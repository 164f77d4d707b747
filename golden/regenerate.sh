#!/usr/bin/env bash
# Regenerates golden/trees.json with the independent Go oracle (reference/lifecycle_tar.go:
# Go's archive/tar following lifecycle's rules). Needs Go (Debian: golang-go); the tests do not.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
"$here/make-trees.sh" "$work/trees" plain
(cd "$here/reference" && go build -o "$work/lifecycle_tar" lifecycle_tar.go)
{
  echo '{'
  echo '  "about": "diffIDs of the trees golden/make-trees.sh builds, written as /layers/golden_bp/<tree> by Go archive/tar under lifecycle rules (golden/reference/lifecycle_tar.go); ancestors /layers and /layers/golden_bp are 0755 root:root. Regenerate with golden/regenerate.sh.",'
  echo '  "expected": ['
  first=1
  for tree in $(ls "$work/trees"); do
    for owner in "0 0" "1000 1000" "3000000 3000001"; do
      set -- $owner
      id=$("$work/lifecycle_tar" "$work/trees/$tree" "/layers/golden_bp/$tree" "$1" "$2")
      [ $first = 1 ] || echo ','
      first=0
      printf '    {"tree": "%s", "uid": %s, "gid": %s, "diff_id": "%s"}' "$tree" "$1" "$2" "$id"
    done
  done
  echo; echo '  ]'; echo '}'
} > "$here/trees.json"
echo "wrote $here/trees.json"
