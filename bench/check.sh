#!/usr/bin/env bash
# bench/check.sh: what `layerize check` costs on an unchanged layer of ~30 000 files, against
# a full re-hash of the same layer (`check --verify-content`) and against a `find -printf` stat
# walk of it (the floor for anything that looks at every entry). Target: check <= 1.5x find.
#
# Run after `cargo build --release`. Builds its tree under bench/work/check (gitignored; kept
# between runs): one layer `bench/node:modules` of 30 000 files (lognormal sizes, median ~2.4 KB)
# in ~1 500 directories, committed once; then hyperfine, warm cache.
# Needs: hyperfine, python3, jq. Environment: BENCH_RUNS (default 10), LAYERIZE (binary).
# Prints the markdown table (the one in docs/BENCHMARKS.md, section "check") and the ratio.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=$PWD/${LAYERIZE:-target/release/layerize}
work=$PWD/bench/work/check
runs=${BENCH_RUNS:-10}
[ -x "$bin" ] || { echo "bench/check.sh: build first: cargo build --release" >&2; exit 2; }
for tool in hyperfine python3 jq; do
  command -v "$tool" >/dev/null || { echo "bench/check.sh: $tool is missing" >&2; exit 2; }
done
layers=$work/layers
layer=$layers/bench_node/modules
if [ ! -f "$work/made" ]; then
  rm -rf "$work"
  python3 - "$layer" <<'PY'
import os, random, sys
rng = random.Random(7)
root = sys.argv[1]
files = 0
pkg = 0
while files < 30000:
    base = os.path.join(root, f"pkg-{pkg:04d}")
    pkg += 1
    for i in range(rng.randint(5, 35)):
        sub = ["", "lib", "dist", "src", "lib/util"][i % 5]
        path = os.path.join(base, sub, f"m{i}.js")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        size = min(int(rng.lognormvariate(7.8, 1.2)), 400_000)
        with open(path, "wb") as f:
            f.write(rng.randbytes(size))
        files += 1
PY
  printf '[types]\nlaunch = true\n' >"$layers/bench_node/modules.toml"
  touch "$work/made"
fi
"$bin" commit --layers "$layers" --buildpack bench/node --json
# Fails (exit 3) if the tree is not the committed one: the timing below is of the no-change path.
"$bin" check --layers "$layers" --by bench/other --policy fail

hyperfine --style basic --warmup 3 --runs "$runs" \
  --export-markdown "$work/check.md" --export-json "$work/check.json" \
  -n 'find -printf (stat walk)' "find $layer -printf '%p %s %T@ %C@ %i %m\n' >/dev/null" \
  -n 'layerize check' "$bin check --layers $layers --by bench/other --policy fail" \
  -n 'layerize check --verify-content' \
  "$bin check --layers $layers --by bench/other --policy fail --verify-content"
sed -e "s#$layers#LAYERS#g" -e "s#$bin#layerize#g" "$work/check.md"
jq -r '.results | "check / find = \(.[1].median / .[0].median * 100 | round / 100)x, verify-content / find = \(.[2].median / .[0].median * 100 | round / 100)x (medians)"' "$work/check.json"
echo "entries: $(find "$layer" | wc -l), bytes: $(du -sb "$layer" | cut -f1)"
