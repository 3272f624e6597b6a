# Sourced by the project's scripts: paths and environment shared by all of them.
ROOT="${ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}"
export ROOT
export CACHE="${MAILGW_CACHE:-$ROOT/.cache}"
export VENV="$CACHE/venv"
export CONTAINERS_CONF="$ROOT/containers.conf"
# The collection is made visible to Ansible as ansible_collections/mailgw/postfix_tls
export COLLECTIONS_DIR="$CACHE/collections"
export ANSIBLE_COLLECTIONS_PATH="$COLLECTIONS_DIR"
export ANSIBLE_ROLES_PATH="$ROOT/roles"
export ANSIBLE_NOCOLOR="${ANSIBLE_NOCOLOR:-1}"
export ANSIBLE_FORCE_COLOR=0
export ANSIBLE_DEPRECATION_WARNINGS=False
export ANSIBLE_LOCALHOST_WARNING=False
export ANSIBLE_INVENTORY_UNPARSED_WARNING=False
export PIP_DISABLE_PIP_VERSION_CHECK=1
export PATH="$VENV/bin:$PATH"
# Postfix container images: one tag per Debian suite, keyed by the build inputs
export IMAGE_REPO="localhost/mailgw-postfix"
# Molecule scenarios live in molecule/ at the collection top (Molecule 26 looks in
# extensions/molecule/ for a collection unless told)
export MOLECULE_GLOB="molecule/*/molecule.yml"
