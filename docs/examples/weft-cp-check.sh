#!/bin/sh
# SPDX-License-Identifier: MIT
# weft-cp-check.sh WEFT_CP - copy a small tree with weft-cp and check the
# copy: the same entries with the same bytes (diff -r), the same modes and
# types (find -printf), a link copied as a link, on one core (the default)
# and on two and on every core (-j 2, -j 0: cut down to the CPUs there
# are, so one core where there is one); then one file at a time (-n 1),
# a single file into an existing directory. Exit 0 when all match.
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

# more directories than copiers, a read-only one among them
j=0
while [ $j -lt 20 ]; do
    mkdir "$src/d$j"
    i=0
    while [ $i -lt 20 ]; do
        printf '%s %s\n' "$j" "$i" > "$src/d$j/f$i"
        i=$((i + 1))
    done
    j=$((j + 1))
done
chmod 0500 "$src/d7"

listing() { (cd "$1" && find . -printf '%M %y %p %l\n' | sort); }
listing "$src" > "$tmp/l1"

for args in "" "-j 2" "-j 0" "-j 2 -n 1"; do
    rm -rf "$tmp/dst"
    # shellcheck disable=SC2086
    "$cp_bin" $args "$src" "$tmp/dst"
    diff -r "$src" "$tmp/dst"
    listing "$tmp/dst" > "$tmp/l2"
    diff "$tmp/l1" "$tmp/l2"
    chmod -R u+rwx "$tmp/dst"
done

# into an existing directory, under the source's name; one at a time
mkdir "$tmp/into"
"$cp_bin" -n 1 "$src" "$tmp/into"
diff -r "$src" "$tmp/into/src"
"$cp_bin" "$src/a/b/big.bin" "$tmp/into"
cmp "$src/a/b/big.bin" "$tmp/into/big.bin"
[ "$(stat -c %a "$tmp/into/big.bin")" = 751 ]

# a missing source fails with a message and status 1, on any core count
if "$cp_bin" "$tmp/none" "$tmp/x" 2>/dev/null; then exit 1; fi
if "$cp_bin" -j 2 "$tmp/none" "$tmp/x" 2>/dev/null; then exit 1; fi
# nothing on stdout when it is not a terminal
[ -z "$("$cp_bin" "$src" "$tmp/quiet")" ]
echo "weft-cp-check: ok"
