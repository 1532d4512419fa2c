# Shared steps of .ci/install-and-run and .ci/test (sourced, not run).
# Everything here is idempotent and quick when already done.

K2_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${K2TEST_VENV:-$K2_ROOT/.venv}"

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

# Debian packages, installed only when missing; needs root (skipped with a note otherwise).
ensure_apt() {
  local missing=()
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" != 0 ]; then
    log "not root: please install these Debian packages yourself: ${missing[*]}"
    return 0
  fi
  log "apt-get install ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null
  apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
}

# The project's virtualenv with k2lsp installed (editable) plus the given extras.
ensure_venv() {
  local extras="$1"
  if [ ! -x "$VENV/bin/python" ]; then
    log "creating virtualenv $VENV"
    python3 -m venv "$VENV"
  fi
  local stamp="$VENV/.k2lsp-installed-$extras"
  if [ ! -f "$stamp" ] || [ "$K2_ROOT/pyproject.toml" -nt "$stamp" ]; then
    log "installing k2lsp${extras:+[$extras]} into $VENV"
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check -e "$K2_ROOT${extras:+[$extras]}"
    touch "$stamp"
  fi
}

# A running Docker daemon (started here when we are root and none answers).
ensure_dockerd() {
  command -v docker >/dev/null || return 0
  docker info >/dev/null 2>&1 && return 0
  if [ "$(id -u)" != 0 ] || ! command -v dockerd >/dev/null; then
    log "no Docker daemon answers; Docker sandbox tests will be skipped"
    return 0
  fi
  log "starting dockerd"
  setsid dockerd >/var/log/k2lsp-dockerd.log 2>&1 < /dev/null &
  for _ in $(seq 1 60); do
    docker info >/dev/null 2>&1 && return 0
    sleep 1
  done
  log "dockerd did not answer within 60 s (see /var/log/k2lsp-dockerd.log)"
}

# An ordinary user (k2user, in the docker group) and a virtualenv it can use, for the tests that
# attack the sandboxes as a non-root user. Root only; cached in the CI cache's user-venv.
ensure_user_venv() {
  [ "$(id -u)" = 0 ] || return 0
  local user=k2user venv="${K2TEST_USER_VENV:-${K2TEST_CI_CACHE:-/var/cache/k2lsp-ci}/user-venv}"
  id "$user" >/dev/null 2>&1 || useradd -m "$user"
  getent group docker >/dev/null && usermod -aG docker "$user"
  local stamp="$venv/.k2lsp-deps-$(sha256sum "$K2_ROOT/pyproject.toml" | cut -c1-16)"
  [ -f "$stamp" ] && return 0
  log "virtualenv for $user in $venv"
  [ -x "$venv/bin/python" ] || /usr/bin/python3 -m venv "$venv"
  "$venv/bin/python" -m pip install -q --disable-pip-version-check "$K2_ROOT"
  chmod -R a+rX "$venv"
  touch "$stamp"
}
