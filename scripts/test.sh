#!/usr/bin/env bash
# Run every test, in order: unit, integration (host postconf/postmap),
# build (the collection tarball ships no test files), ansible-test sanity,
# matrix (the other ansible-core lines), ansible-lint (production profile),
# Molecule scenarios (molecule/).
#
#   scripts/test.sh                 all stages
#   scripts/test.sh unit lint ...   only the named stages
#   MOLECULE_SCENARIOS="enforce policies" scripts/test.sh molecule
#                                   only these scenarios (default: every
#                                   molecule/*/molecule.yml)
#   MAILGW_MATRIX_LINES="2.16 2.17" scripts/test.sh matrix
#                                   these older ansible-core lines (default:
#                                   2.17 2.18), then the main line's smoke set
#
# Exits non-zero when any stage fails; prints a closing summary line.
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$ROOT"

ALL_STAGES=(unit integration build sanity matrix lint molecule)
case "${1:-}" in
  help|-h|--help) awk 'NR == 1 { next } /^#/ { sub(/^# ?/, ""); print; next } { exit }' "$0"; exit 0 ;;
esac
stages=("$@")
for s in "${stages[@]}"; do
  [[ " ${ALL_STAGES[*]} " == *" $s "* ]] || { echo "unknown stage: $s (stages: ${ALL_STAGES[*]})" >&2; exit 2; }
done
[ "${#stages[@]}" -gt 0 ] || stages=("${ALL_STAGES[@]}")

passed=0
failed=0
failed_names=()
banner() { printf '\n===== %s =====\n' "$*"; }

stage_unit() {
  pytest -q -p no:cacheprovider tests/unit
}

stage_integration() {
  # Host-side module tests against the real postconf/postmap (Debian postfix)
  # in throwaway config directories, plus the container tests (role, convergence
  # check); includes the slow fault/concurrency group. The work is mostly
  # waiting on subprocesses and podman, so 4 workers on 2 cores pay off.
  pytest -q -p no:cacheprovider -n 4 --dist worksteal --durations=20 tests/integration
}

stage_sanity() {
  # ansible-test needs the collection at ansible_collections/NS/NAME, outside
  # this git work tree (.cache is git-ignored and ansible-test skips ignored
  # files): copy the tracked and new files there.
  local top rc=0
  top="$(mktemp -d "${TMPDIR:-/tmp}/mailgw-sanity.XXXXXX")"
  local dest="$top/ansible_collections/mailgw/postfix_tls"
  mkdir -p "$dest"
  git ls-files -z --cached --others --exclude-standard | rsync -a --from0 --files-from=- ./ "$dest/"

  # A dedicated venv for ansible-core's own ansible-test, so its pinned
  # sanity requirements (pylint, mypy, ...) do not clash with the tool venv.
  local sv="$CACHE/sanity-venv"
  if [ ! -x "$sv/bin/ansible-test" ]; then
    python3 -m venv "$sv"
    "$sv/bin/pip" install -q "$(grep '^ansible-core==' "$ROOT/requirements-dev.txt")" 2>&1 \
      | { grep -v '^WARNING: Location' || true; }
  fi
  # ansible-test bootstraps pip in each per-test venv with a get-pip script
  # from a host that is not reachable here: give it an offline stand-in
  # (scripts/sanity/get_pip.py) and the pip wheel from PyPI.
  local pipver cache="$HOME/.ansible/test/cache"
  pipver="$(grep -ho "pip='[0-9.]*'" "$sv"/lib/python3*/site-packages/ansible_test/_internal/python_requirements.py | head -1 | cut -d"'" -f2)"
  mkdir -p "$cache"
  if [ ! -f "$cache/pip-$pipver-py3-none-any.whl" ]; then
    "$sv/bin/pip" download -q --no-deps -d "$cache" "pip==$pipver" 2>&1 | { grep -v '^WARNING: Location' || true; }
  fi
  cp "$ROOT/scripts/sanity/get_pip.py" "$cache/get_pip_${pipver//./_}.py"

  (cd "$dest" && PATH="$sv/bin:$PATH" "$sv/bin/ansible-test" sanity --venv --python 3.11 \
      --color no) || rc=$?
  rm -rf "$top"
  return $rc
}

stage_matrix() {
  # ansible-core lines other than the tool venv's, oldest first, one after
  # another (each line's sanity uses both cores): for each, in its own venv
  # cached by its pinned requirements (scripts/matrix/requirements-LINE.txt),
  # that line's ansible-test sanity with tests/sanity/ignore-LINE.txt, the unit
  # tests and the integration smoke set (scripts/matrix/smoke-tests.txt)
  # through its `ansible` command. Then the smoke set through the main line's
  # `ansible`, whose sanity and unit tests are the stages of those names.
  # scripts/matrix/line.sh LINE [sanity|unit|smoke] runs one line by hand.
  local lines="${MAILGW_MATRIX_LINES:-2.16 2.17 2.18}" line rc=0
  lines="$lines $(sed -n 's/^ansible-core==\([0-9]*\.[0-9]*\)\..*/\1/p' requirements-dev.txt)"
  for line in $lines; do
    banner "matrix: ansible-core $line"
    scripts/matrix/line.sh "$line" || rc=1
  done
  return $rc
}

stage_build() {
  # The collection tarball must build and must not ship tests, CI or bench files.
  local out
  out="$(mktemp -d)"
  ansible-galaxy collection build --force --output-path "$out" . >/dev/null || { rm -rf "$out"; return 1; }
  local tarball
  tarball="$(ls "$out"/mailgw-postfix_tls-*.tar.gz)"
  local bad
  bad="$(tar -tzf "$tarball" | grep -E '^(tests|bench|molecule|\.ci|\.config|scripts|images|\.cache)(/|$)|containers\.conf|requirements-dev' || true)"
  echo "built $(basename "$tarball"): $(tar -tzf "$tarball" | wc -l) entries"
  rm -rf "$out"
  if [ -n "$bad" ]; then
    echo "collection tarball contains files it must not ship:"; echo "$bad"
    return 1
  fi
}

stage_lint() {
  ansible-lint --profile production --offline -q
}

stage_molecule() {
  # The scenarios live in molecule/ at the top of the collection; naming them
  # with MOLECULE_GLOB keeps Molecule 26 from looking in extensions/molecule/
  # (and from warning that it would prefer that place). Settings shared by every
  # scenario are in the base config .config/molecule/config.yml, which Molecule
  # finds at the top of the git work tree.
  export MOLECULE_GLOB="molecule/*/molecule.yml"
  local scenarios="${MOLECULE_SCENARIOS:-}"
  if [ -z "$scenarios" ]; then
    # Most platforms first (enforce runs on all four images), so the long
    # scenario does not start last and leave one slot idle at the end.
    scenarios="$(for d in molecule/*/molecule.yml; do
        printf '%s %s\n' "$(grep -c '^  - name: ' "$d")" "$(basename "$(dirname "$d")")"
      done | sort -k1,1nr -k2,2 | cut -d' ' -f2 | tr '\n' ' ')"
  fi
  # Container names get a suffix unique to this checkout, so two checkouts
  # (a CI clone and a working tree) can run the scenarios at the same time.
  export MAILGW_MOLECULE_SUFFIX="${MAILGW_MOLECULE_SUFFIX--$(printf '%s' "$ROOT" | sha256sum | cut -c1-8)}"
  # Scenarios run side by side (MOLECULE_JOBS at a time, default 2): much of
  # a scenario is waiting on containers, Postfix and SMTP peers. Each writes
  # its own log, printed whole when it ends, so the output does not interleave.
  local jobs="${MOLECULE_JOBS:-2}" logs rc=0 s
  logs="$(mktemp -d "${TMPDIR:-/tmp}/mailgw-molecule.XXXXXX")"
  local -A name_of=()
  report() {  # $1 scenario, $2 exit status: print its log and verdict
    banner "molecule scenario: $1"
    cat "$logs/$1.log"
    if [ "$2" = 0 ]; then
      echo "molecule scenario $1: ok ($(cat "$logs/$1.time") s)"
    else
      echo "molecule scenario $1 FAILED (exit $2, $(cat "$logs/$1.time" 2>/dev/null || echo '?') s)"; rc=1
    fi
  }
  wait_one() {  # wait for whichever scenario ends first
    local done_pid status=0
    wait -n -p done_pid "${!name_of[@]}" || status=$?
    report "${name_of[$done_pid]}" "$status"
    unset "name_of[$done_pid]"
  }
  for s in $scenarios; do
    while [ "${#name_of[@]}" -ge "$jobs" ]; do wait_one; done
    ( start=$(date +%s); st=0; molecule test -s "$s" > "$logs/$s.log" 2>&1 || st=$?
      echo $(( $(date +%s) - start )) > "$logs/$s.time"; exit $st ) &
    name_of[$!]="$s"
    echo "molecule scenario $s started"
  done
  while [ "${#name_of[@]}" -gt 0 ]; do wait_one; done
  rm -rf "$logs"
  return $rc
}

for s in "${stages[@]}"; do
  banner "stage: $s"
  start=$(date +%s)
  if "stage_$s"; then
    passed=$((passed + 1)); status=ok
  else
    failed=$((failed + 1)); failed_names+=("$s"); status=FAILED
  fi
  echo "stage $s: $status ($(( $(date +%s) - start )) s)"
done

banner "summary"
[ "$failed" -eq 0 ] || echo "failed stages: ${failed_names[*]}"
echo "stages: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
