#!/usr/bin/env bash
# make-trees.sh ROOT [plain|shuffled]
# Builds the fixture trees of golden/trees.json under ROOT/<tree>, deterministically. The
# "shuffled" variant creates the same content in another order, with umask 077, another mtime on
# every entry and a scratch file created then removed: a reproducible layerizer gives the same
# diffID for both. Modes are always set explicitly, so umask only shows where it must not.
set -euo pipefail
root=${1:?usage: make-trees.sh ROOT [plain|shuffled]}
variant=${2:-plain}
rm -rf "$root"; mkdir -p "$root"
if [ "$variant" = shuffled ]; then umask 0077; else umask 0022; fi

rep() { printf "%${2}s" "" | tr ' ' "$1"; }           # rep CHAR N
file() { mkdir -p "$(dirname "$1")"; printf '%s' "$2" > "$1"; chmod "${3:-0644}" "$1"; }
dir() { mkdir -p "$1"; chmod "${2:-0755}" "$1"; }

# The in-image prefix of every tree is /layers/golden_bp/<tree>: 26 bytes + "/" + <tree>.
# long-names: whole entry names of 99, 100, 101, 155, 156, 255 and 300 bytes, with and without a
# place to split them into USTAR prefix and name.
long_names() {
  local t=$root/long-names base=/layers/golden_bp/long-names/  # 28 bytes
  dir "$t"
  for total in 99 100 101 155 156 255 300; do
    local n=$((total - ${#base}))
    # one component, no slash to split at (Linux names stop at 255 bytes)
    [ "$n" -gt 255 ] || file "$t/f$(rep x $((n - 1)))" "single component $total"
    local d=$((n / 2)); local r=$((n - d - 1))
    dir "$t/d$total-$(rep d $((d - ${#total} - 2)))"
    file "$t/d$total-$(rep d $((d - ${#total} - 2)))/$(rep y $r)" "split $total"
  done
  # A directory whose prefix is exactly 155 bytes and a name of 100.
  local p=$((155 - ${#base}))
  dir "$t/$(rep p $p)"
  file "$t/$(rep p $p)/$(rep n 100)" "prefix 155 name 100"
  # A symlink target longer than 100 bytes (PAX linkpath) and one of exactly 100.
  ln -s "$(rep l 101)" "$t/long-target"
  ln -s "$(rep m 100)" "$t/target-100"
}

non_utf8() {
  local t=$root/non-utf8
  dir "$t"
  file "$t/caf$(printf '\xc3\xa9')" "utf-8"
  file "$t/latin1-$(printf '\xe9')t$(printf '\xe9')" "latin-1"
  file "$t/$(printf '\xff\xfe')" "invalid"
  dir "$t/dir-$(printf '\xe2\x98\x83')"
  file "$t/dir-$(printf '\xe2\x98\x83')/inner" "snowman dir"
  ln -s "target-$(printf '\xe9')" "$t/link-to-latin1"
  file "$t/$(rep u 80)-$(printf '\xc3\xbc')-$(rep v 40)" "long non-ascii"
}

deep() {
  local t=$root/deep p
  p=$t; for i in $(seq 1 40); do p="$p/level$i"; done
  mkdir -p "$p"; find "$t" -type d -exec chmod 0755 {} +
  file "$p/bottom" "40 levels down"
  file "$t/level1/top" "near the top"
}

empty() {
  local t=$root/empty
  dir "$t"; dir "$t/empty-dir"; dir "$t/nested/empty/dirs"; chmod 0755 "$t/nested" "$t/nested/empty"
  file "$t/empty-file" ""
  file "$t/nested/zero" "" 0600
  dir "$root/empty-layer"
}

links() {
  local t=$root/links
  dir "$t"; dir "$t/real-dir"; file "$t/real-dir/inside" "in"
  ln -s real-dir "$t/link-to-dir"
  ln -s /layers/golden_bp/links/real-dir "$t/abs-link-to-dir"
  ln -s ../../../outside "$t/escaping-link"
  ln -s missing "$t/dangling"
  ln -s link-to-dir "$t/chain"
  file "$t/original" "hard linked content"
  ln "$t/original" "$t/hardlink"
}

ordering() {
  local t=$root/ordering
  dir "$t"
  dir "$t/a"; file "$t/a/b" "a/b"; file "$t/a-b" "a-b"; file "$t/a.c" "a.c"; file "$t/a0" "a0"
  file "$t/A" "A"; file "$t/B" "B"; file "$t/_" "_"; file "$t/~" "~"; file "$t/a b" "space"
  dir "$t/a/b-dir"; file "$t/a/b-dir/c" "c"; file "$t/a/B" "a/B"
}

modes() {
  local t=$root/modes
  dir "$t"
  file "$t/setuid" "u" 4755; file "$t/setgid" "g" 2755; file "$t/sticky-file" "t" 1644
  file "$t/none" "0" 0000; file "$t/all" "7" 0777; file "$t/exec" "x" 0711
  dir "$t/sticky-dir" 1777; dir "$t/setgid-dir" 2775; dir "$t/private-dir" 0700
  file "$t/sizes/511" "$(rep a 511)"; file "$t/sizes/512" "$(rep b 512)"; file "$t/sizes/513" "$(rep c 513)"
  chmod 0755 "$t/sizes"
}

trees="long_names non_utf8 deep empty links ordering modes"
if [ "$variant" = shuffled ]; then
  mkdir -p "$root/scratch"
  trees=$(printf '%s\n' $trees | sort -r)
fi
for tree in $trees; do "$tree"; done
if [ "$variant" = shuffled ]; then
  rm -rf "$root/scratch"
  find "$root" -exec touch -h -d '2031-05-05 05:05:05' {} +
fi
