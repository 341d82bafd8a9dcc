#!/usr/bin/env bash
# `unlearn prepare-data` end to end at 2 ranks on real text (the fortunes-min files): a dataset that h5py reads
# with the documented layout, byte-identical for the same seed, no secret or document text in the log; bad input
# gives one message and exit 1 on every rank. Env: UNLEARN_BIN, MPIEXEC (set by CTest).
set -u
bin=${UNLEARN_BIN:?} mpi="${MPIEXEC:-mpiexec} -n 2 --oversubscribe --bind-to none"
src=/usr/share/games/fortunes
[ -f $src/riddles ] || { echo "SKIP: fortunes-min is not installed (tools/install-deps.sh installs it)"; exit 77; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0
mkdir -p "$tmp/fortunes" "$tmp/empty" "$tmp/tok"
cp $src/riddles $src/literature $src/riddles.dat "$tmp/fortunes/"
printf '%%\n\n%%\n' > "$tmp/empty/nothing"

source "$(dirname "${BASH_SOURCE[0]}")/../common/check.sh"
one_error() {
  [ "$(grep -c 'error:' "$tmp/out")" -eq 1 ] || { echo "FAIL $1: expected one error line from 2 ranks"; cat "$tmp/out"; fail=1; }
}

args=(--corpus fortunes --corpus-dir "$tmp/fortunes" --split 0.8,0.1,0.1 --seed 7 --canaries 6 --canary-tuning 2
      --canary-repeats 5 --canary-references 200 --canary-space hex --canary-length 10)
check "prepare-data bytes np2" 0 "wrote .*a.h5" -- $mpi "$bin" prepare-data "${args[@]}" --output "$tmp/a.h5"
cp "$tmp/out" "$tmp/log"
grep -Eq "canary documents: [0-9]+ of [0-9]+ training documents" "$tmp/log" && ! grep -q "warning" "$tmp/log" ||
  { echo "FAIL: no canary-document share in the log, or a warning for a small share"; fail=1; }
check "canaries in most training documents" 0 "warning: the canaries are in [0-9]+% of the training documents" -- \
  "$bin" prepare-data --corpus fortunes --corpus-dir "$tmp/fortunes" --max-documents 40 --canaries 2 \
  --canary-repeats 10 --canary-references 10 --output "$tmp/w.h5"
check "prepare-data again" 0 "wrote" -- "$bin" prepare-data "${args[@]}" --output "$tmp/b.h5"
cmp -s "$tmp/a.h5" "$tmp/b.h5" && echo "ok   same seed, byte-identical file" || { echo "FAIL: same seed, different files"; fail=1; }

/usr/bin/python3 - "$tmp/a.h5" "$tmp/log" "$tmp/fortunes" <<'PY' || fail=1
import sys, h5py, numpy as np
path, log, corpus = sys.argv[1:4]
f = h5py.File(path, "r")
a = f.attrs
assert a["format"] == "unlearn-token-dataset" and a["format_version"] == 1, dict(a)
assert a["corpus"] == "fortunes" and a["tokenizer"] == "bytes" and a["vocab_size"] == 256
records = []
for name in ("literature", "riddles"):  # load order: sorted file names
    text = open(f"{corpus}/{name}", encoding="utf-8").read()
    records += [r.strip("\n") + "\n" for r in text.split("\n%\n") if r.strip()]
n = len(records)
off, tok, splits = f["doc_offsets"][:], f["tokens"][:], f["doc_splits"][:]
assert a["num_documents"] == n == len(f["doc_ids"]) and off[-1] == len(tok) == a["num_tokens"], (n, len(f["doc_ids"]))
assert list(np.bincount(splits, minlength=3)) == [round(0.8 * n), round(0.1 * n), n - round(0.8 * n) - round(0.1 * n)]
c = f["canaries"]
prefix = c["prefix_tokens"][:].tobytes() if False else bytes(c["prefix_tokens"][:].astype(np.uint8))
sep = bytes(c["separator_tokens"][:].astype(np.uint8))
assert prefix == c.attrs["prefix"].encode() and sep == b"\n"
secrets = [s.decode() if isinstance(s, bytes) else s for s in c["secrets"][:]]
roles = c["roles"][:]
inserted = {i for i, r in enumerate(roles) if r in (0, 1)}
# Untouched documents decode to the corpus text; canary documents to canary lines + the text (position start).
hit = {}
for d in range(n):
    body = bytes(tok[off[d]:off[d + 1]].astype(np.uint8)).decode("utf-8")
    k = 0
    while body.startswith(c.attrs["prefix"]):
        line, body = body.split("\n", 1)
        s = line[len(c.attrs["prefix"]):]
        hit[s] = hit.get(s, 0) + 1
        assert splits[d] == 0, "canary outside the training split"
    assert body == records[f["doc_ids"][d]], f"document row {d} does not decode to its record"
for i, s in enumerate(secrets):
    assert hit.get(s, 0) == (5 if i in inserted else 0), (i, hit.get(s, 0))
assert list(roles).count(0) == 2 and list(roles).count(1) == 4 and list(roles).count(2) == 200
logtext = open(log).read()
leaks = [i for i, s in enumerate(secrets) if s in logtext]
assert not leaks, f"secrets of candidates {leaks[:5]} appear in the log"
assert records[0].splitlines()[0] not in logtext, "document text appears in the log"
print(f"ok   h5py: {n} documents, {len(tok)} tokens, canaries inserted 5x each, no secret or text in the log")
PY

check "unknown corpus" 1 "unknown corpus 'enron'" -- $mpi "$bin" prepare-data --corpus enron --output "$tmp/x.h5"
one_error "unknown corpus"
check "empty corpus" 1 "corpus 'fortunes' in .* is empty" -- \
  $mpi "$bin" prepare-data --corpus fortunes --corpus-dir "$tmp/empty" --output "$tmp/x.h5"
one_error "empty corpus"
check "missing corpus dir" 1 "does not exist \(run tools/fetch-corpora.sh" -- \
  "$bin" prepare-data --corpus kjv --corpus-dir "$tmp/nope" --output "$tmp/x.h5"
check "tokenizer files missing" 1 "cannot open '.*/tok/encoder.json'" -- \
  $mpi "$bin" prepare-data --corpus fortunes --corpus-dir "$tmp/fortunes" --tokenizer gpt2 --tokenizer-dir "$tmp/tok" \
  --output "$tmp/x.h5"
one_error "tokenizer files missing"
printf '{"!": 0, "\\"": 1' > "$tmp/tok/encoder.json"
printf '#version: 0.2\n' > "$tmp/tok/vocab.bpe"
check "tokenizer malformed" 1 "encoder.json: malformed JSON at byte" -- \
  "$bin" prepare-data --corpus fortunes --corpus-dir "$tmp/fortunes" --tokenizer gpt2 --tokenizer-dir "$tmp/tok" \
  --output "$tmp/x.h5"
check "bad split" 1 "fractions must sum to 1" -- "$bin" prepare-data --corpus fortunes --split 0.5,0.2,0.2 --output "$tmp/x.h5"
check "too many repeats" 1 "training split has" -- \
  "$bin" prepare-data --corpus fortunes --corpus-dir "$tmp/fortunes" --max-documents 10 --canaries 1 --canary-repeats 50 \
  --canary-references 10 --output "$tmp/x.h5"
[ -e "$tmp/x.h5" ] && { echo "FAIL: a failed run left $tmp/x.h5"; fail=1; }
exit $fail
