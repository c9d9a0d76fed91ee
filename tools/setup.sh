# shellcheck shell=bash
# Shared set-up of tools/run, tools/test and tools/bench: source it, do not run it.
#
# Idempotent. On a fresh machine it
#   1. gets Odoo 17.0 once into a cache outside the clone, from $ODOO_SRC: a local Odoo tree,
#      a git directory (bare or not) holding Odoo 17.0, or a git URL (default: the local mirror
#      below when it exists, else the official repository, branch 17.0, shallow);
#   2. makes a virtualenv there with Odoo's pinned requirements (python-ldap left out: only
#      auth_ldap needs it) and this addon's runtime and dev requirements;
#   3. starts PostgreSQL when it is not running and gives the current OS user a role;
#   4. writes an Odoo configuration for this clone (addons path, data dir, master key file).
# g2p_install_chromium installs Debian's chromium, for the browser tour, when no Chrome/Chromium
# is on PATH: only the test tools call it (tools/test, tools/openg2p_test), not tools/run.
# Everything it makes lives under $G2P_CACHE (default ~/.cache/g2p_encryption).

set -euo pipefail

ADDON_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
G2P_CACHE="${G2P_CACHE:-$HOME/.cache/g2p_encryption}"
# Where Odoo comes from when the cache below lacks it and ODOO_SRC is unset: the mirror of Odoo
# 17.0 that this workplace keeps (CI runs here, in a fresh clone, and cannot reach GitHub), and
# the official repository as the last resort.
ODOO_MIRROR="/work/.mirror/3bdo72+odoo17/repo"
if [ -z "${ODOO_SRC:-}" ]; then
    if [ -d "$ODOO_MIRROR" ]; then ODOO_SRC="$ODOO_MIRROR"; else ODOO_SRC="https://github.com/odoo/odoo.git"; fi
fi
ODOO_DIR="$G2P_CACHE/odoo-17.0"
VENV="$G2P_CACHE/venv"
PYTHON="$VENV/bin/python"
# One work area per clone, so two clones on one machine do not share databases or data dirs.
CLONE_ID="$(printf '%s' "$ADDON_DIR" | sha1sum | cut -c1-10)"
WORK_DIR="$G2P_CACHE/work/$CLONE_ID"
ODOO_CONF="$WORK_DIR/odoo.conf"
# Odoo finds an addon by its directory name, and a clone may be called anything.
ADDONS_LINK_DIR="$WORK_DIR/addons"
ADDON_LINK="$ADDONS_LINK_DIR/g2p_encryption"

log() { printf '[setup] %s\n' "$*" >&2; }
die() { printf '[setup] ERROR: %s\n' "$*" >&2; exit 1; }

_fetch_odoo() {
    [ -f "$ODOO_DIR/odoo-bin" ] && return 0
    local tmp="$ODOO_DIR.partial"
    rm -rf "$tmp" && mkdir -p "$tmp"
    local parts=(odoo odoo-bin addons setup.py requirements.txt)
    if [ -d "$ODOO_SRC" ] && [ -f "$ODOO_SRC/odoo-bin" ]; then
        log "copying Odoo from the tree $ODOO_SRC"
        (cd "$ODOO_SRC" && cp -a "${parts[@]}" "$tmp/")
    elif [ -d "$ODOO_SRC" ] && git --git-dir="$ODOO_SRC" rev-parse --verify -q HEAD >/dev/null 2>&1; then
        log "exporting Odoo from the git directory $ODOO_SRC"
        git --git-dir="$ODOO_SRC" archive HEAD "${parts[@]}" | tar -x -C "$tmp"
    elif [ -d "$ODOO_SRC/.git" ]; then
        log "exporting Odoo from the git checkout $ODOO_SRC"
        git -C "$ODOO_SRC" archive HEAD "${parts[@]}" | tar -x -C "$tmp"
    else
        log "cloning Odoo 17.0 from $ODOO_SRC (shallow; this takes a few minutes)"
        git clone -q --depth 1 --branch 17.0 "$ODOO_SRC" "$tmp/clone" ||
            die "Odoo 17.0 could not be had from '$ODOO_SRC'. Set ODOO_SRC to a local Odoo 17.0 tree,
       to a git directory holding Odoo 17.0, or to a reachable git URL, then run this again."
        (cd "$tmp/clone" && mv "${parts[@]}" "$tmp/") && rm -rf "$tmp/clone"
    fi
    grep -q "version_info = (17, 0" "$tmp/odoo/release.py" ||
        die "'$ODOO_SRC' does not hold Odoo 17.0 (odoo/release.py says otherwise)."
    mv "$tmp" "$ODOO_DIR"
}

_make_venv() {
    local reqs=(
        "$ODOO_DIR/requirements.txt" "$ADDON_DIR/requirements.txt" "$ADDON_DIR/tools/requirements-dev.txt"
    )
    local stamp
    stamp="$(cat "${reqs[@]}" | sha1sum | cut -c1-16)"
    [ -f "$VENV/.stamp-$stamp" ] && return 0
    command -v python3 >/dev/null || die "python3 (3.10 or 3.11, as Odoo 17 needs) is not installed."
    log "installing Python dependencies into $VENV"
    [ -x "$PYTHON" ] || python3 -m venv "$VENV"
    grep -v '^python-ldap' "$ODOO_DIR/requirements.txt" > "$VENV/odoo-requirements.txt"
    "$PYTHON" -m pip install -q --disable-pip-version-check "pip<25" wheel
    "$PYTHON" -m pip install -q --disable-pip-version-check \
        -r "$VENV/odoo-requirements.txt" -r "$ADDON_DIR/requirements.txt" \
        -r "$ADDON_DIR/tools/requirements-dev.txt"
    # Odoo is run from its source tree, not installed: make it importable for pytest-odoo.
    "$PYTHON" -c 'import site, sys; print(sys.argv[1], file=open(site.getsitepackages()[0] + "/odoo-src.pth", "w"))' \
        "$ODOO_DIR"
    rm -f "$VENV"/.stamp-* && touch "$VENV/.stamp-$stamp"
}

_start_postgresql() {
    if ! command -v pg_isready >/dev/null; then
        die "PostgreSQL client tools are missing: apt-get install postgresql (15 or later)."
    fi
    if ! pg_isready -q; then
        local version
        version="$(pg_lsclusters -h 2>/dev/null | awk 'NR==1 {print $1}')"
        [ -n "$version" ] || die "no PostgreSQL cluster found: apt-get install postgresql."
        log "starting PostgreSQL $version"
        pg_ctlcluster --skip-systemctl-redirect "$version" main start
        for _ in $(seq 1 30); do pg_isready -q && break; sleep 0.5; done
        pg_isready -q || die "PostgreSQL did not start."
    fi
    local user
    user="$(id -un)"
    if ! psql -d postgres -Atc "select 1" >/dev/null 2>&1; then
        log "creating the PostgreSQL role $user"
        su postgres -c "createuser --superuser '$user'" 2>/dev/null ||
            die "cannot create the PostgreSQL role '$user'; create it (createdb rights) and run again."
    fi
}

_write_config() {
    mkdir -p "$WORK_DIR/data" "$ADDONS_LINK_DIR"
    ln -sfn "$ADDON_DIR" "$ADDON_LINK"
    # A development master key, outside the clone and outside the database.
    local key_file="$WORK_DIR/master.key"
    if [ ! -f "$key_file" ]; then
        (umask 077 && head -c 32 /dev/urandom | base64 > "$key_file")
    fi
    cat > "$ODOO_CONF" <<EOF
[options]
addons_path = $ODOO_DIR/addons,$ODOO_DIR/odoo/addons,$ADDONS_LINK_DIR
data_dir = $WORK_DIR/data
http_interface = 127.0.0.1
http_port = ${G2P_HTTP_PORT:-8069}
list_db = False
g2p_encryption_master_key_file = $key_file
EOF
}

_find_chrome() {
    local bin
    for bin in google-chrome chromium chromium-browser google-chrome-stable; do
        command -v "$bin" >/dev/null && return 0
    done
    return 1
}

# The browser tour (tests/test_admin_tour.py) needs a Chrome or Chromium on PATH: Odoo looks for
# google-chrome, chromium, chromium-browser, google-chrome-stable. Without one, that test skips.
g2p_install_chromium() {
    _find_chrome && return 0
    if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
        log "no Chrome/Chromium on PATH and cannot apt-get install chromium (not root, or no apt):
         the browser tour test will be skipped. Install Debian's 'chromium' to run it."
        return 0
    fi
    log "installing Debian's chromium for the browser tour test"
    _apt_install chromium "the browser tour test will be skipped"
}

# apt-get install of the Debian package $1 (as root); on failure, logs it and what it means ($2).
_apt_install() {
    # Waits for a concurrent apt-get (another set-up on this machine) rather than failing.
    local apt=(env DEBIAN_FRONTEND=noninteractive apt-get -y -qq -o DPkg::Lock::Timeout=600)
    # The package lists may be missing or stale: update them once when the first try fails.
    "${apt[@]}" install --no-install-recommends "$1" >/dev/null 2>&1 ||
        { "${apt[@]}" update >/dev/null && "${apt[@]}" install --no-install-recommends "$1" >/dev/null; } ||
        log "apt-get install $1 failed: $2."
}

# Odoo turns its stylesheets right-to-left for Arabic readers with the rtlcss tool (npm); without
# it the web client keeps its left-to-right layout, and the right-to-left test
# (tests/test_translations.py) skips, saying so. Only the test tools call this, not g2p_setup.
g2p_install_rtlcss() {
    command -v rtlcss >/dev/null && return 0
    if ! command -v npm >/dev/null; then
        log "rtlcss is not on PATH and npm is missing: the right-to-left (Arabic) test will be
         skipped. Install Node.js and 'npm install -g rtlcss' to run it."
        return 0
    fi
    log "installing rtlcss (npm) for the right-to-left test"
    npm install -g --no-fund --no-audit "rtlcss@4" >/dev/null 2>&1 ||
        log "npm install -g rtlcss failed: the right-to-left (Arabic) test will be skipped."
}

# The pkcs11 provider's tests (core/tests/test_pkcs11_token.py, tests/test_provider_pkcs11.py) and
# tools/run --with-hsm need SoftHSM2, a real PKCS#11 token in files: Debian's softhsm2. Without it
# those tests skip, saying so. Only the test tools and --with-hsm call this, not g2p_setup.
g2p_install_softhsm() {
    command -v softhsm2-util >/dev/null && return 0
    if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
        log "softhsm2-util is not on PATH and cannot apt-get install softhsm2 (not root, or no apt):
         the PKCS#11 tests will be skipped. Install Debian's 'softhsm2' to run them."
        return 0
    fi
    log "installing Debian's softhsm2 for the PKCS#11 provider's tests"
    _apt_install softhsm2 "the PKCS#11 tests will be skipped"
}

g2p_setup() {
    mkdir -p "$G2P_CACHE"
    _fetch_odoo
    _make_venv
    _start_postgresql
    _write_config
}

odoo_bin() {
    "$PYTHON" "$ODOO_DIR/odoo-bin" -c "$ODOO_CONF" "$@"
}
