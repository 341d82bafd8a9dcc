# Shared by the end-to-end scripts (source it): check NAME EXPECTED_RC REGEX -- command...
# Runs the command, keeps its output in $tmp/out, prints ok/FAIL, and sets fail=1 on a wrong exit code or output.
check() {
  local name=$1 want=$2 re=$3
  shift 4
  "$@" >"$tmp/out" 2>&1
  local rc=$?
  if [ "$rc" -ne "$want" ] || ! grep -Eq -- "$re" "$tmp/out"; then
    echo "FAIL $name: rc $rc (want $want), output:"; sed 's/^/    /' "$tmp/out"; fail=1
  else
    echo "ok   $name"
  fi
}
