# Helpers for command-line tests (sourced by tests/cli/*.sh).
#
#   expect NAME CODE NEEDLE -- CMD...   run CMD; require exit status CODE and, when CODE is 1,
#                                       exactly one line on stderr containing NEEDLE (an empty
#                                       NEEDLE skips the text check)
#   digest DIR                          a fingerprint of every file under DIR (names and bytes)
#   ok NAME / not_ok NAME WHY           record a result
#   finish                              print the summary; exit 1 if anything failed
#
# Output is TAP-like ("ok 3 name"); stdout/stderr of the last command are in $OUT and $ERR.
set -u
WORK=$(mktemp -d "${TMPDIR:-/tmp}/edm2c-cli-XXXXXX")
trap 'if [ -n "${EDM2C_KEEP_TMP:-}" ]; then echo "# kept $WORK"; else chmod -R u+rwx "$WORK" 2>/dev/null; rm -rf "$WORK"; fi' EXIT
OUT=$WORK/.stdout
ERR=$WORK/.stderr
n_ok=0
n_fail=0
n_test=0

ok() {
  n_test=$((n_test + 1)); n_ok=$((n_ok + 1))
  echo "ok $n_test $1"
}

not_ok() {
  n_test=$((n_test + 1)); n_fail=$((n_fail + 1))
  echo "not ok $n_test $1"
  echo "#   $2"
  sed 's/^/#   stderr: /' "$ERR" | head -5
}

expect() {
  name=$1 code=$2 needle=$3
  shift 4
  "$@" >"$OUT" 2>"$ERR"
  rc=$?
  if [ "$rc" -ne "$code" ]; then
    not_ok "$name" "exit status $rc, expected $code: $*"
    return 1
  fi
  if [ "$code" -eq 1 ]; then
    lines=$(wc -l <"$ERR")
    if [ "$lines" -ne 1 ]; then
      not_ok "$name" "expected exactly one line on stderr, got $lines"
      return 1
    fi
  fi
  if [ -n "$needle" ] && ! grep -qF -- "$needle" "$ERR"; then
    not_ok "$name" "stderr lacks: $needle"
    return 1
  fi
  ok "$name"
}

digest() {
  (cd "$1" && find . \( -type f -o -type l \) -print | LC_ALL=C sort | while read -r f; do
    printf '%s ' "$f"
    if [ -r "$f" ]; then cksum <"$f"; else echo unreadable; fi
  done)
}

finish() {
  echo "# $n_test tests: $n_ok passed, $n_fail failed"
  [ "$n_fail" -eq 0 ]
}
