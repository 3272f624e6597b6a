#!/usr/bin/env bash
# One ansible-core line of `scripts/test.sh matrix`:
#
#   scripts/matrix/line.sh LINE [PART...]     LINE: 2.16, 2.17, 2.18 or 2.19
#                                             PART: sanity unit smoke (default: all;
#                                             for 2.19, the main line, only smoke)
#
# venv     .cache/matrix/LINE: ansible-core of that line and the test tools,
#          pinned in scripts/matrix/requirements-LINE.txt, rebuilt only when
#          that file changes (its hash is recorded in the venv); in
#          .cache/matrix/LINE/collections the ansible.posix collection (its
#          json callback) and community.docker (the nsenter connection of the
#          role tests) from the tool venv
# sanity   that line's own ansible-test sanity, with tests/sanity/ignore-LINE.txt
# unit     tests/unit
# smoke    the integration tests named in scripts/matrix/smoke-tests.txt, every
#          module call through that line's `ansible` (MAILGW_TEST_VIA_ANSIBLE=1),
#          the role's tests through its `ansible-playbook` (the main line: the
#          module tests only; its integration stage runs the role's)
#
# The unit and smoke tests load scripts/matrix/matrix_compat.py (see there).
# Exits non-zero when a part fails; each part prints its own verdict and time.
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../env.sh"
cd "$ROOT"

line="${1:?usage: scripts/matrix/line.sh LINE [sanity|unit|smoke]...}"
shift
parts=("$@")
req="$ROOT/scripts/matrix/requirements-$line.txt"
venv="$CACHE/matrix/$line"
main_line="$(sed -n 's/^ansible-core==\([0-9]*\.[0-9]*\)\..*/\1/p' "$ROOT/requirements-dev.txt")"
if [ "$line" = "$main_line" ]; then
  # The main line is the tool venv (.cache/venv, requirements-dev.txt), whose
  # sanity and unit tests are the stages of those names: only the smoke set here.
  venv="$VENV"
  [ "${#parts[@]}" -gt 0 ] || parts=(smoke)
elif [ ! -f "$req" ]; then
  echo "matrix: no pinned requirements for ansible-core $line ($req)" >&2; exit 2
fi
[ "${#parts[@]}" -gt 0 ] || parts=(sanity unit smoke)

ensure_venv() {
  local hash
  [ "$venv" != "$VENV" ] || return 0    # made by scripts/setup.sh
  # ansible-core before 2.19 has no json stdout callback of its own: its
  # ansible.builtin.json redirects to ansible.posix.json, copied here from the
  # tool venv's ansible package (pinned in requirements-dev.txt).
  # The role tests of the smoke set enter their containers with
  # community.docker.nsenter, copied the same way.
  local site collection
  site="$(ls -d "$VENV"/lib/python3*/site-packages/ansible_collections)" || return 1
  hash="$( { cat "$req"; grep '^ansible==' "$ROOT/requirements-dev.txt"; echo ansible/posix community/docker; } \
           | sha256sum | cut -c1-16)"
  [ -f "$venv/.req-$hash" ] && return 0
  echo "matrix $line: creating $venv"
  rm -rf "$venv"
  mkdir -p "$CACHE/matrix"
  python3 -m venv "$venv" || return 1
  "$venv/bin/pip" install -q -r "$req" 2>&1 | { grep -v '^WARNING: Location' || true; }
  [ "${PIPESTATUS[0]}" = 0 ] || return 1
  for collection in ansible/posix community/docker; do
    mkdir -p "$venv/collections/ansible_collections/${collection%/*}"
    cp -a "$site/$collection" "$venv/collections/ansible_collections/$collection" || return 1
  done
  touch "$venv/.req-$hash"
}

part_sanity() {
  # As stage_sanity in scripts/test.sh: the collection copied to
  # ansible_collections/NS/NAME outside the work tree, and this ansible-test's
  # pip bootstrap served offline (scripts/sanity/get_pip.py and the pip wheel).
  local top rc=0 pipver cache="$HOME/.ansible/test/cache"
  top="$(mktemp -d "${TMPDIR:-/tmp}/mailgw-matrix-$line.XXXXXX")"
  local dest="$top/ansible_collections/mailgw/postfix_tls"
  mkdir -p "$dest"
  git ls-files -z --cached --others --exclude-standard | rsync -a --from0 --files-from=- ./ "$dest/"
  pipver="$(grep -ho "pip='[0-9.]*'" "$venv"/lib/python3*/site-packages/ansible_test/_internal/python_requirements.py | head -1 | cut -d"'" -f2)"
  mkdir -p "$cache"
  if [ ! -f "$cache/pip-$pipver-py3-none-any.whl" ]; then
    "$venv/bin/pip" download -q --no-deps -d "$cache" "pip==$pipver" 2>&1 | { grep -v '^WARNING: Location' || true; }
  fi
  cp "$ROOT/scripts/sanity/get_pip.py" "$cache/get_pip_${pipver//./_}.py"
  # ansible-core 2.16 still supports Python 2.7 on managed hosts and asks for
  # its boilerplate in every file; this collection is Python 3 only (2.17
  # dropped both tests).
  local skip=()
  [ "$line" != 2.16 ] || skip=(--skip-test future-import-boilerplate --skip-test metaclass-boilerplate)
  (cd "$dest" && PATH="$venv/bin:$PATH" "$venv/bin/ansible-test" sanity --venv --python 3.11 --color no "${skip[@]}") || rc=$?
  rm -rf "$top"
  return $rc
}

run_pytest() {
  PYTHONPATH="$ROOT/scripts/matrix${PYTHONPATH:+:$PYTHONPATH}" PATH="$venv/bin:$PATH" \
    "$venv/bin/python" -m pytest -q -p no:cacheprovider -p matrix_compat "$@"
}

part_unit() {
  run_pytest -n 2 tests/unit
}

part_smoke() {
  local tests
  mapfile -t tests < <(grep -v '^#' "$ROOT/scripts/matrix/smoke-tests.txt" | grep .)
  if [ "$venv" = "$VENV" ]; then
    # the main line's integration stage runs every role and playbook test already
    mapfile -t tests < <(printf '%s\n' "${tests[@]}" | grep -v -e '^tests/integration/roles/' -e '^tests/integration/playbooks/')
  fi
  MAILGW_TEST_VIA_ANSIBLE=1 run_pytest -n 2 --dist worksteal "${tests[@]}"
}

start=$(date +%s)
ensure_venv || { echo "matrix $line: venv FAILED"; exit 1; }
echo "matrix $line: ansible-core $("$venv/bin/python" -c 'from ansible.release import __version__ as v; print(v)') (venv ready in $(( $(date +%s) - start )) s)"
rc=0
for part in "${parts[@]}"; do
  case "$part" in sanity|unit|smoke) ;; *) echo "unknown part: $part" >&2; exit 2 ;; esac
  start=$(date +%s)
  if "part_$part"; then status=ok; else status=FAILED; rc=1; fi
  echo "matrix $line $part: $status ($(( $(date +%s) - start )) s)"
done
exit $rc
