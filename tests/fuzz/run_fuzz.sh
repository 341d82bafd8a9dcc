#!/usr/bin/env bash
# Runs each libFuzzer target of the ASan+UBSan tree for SECONDS (the CI fuzz run; by hand with a longer time, see
# docs/reliability.md). Starts from the committed seed corpus and the regression inputs (read-only: new corpus
# entries go to a temporary directory), fails on any crash, sanitizer report, leak, timeout or broken invariant, and
# keeps the crashing input under BIN_DIR/artifacts/ with a hint on turning it into a regression test.
# Usage: run_fuzz.sh BIN_DIR SRC_DIR SECONDS TARGET...   (BIN_DIR holds fuzz_<target>; SRC_DIR is tests/fuzz)
set -u
bin=$1 src=$2 seconds=$3
shift 3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$bin/artifacts"
fail=0
for t in "$@"; do
  exe=$bin/fuzz_$t
  [ -x "$exe" ] || { echo "FAIL $t: $exe is missing (is this the clang ASan tree?)"; fail=1; continue; }
  mkdir -p "$work/$t"
  extra=() dirs=("$work/$t" "$src/corpus/$t")
  [ -f "$src/dict/$t.dict" ] && extra+=(-dict="$src/dict/$t.dict")
  [ -d "$src/regressions/$t" ] && dirs+=("$src/regressions/$t")
  # -timeout: one input taking 10 s is a finding (the decoders are linear); -rss_limit_mb: so is 2 GB of memory.
  # -max_len 8192: the tokenizer seed (all 256 byte tokens) needs ~3 KB; headers grow from there.
  "$exe" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=8192 -print_final_stats=1 \
    -artifact_prefix="$bin/artifacts/$t-" "${extra[@]}" "${dirs[@]}" \
    > "$work/$t.log" 2>&1
  rc=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/$t.log")
  cov=$(grep -Eo 'cov: [0-9]+ ft: [0-9]+ corp: [0-9]+' "$work/$t.log" | tail -1)
  if [ "$rc" -ne 0 ]; then
    echo "FAIL $t: libFuzzer exit $rc after ${execs:-?} executions; last lines:"
    grep -v '^#' "$work/$t.log" | tail -40 | sed 's/^/    /'
    echo "    crashing input: $(ls "$bin/artifacts/$t-"* 2>/dev/null | tail -1)"
    echo "    add it to $src/regressions/$t/ (fuzz_replay_$t replays it in every build) and fix the decoder"
    fail=1
  else
    echo "ok   $t: ${execs:-?} executions in ${seconds}s, $cov"
  fi
done
exit $fail
