#!/usr/bin/env bash
# Run every test, in order: unit, integration (host postconf/postmap),
# ansible-test sanity, ansible-lint (production profile), Molecule scenarios.
#
#   scripts/test.sh                 all stages
#   scripts/test.sh unit lint ...   only the named stages
#   MOLECULE_SCENARIOS="default" scripts/test.sh molecule
#
# Exits non-zero when any stage fails; prints a closing summary line.
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$ROOT"

ALL_STAGES=(unit integration sanity lint molecule)
stages=("$@")
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
  # in throwaway config directories; includes the slow fault/concurrency group.
  pytest -q -p no:cacheprovider -n 2 tests/integration
}

stage_sanity() {
  # ansible-test needs the collection at ansible_collections/NS/NAME: copy the
  # tracked files there (no .git, so ansible-test looks at every file).
  local dest="$CACHE/sanity/ansible_collections/mailgw/postfix_tls"
  rm -rf "$CACHE/sanity"
  mkdir -p "$dest"
  git ls-files -z --cached --others --exclude-standard | rsync -a --from0 --files-from=- ./ "$dest/"
  (cd "$dest" && ansible-test sanity --venv --python 3.11 --color no \
      --exclude tests/ --exclude bench/ --exclude scripts/ --exclude extensions/ --exclude .ci/ \
      --skip-test shebang)
}

stage_lint() {
  ansible-lint --profile production --offline -q
}

stage_molecule() {
  local scenarios="${MOLECULE_SCENARIOS:-}"
  if [ -z "$scenarios" ]; then
    scenarios="$(cd extensions/molecule && for d in */molecule.yml; do dirname "$d"; done | sort | tr '\n' ' ')"
  fi
  local rc=0 s
  for s in $scenarios; do
    banner "molecule scenario: $s"
    molecule test -s "$s" || { rc=1; echo "molecule scenario $s FAILED"; }
  done
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
