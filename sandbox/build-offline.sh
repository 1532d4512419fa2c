#!/bin/sh
# Build the k2lsp sandbox image WITHOUT pulling from any container registry:
# a minimal Debian made with debootstrap (from Debian's package archive) and `docker import`.
#
# Usage: sandbox/build-offline.sh [--tag NAME] [--mirror URL] [--force]
#
# The image is cached: it is tagged k2lsp-sandbox:offline-<hash> where <hash> is the SHA-256
# of this script's non-comment lines (its definition). When that tag exists the script is a fast no-op that
# only (re)points the main tag (default k2lsp-sandbox:latest) at it.
set -eu

TAG="k2lsp-sandbox:latest"
MIRROR="${K2LSP_DEBIAN_MIRROR:-}"
SUITE="bookworm"
FORCE=0
PACKAGES="python3,python-is-python3,python3-pip,python3-venv,python3-pytest,git,ca-certificates,make,procps"
while [ $# -gt 0 ]; do
    case "$1" in
        --tag) TAG="$2"; shift 2 ;;
        --mirror) MIRROR="$2"; shift 2 ;;
        --force) FORCE=1; shift ;;
        -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
        *) echo "build-offline.sh: unknown argument: $1" >&2; exit 2 ;;
    esac
done

# The definition is every non-comment line of this script: editing comments keeps the cache.
HASH="$(grep -v '^[[:space:]]*#' "$0" | sha256sum | cut -c1-16)"
CACHED="k2lsp-sandbox:offline-$HASH"

if [ "$FORCE" = 0 ] && docker image inspect "$CACHED" >/dev/null 2>&1; then
    docker tag "$CACHED" "$TAG"
    echo "k2lsp sandbox image up to date: $TAG = $CACHED"
    exit 0
fi

for tool in debootstrap docker tar; do
    command -v "$tool" >/dev/null 2>&1 || { echo "build-offline.sh: '$tool' is required (apt-get install debootstrap docker.io)" >&2; exit 1; }
done
if [ "$(id -u)" != 0 ]; then
    echo "build-offline.sh: debootstrap needs root; run it with sudo" >&2
    exit 1
fi

WORK="$(mktemp -d /var/tmp/k2lsp-rootfs.XXXXXX)"
trap 'rm -rf "$WORK"' EXIT INT TERM
ROOTFS="$WORK/rootfs"
START="$(date +%s)"
if [ -z "$MIRROR" ]; then
    # The mirror this machine's apt already uses (deb822 or one-line sources), else debootstrap's.
    MIRROR="$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null | sed -n 's/^URIs:[[:space:]]*\([^[:space:]]*\/debian\)[[:space:]]*$/\1/p' | head -n 1)"
    [ -n "$MIRROR" ] || MIRROR="$(cat /etc/apt/sources.list 2>/dev/null | sed -n 's/^deb[[:space:]]\{1,\}\(http[^[:space:]]*\/debian\)[[:space:]].*/\1/p' | head -n 1)"
fi
echo "debootstrap $SUITE from ${MIRROR:-the default mirror} into $ROOTFS ..."
debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$ROOTFS" ${MIRROR:+"$MIRROR"} >"$WORK/debootstrap.log" 2>&1 || {
    tail -n 30 "$WORK/debootstrap.log" >&2
    echo "build-offline.sh: debootstrap failed (is ${MIRROR:-the default mirror} reachable? set --mirror)" >&2
    exit 1
}

# The unprivileged user commands run as when the host gives no better uid (see sandbox/README.md).
chroot "$ROOTFS" /usr/sbin/groupadd --gid 1000 k2lsp
chroot "$ROOTFS" /usr/sbin/useradd --uid 1000 --gid 1000 --create-home --shell /bin/bash k2lsp
# Slim: package caches, docs, man pages, locales. Bytecode stays (and is completed): the root
# file system is read-only at run time, so missing .pyc files would be recompiled on every run.
rm -rf "$ROOTFS"/var/cache/apt/archives/*.deb "$ROOTFS"/var/lib/apt/lists/* \
       "$ROOTFS"/usr/share/doc/* "$ROOTFS"/usr/share/man/* "$ROOTFS"/usr/share/info/* \
       "$ROOTFS"/var/log/*.log "$ROOTFS"/var/cache/debconf/*-old
find "$ROOTFS"/usr/share/locale -mindepth 1 -maxdepth 1 ! -name 'en*' -exec rm -rf {} + 2>/dev/null || true
chroot "$ROOTFS" /usr/bin/python3 -m compileall -q -j 0 /usr/lib/python3 /usr/lib/python3.11 >/dev/null 2>&1 || true
# A writable home and /tmp for any uid the sandbox picks.
chmod 1777 "$ROOTFS/tmp"

tar --numeric-owner -C "$ROOTFS" -cf - . | docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'ENV PIP_BREAK_SYSTEM_PACKAGES=1' \
    --change 'ENV PYTHONDONTWRITEBYTECODE=1' \
    --change 'USER 1000:1000' \
    --change 'WORKDIR /home/k2lsp' \
    --change 'CMD ["/bin/bash"]' \
    --change "LABEL org.k2lsp.definition=offline-$HASH" \
    - "$CACHED" >/dev/null
docker tag "$CACHED" "$TAG"
END="$(date +%s)"
SIZE="$(docker image inspect --format '{{.Size}}' "$CACHED")"
echo "built $CACHED (tagged $TAG) in $((END - START)) s, $((SIZE / 1000000)) MB"
