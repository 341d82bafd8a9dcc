# Shared by the end-to-end scripts (source it): check NAME EXPECTED_RC REGEX -- command...
# Runs the command, keeps its output in $tmp/out, prints ok/FAIL, and sets fail=1 on a wrong exit code or output.
check() {
  local name=$1 want=$2 re=$3
  last_check=$name
  shift 4
  "$@" >"$tmp/out" 2>&1
  local rc=$?
  if [ "$rc" -ne "$want" ] || ! grep -Eq -- "$re" "$tmp/out"; then
    echo "FAIL $name: rc $rc (want $want), output:"; sed 's/^/    /' "$tmp/out"; fail=1
  else
    echo "ok   $name"
  fi
}

# fortunes_workspace FILE...: skip (exit 77) without fortunes-min; else a temporary directory $tmp, removed on exit,
# holding the named fortunes-min files and their .dat indexes in $tmp/fortunes; fail=0.
fortunes_workspace() {
  local src=/usr/share/games/fortunes f
  [ -f $src/riddles ] || { echo "SKIP: fortunes-min is not installed (tools/install-deps.sh installs it)"; exit 77; }
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  fail=0
  mkdir -p "$tmp/fortunes"
  for f in "$@"; do cp "$src/$f" "$src/$f.dat" "$tmp/fortunes/"; done
}

# expect_one_error: the last check's output holds exactly one error line (all ranks together).
expect_one_error() {
  [ "$(grep -c 'error:' "$tmp/out")" -eq 1 ] || { echo "FAIL $last_check: expected one error line"; fail=1; }
}
