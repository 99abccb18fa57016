#!/bin/sh
# SPDX-License-Identifier: MIT
# weft-cp-check.sh WEFT_CP - copy a small tree with weft-cp and check the
# copy: the same entries with the same bytes (diff -r), the same modes and
# types (find -printf), a link copied as a link; then a single file into
# an existing directory, and a copy with -j 1. Exit 0 when all match.
set -eu
cp_bin=$1
tmp=$(mktemp -d "${TMPDIR:-/tmp}/weft-cp-check.XXXXXX")
trap 'chmod -R u+rwx "$tmp" 2>/dev/null; rm -rf "$tmp"' EXIT
src=$tmp/src
mkdir -p "$src/a/b/c" "$src/empty" "$src/ro"
printf 'hello\n' > "$src/top.txt"
: > "$src/a/zero"
head -c 100000 /dev/urandom > "$src/a/random.bin"
head -c 3000000 /dev/urandom > "$src/a/b/big.bin"
i=0
while [ $i -lt 50 ]; do
    head -c $((i * 97 + 1)) /dev/urandom > "$src/a/b/c/f$i"
    i=$((i + 1))
done
chmod 0751 "$src/a/b/big.bin"
chmod 0600 "$src/a/zero"
chmod 4755 "$src/top.txt" 2>/dev/null || chmod 0755 "$src/top.txt"
printf 'x\n' > "$src/ro/file"
chmod 0444 "$src/ro/file"
chmod 0555 "$src/ro"
chmod 0700 "$src/empty"
ln -s ../top.txt "$src/a/link"

listing() { (cd "$1" && find . -printf '%M %y %p %l\n' | sort); }

"$cp_bin" "$src" "$tmp/dst"
diff -r "$src" "$tmp/dst"
listing "$src" > "$tmp/l1"
listing "$tmp/dst" > "$tmp/l2"
diff "$tmp/l1" "$tmp/l2"

# into an existing directory, under the source's name; -j 1
mkdir "$tmp/into"
"$cp_bin" -j 1 "$src" "$tmp/into"
diff -r "$src" "$tmp/into/src"
"$cp_bin" "$src/a/b/big.bin" "$tmp/into"
cmp "$src/a/b/big.bin" "$tmp/into/big.bin"
[ "$(stat -c %a "$tmp/into/big.bin")" = 751 ]

# a missing source fails with a message and status 1
if "$cp_bin" "$tmp/none" "$tmp/x" 2>/dev/null; then exit 1; fi
# nothing on stdout when it is not a terminal
[ -z "$("$cp_bin" "$src" "$tmp/quiet")" ]
echo "weft-cp-check: ok"
