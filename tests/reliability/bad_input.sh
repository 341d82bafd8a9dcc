#!/usr/bin/env bash
# The bad-input suite (docs/reliability.md): damaged or wrong inputs to every command that reads files, each at
# 2 ranks under mpiexec. Every case asserts a non-zero exit within the time limit (exit 1, not a hang, crash or
# success), a message naming the problem (regex), exactly one error line across both ranks (the failure is agreed
# and rank 0 reports it), and that the output directory stays empty: nothing under the final name and no temporary
# left behind. The cases do not repeat those of tests/e2e/{cli,forget,train}.sh, tests/data/prepare_data.sh and
# tests/io/{convert,inspect}.sh (listed in docs/reliability.md). Inputs come from make_bad_inputs.py.
# Env: UNLEARN_BIN, MPIEXEC; UNLEARN_BAD_INPUT_EVERY=K runs only cases 1, 1+K, 1+2K, ... (the sanitizer tree's CI
# run sets it, tests/reliability/CMakeLists.txt: a launch there costs 5-10 s).
set -u
bin=${UNLEARN_BIN:?}
mpi="timeout 90 ${MPIEXEC:-mpiexec} -n 2 --oversubscribe --bind-to none"
py=/usr/bin/python3
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$here/../common/check.sh"
fortunes_workspace riddles
"$py" -c "import h5py, numpy" 2> /dev/null || { echo "SKIP: /usr/bin/python3 lacks h5py or numpy"; exit 77; }
start=$(date +%s)

# ---- good inputs, then one damaged copy per case ---------------------------------------------------------------
check "setup: prepare-data" 0 "wrote" -- "$bin" prepare-data --corpus fortunes --corpus-dir "$tmp/fortunes" \
  --seed 3 --canaries 2 --canary-repeats 3 --canary-references 20 --output "$tmp/ds.h5"
check "setup: dataset without canaries" 0 "wrote" -- "$bin" prepare-data --corpus fortunes \
  --corpus-dir "$tmp/fortunes" --output "$tmp/plain.h5"
check "setup: init tp2" 0 "wrote" -- $mpi "$bin" init --tp 2 --d-model 16 --n-heads 4 --n-layers 1 --d-ff 32 \
  --max-positions 32 --output "$tmp/ck.h5"
check "setup: init 3 heads" 0 "wrote" -- "$bin" init --d-model 12 --n-heads 3 --n-layers 1 --d-ff 24 \
  --max-positions 32 --output "$tmp/ck3.h5"
"$py" "$here/make_bad_inputs.py" "$tmp/ck.h5" "$tmp/ds.h5" "$tmp/bad" > /dev/null || { echo "FAIL: fixtures"; exit 1; }
[ "$fail" -eq 0 ] || exit 1
b=$tmp/bad
mkdir "$tmp/result"
o=$tmp/result/out.h5   # every case's output name; the directory must stay empty
# A document holding a canary (for the overlapping-requests case).
canary_doc=$("$py" -c "import h5py, sys; f = h5py.File(sys.argv[1], 'r')
print(f['doc_ids'][f['canaries/insertion_document'][0]])" "$tmp/ds.h5")

cases=0 ran=0 every=${UNLEARN_BAD_INPUT_EVERY:-1}
# bad NAME REGEX -- ARGS...: `unlearn ARGS` at 2 ranks must fail as described above.
bad() {
  local name=$1 re=$2
  shift 3
  cases=$((cases + 1))
  [ $(((cases - 1) % every)) -eq 0 ] || return 0
  ran=$((ran + 1))
  check "$name" 1 "$re" -- $mpi "$bin" "$@"
  expect_one_error
  if [ -n "$(ls -A "$tmp/result")" ]; then
    echo "FAIL $name: output left behind: $(ls -A "$tmp/result")"
    fail=1
    rm -rf "${tmp:?}/result/"*
  fi
}
forget=(forget --dataset "$tmp/ds.h5" --forget-canaries --retain-sample 4 --output "$o")

# ---- configuration files and command-line options ----------------------------------------------------------------
printf 'tp = 2\nthreads\n' > "$tmp/noeq.ini"
bad "config: a line without '='" "unlearn info: .*(invalid|syntax)" -- info --config "$tmp/noeq.ini"
printf 'tp = two\n' > "$tmp/type.ini"
bad "config: a value of the wrong type" "the argument \('two'\) for option '(--)?tp' is invalid" -- \
  info --config "$tmp/type.ini"
bad "config: a directory" "config file '$tmp/fortunes' is a directory" -- info --config "$tmp/fortunes"
printf 'tp = 2\n\x00\xff\xfe\n' > "$tmp/binary.ini"
bad "config: binary bytes" "unlearn info: " -- info --config "$tmp/binary.ini"
bad "option: negative thread count" "--threads must be >= 0, got -1" -- info --threads=-1
bad "model option: non-integer width" "model config: d_model = '16x' is not an integer" -- \
  init --d-model 16x --output "$o"
bad "model option: NaN epsilon" "model config: norm_eps = 'nan' is not a finite number" -- \
  init --family llama --norm-eps nan --output "$o"
bad "model option: heads do not divide the width" "d_model 16 is not a multiple of n_heads 5" -- \
  init --d-model 16 --n-heads 5 --output "$o"
bad "forget option: unknown method" "newton" -- "${forget[@]}" --checkpoint "$tmp/ck.h5" --method newton
bad "forget option: negative damping" "--damping must be >= 0" -- "${forget[@]}" --checkpoint "$tmp/ck.h5" \
  --damping=-1
bad "output directory missing" "directory '$tmp/nowhere' does not exist" -- forget --dataset "$tmp/ds.h5" \
  --forget-canaries --retain-sample 4 --checkpoint "$tmp/ck.h5" --output "$tmp/nowhere/x.h5"

# ---- checkpoints (forget --checkpoint) ---------------------------------------------------------------------------
bad "checkpoint: truncated" "cannot open checkpoint '.*ck-truncated.h5' as HDF5: .*(truncated|eof)" -- \
  "${forget[@]}" --checkpoint "$b/ck-truncated.h5"
bad "checkpoint: flipped data byte" "tensor 'layers.0.mlp.up_proj.weight' is corrupt" -- \
  "${forget[@]}" --checkpoint "$b/ck-flipped.h5"
bad "checkpoint: empty file" "checkpoint '.*ck-empty.h5' is empty \(0 bytes\)" -- \
  "${forget[@]}" --checkpoint "$b/ck-empty.h5"
bad "checkpoint: not HDF5 (text)" "'.*ck-text.h5' is not an HDF5 file \(no HDF5 signature" -- \
  "${forget[@]}" --checkpoint "$b/ck-text.h5"
bad "checkpoint: a directory" "checkpoint '$tmp/fortunes' is not a regular file" -- \
  "${forget[@]}" --checkpoint "$tmp/fortunes"
bad "checkpoint: HDF5 from elsewhere" "is an HDF5 file but not an unlearn checkpoint" -- \
  "${forget[@]}" --checkpoint "$b/ck-foreign.h5"
bad "checkpoint: wrong TP size" "cannot be loaded at --tp 2: --tp 2 does not divide the 3 attention heads" -- \
  "${forget[@]}" --tp 2 --checkpoint "$tmp/ck3.h5"
bad "checkpoint: missing tensor" "has no tensor 'ln_f.bias' \(the model needs it\)" -- \
  "${forget[@]}" --checkpoint "$b/ck-missing-tensor.h5"
bad "checkpoint: extra tensor" "holds tensor 'lm_head.weight', which the model does not have" -- \
  "${forget[@]}" --checkpoint "$b/ck-extra-tensor.h5"
bad "checkpoint: tensor of the wrong shape" "tensor 'ln_f.bias' has shape \[17\] in checkpoint .*expects \[16\]" -- \
  "${forget[@]}" --checkpoint "$b/ck-shape.h5"
bad "checkpoint: tensor stored as int32" "tensor 'ln_f.bias' has an unsupported element type" -- \
  "${forget[@]}" --checkpoint "$b/ck-int-tensor.h5"
bad "checkpoint: unknown dtype attribute" "unknown storage dtype 'float8'" -- \
  "${forget[@]}" --checkpoint "$b/ck-dtype-attr.h5"
bad "checkpoint: newer format version" "has format_version 2; this build reads version 1" -- \
  "${forget[@]}" --checkpoint "$b/ck-version2.h5"
bad "checkpoint: not a model" "holds 'optimizer', not a model" -- "${forget[@]}" --checkpoint "$b/ck-kind.h5"
bad "checkpoint: invalid config attribute" "invalid model config: model config: d_model = 'thirty-two'" -- \
  "${forget[@]}" --checkpoint "$b/ck-config.h5"
bad "checkpoint: step of the wrong type" "lacks the integer attribute 'step'" -- \
  "${forget[@]}" --checkpoint "$b/ck-step-type.h5"
bad "checkpoint: content digest differs" "content digest [0-9a-f]{16} of the data read differs from the stored 0{16}" \
  -- "${forget[@]}" --checkpoint "$b/ck-digest.h5"
bad "checkpoint: content digest malformed" "content_digest 'sha256:abc' is not 16 lower-case hex digits" -- \
  "${forget[@]}" --checkpoint "$b/ck-digest-text.h5"

# A CG solver state whose 'iteration' attribute became a float (forget --resume reads it).
ncg=(forget --tp 2 --checkpoint "$tmp/ck.h5" --dataset "$tmp/ds.h5" --forget-canaries --retain-sample 4
     --method newton-cg --cg-max-iters 4 --state-dir "$tmp/st")
check "setup: a solver state" 0 "stopped at request 1, CG iteration 1" -- $mpi "$bin" "${ncg[@]}" \
  --stop-after-iteration 1 --output "$o"
"$py" -c "import h5py, sys; h5py.File(sys.argv[1], 'r+').attrs['iteration'] = 1.0" "$tmp/st/cg-r000-i000001.h5"
bad "solver state: attribute of the wrong type" "cg-r000-i000001.h5': attribute 'iteration' is not an integer" -- \
  "${ncg[@]}" --resume --output "$o"

# ---- datasets (forget --dataset; checked on every rank before any communication) -------------------------------
fds=(forget --checkpoint "$tmp/ck.h5" --forget-ids 1 --output "$o")
bad "dataset: token outside the vocabulary" "invalid dataset: token 5 is outside the vocabulary" -- \
  "${fds[@]}" --dataset "$b/ds-token.h5"
bad "dataset: missing array" "doc_ids.*missing" -- "${fds[@]}" --dataset "$b/ds-no-doc-ids.h5"
bad "dataset: canary insertion out of range" "canary insertion out of range" -- "${fds[@]}" --dataset "$b/ds-canary.h5"
bad "dataset: newer format version" "dataset format version 9; this build reads 1" -- \
  "${fds[@]}" --dataset "$b/ds-version.h5"
bad "dataset: truncated" "ds-truncated.h5" -- "${fds[@]}" --dataset "$b/ds-truncated.h5"
bad "dataset: a checkpoint" "'$tmp/ck.h5' is not an unlearn token dataset" -- "${fds[@]}" --dataset "$tmp/ck.h5"
bad "dataset: not HDF5" "'.*ck-text.h5' is not an HDF5 file" -- "${fds[@]}" --dataset "$b/ck-text.h5"

# ---- forget lists ------------------------------------------------------------------------------------------------
fl=(forget --checkpoint "$tmp/ck.h5" --dataset "$tmp/ds.h5" --output "$o")
bad "forget list: empty request" "--forget-ids: expected a comma-separated list of positive integers, got ''" -- \
  "${fl[@]}" --forget-ids "1;;2"
bad "forget list: id 0" "--forget-ids: '0' is not a positive integer" -- "${fl[@]}" --forget-ids 0,1
bad "forget list: malformed" "--forget-ids: '2x' is not a positive integer" -- "${fl[@]}" --forget-ids 1,2x
bad "forget list: empty canary set" "--forget-canaries: the dataset has no planted canaries" -- \
  forget --checkpoint "$tmp/ck.h5" --dataset "$tmp/plain.h5" --forget-canaries --output "$o"
bad "forget list: a canary document also listed by id" "document id $canary_doc is in more than one request" -- \
  "${fl[@]}" --forget-ids "$canary_doc" --forget-canaries

# ---- safetensors (unlearn convert SRC DST) -----------------------------------------------------------------------
st() { bad "safetensors: $1" "$2" -- convert "$b/st-$3" "$o"; }
st "shape and size disagree" "tensor 'wte.weight': data_offsets span 12864 bytes, the dtype and shape need 12596" shape
st "file shorter than the length field" "5 bytes is too short for a safetensors file" short
st "zero header length" "empty safetensors header" zero-header
st "header is not an object" "the header is not a JSON object" header-array
st "invalid UTF-8 in a tensor name" "malformed JSON at byte [0-9]+: invalid UTF-8 inside a string" name-utf8
st "__metadata__ not an object" "__metadata__ is not an object" metadata
st "bytes after the last tensor" "16 bytes after the last tensor belong to no tensor" trailing
st "integer dtype" "tensor 'ln_f.bias' has dtype I32; model weights must be F32, F64, F16 or BF16" int-dtype
st "missing tensor" "h.1.mlp.c_proj.bias" missing-tensor
st "index leaves the directory" "leaves the model directory" index-escape
st "index lists a missing tensor" "the index lists tensor 'h.7.ln_1.weight'" index-extra
st "no config.json" "config.json" no-config
st "unsupported model type" "model_type 'bert' \(supported: gpt2, llama\)" bert

# ---- GPT-2 tokenizer files (prepare-data --tokenizer gpt2) -------------------------------------------------------
tok() {
  bad "tokenizer: $1" "$2" -- prepare-data --corpus fortunes --corpus-dir "$tmp/fortunes" --tokenizer gpt2 \
    --tokenizer-dir "$b/tok-$3" --output "$o"
}
tok "a byte without a token" "encoder.json: byte 113 has no token" missing-byte
tok "merge of unknown tokens" "vocab.bpe: merge 2 \('x' 'yz'\) uses or produces a token missing" unknown-merge
tok "blank line in the merges" "vocab.bpe: line 3: blank line inside the merge list" blank-line
tok "an id used twice" "encoder.json: id 256 is used twice" reused-id
tok "ids with a gap" "encoder.json: id 300 is outside 0..258" id-gap
tok "a directory for encoder.json" "tok-dir/encoder.json" dir

echo "$ran of $cases bad-input cases in $(($(date +%s) - start)) s"
exit $fail
