# shellcheck shell=bash
# Set-up of the OpenG2P integration suite (tools/openg2p_test): source it after tools/setup.sh
# and call openg2p_setup after g2p_setup. Idempotent and cached.
#
# openg2p_setup
#   1. finds OpenG2P's modules: the addons directories listed in $OPENG2P_ADDONS (comma-separated,
#      as in an Odoo addons_path), or else the archive ../shared/openg2p/openg2p-17.0-addons.tar.gz
#      seen from the repository root ($OPENG2P_ARCHIVE overrides it). Without either it returns 1
#      and says why in $OPENG2P_SKIP_REASON: the suite is then skipped;
#   2. copies them into $OPENG2P_DIR/addons, never changing the original, with three changes:
#      OpenG2P's own g2p_encryption, g2p_encryption_keymanager and g2p_registry_encryption (same
#      module name as this addon) go to $OPENG2P_DIR/baseline instead, for the baseline run;
#      the tests/ of queue_job, storage_* and server_environment are left out (they import
#      test-only packages and are not under test; component/tests stays: g2p_program_documents'
#      tests import it); the version range of cryptography in a manifest (g2p_openid_vci asks
#      cryptography>36,<37, which Odoo 17's 3.4.8 fails at install although it runs) is dropped;
#   3. installs the Python packages they import (tools/requirements-openg2p*.txt) into the venv,
#      with every package already there kept as a constraint, and checks that Odoo's pins held;
#   4. writes the Odoo configurations $OPENG2P_CONF (Odoo, this addon, OpenG2P) and
#      $OPENG2P_BASELINE_CONF (Odoo, OpenG2P, OpenG2P's own encryption modules).

OPENG2P_ARCHIVE="${OPENG2P_ARCHIVE:-$ADDON_DIR/../shared/openg2p/openg2p-17.0-addons.tar.gz}"
OPENG2P_DIR="$WORK_DIR/openg2p"
OPENG2P_CONF="$OPENG2P_DIR/odoo.conf"
OPENG2P_BASELINE_CONF="$OPENG2P_DIR/odoo-baseline.conf"
# shellcheck disable=SC2034  # read by tools/openg2p_test
OPENG2P_SKIP_REASON=""
# The modules the suite installs, and whose tests it runs (g2p_entitlement_voucher has none).
OPENG2P_MODULES="g2p_registry_base,g2p_registry_individual,g2p_registry_group,g2p_registry_membership"
OPENG2P_MODULES="$OPENG2P_MODULES,g2p_openid_vci,g2p_programs,g2p_program_documents,g2p_payment_files"
OPENG2P_MODULES="$OPENG2P_MODULES,g2p_entitlement_voucher"
OPENG2P_TEST_TAGS="/g2p_registry_base,/g2p_registry_individual,/g2p_registry_group"
OPENG2P_TEST_TAGS="$OPENG2P_TEST_TAGS,/g2p_registry_membership,/g2p_openid_vci,/g2p_payment_files"
OPENG2P_TEST_TAGS="$OPENG2P_TEST_TAGS,/g2p_programs,/g2p_program_documents"
# OpenG2P's own encryption modules: the baseline; never on the addons path next to this addon.
OPENG2P_OWN_ENCRYPTION="g2p_encryption g2p_encryption_keymanager g2p_registry_encryption"
# Bump when the copy rules of _openg2p_copy change, so that cached copies are made again.
_OPENG2P_COPY_RULES=1

# Copies the modules found in the directories given as arguments (each an addons directory, or a
# directory whose subdirectories are addons directories, as the archive's) into $1 and $2.
_openg2p_copy_modules() {
    local dest="$1" baseline="$2"
    shift 2
    local src manifest module
    for src in "$@"; do
        while IFS= read -r manifest; do
            module="$(basename "$(dirname "$manifest")")"
            if [[ " $OPENG2P_OWN_ENCRYPTION " == *" $module "* ]]; then
                [ -e "$baseline/$module" ] || cp -a "$(dirname "$manifest")" "$baseline/"
            elif [ ! -e "$dest/$module" ]; then
                cp -a "$(dirname "$manifest")" "$dest/"
            fi
        done < <(find -L "$src" -mindepth 2 -maxdepth 3 -name __manifest__.py | sort)
    done
    rm -rf "$dest"/queue_job/tests "$dest"/storage_*/tests "$dest"/server_environment/tests
    # cryptography>36,<37 (g2p_openid_vci) -> cryptography: it runs with Odoo 17's 3.4.8.
    sed -i -E 's/(["'\''])cryptography[^"'\'']*(["'\''])/\1cryptography\2/' "$dest"/*/__manifest__.py
}

_openg2p_copy() {
    local addons="$OPENG2P_DIR/addons" baseline="$OPENG2P_DIR/baseline"
    local key tmp dirs=()
    if [ -n "${OPENG2P_ADDONS:-}" ]; then
        IFS=, read -r -a dirs <<< "$OPENG2P_ADDONS"
        local dir
        for dir in "${dirs[@]}"; do
            [ -d "$dir" ] || die "OPENG2P_ADDONS names '$dir', which is not a directory."
        done
        # The user's tree may change between runs: it is copied again every time (a few MB).
        key="addons"
    elif [ -f "$OPENG2P_ARCHIVE" ]; then
        key="archive-$(sha1sum < "$OPENG2P_ARCHIVE" | cut -c1-16)-$_OPENG2P_COPY_RULES"
        [ -f "$OPENG2P_DIR/.stamp-copy-$key" ] && return 0
    else
        # shellcheck disable=SC2034
        OPENG2P_SKIP_REASON="no OpenG2P modules: neither $OPENG2P_ARCHIVE nor OPENG2P_ADDONS=/path/to/addons"
        return 1
    fi
    log "copying OpenG2P's modules into $OPENG2P_DIR"
    tmp="$OPENG2P_DIR/partial"
    rm -rf "$tmp" && mkdir -p "$tmp/addons" "$tmp/baseline"
    if [ ${#dirs[@]} -eq 0 ]; then
        mkdir -p "$tmp/archive"
        tar -xzf "$OPENG2P_ARCHIVE" -C "$tmp/archive"
        # openg2p-17.0/addons/<module>, openg2p-17.0/openg2p_encryption/<module>
        dirs=("$tmp/archive"/*/)
    fi
    _openg2p_copy_modules "$tmp/addons" "$tmp/baseline" "${dirs[@]}"
    rm -rf "$tmp/archive"
    local module missing=()
    for module in ${OPENG2P_MODULES//,/ } queue_job component; do
        [ -f "$tmp/addons/$module/__manifest__.py" ] || missing+=("$module")
    done
    [ ${#missing[@]} -eq 0 ] ||
        die "OpenG2P's modules are incomplete, missing: ${missing[*]} (looked in ${OPENG2P_ADDONS:-$OPENG2P_ARCHIVE})."
    rm -rf "$addons" "$baseline" "$OPENG2P_DIR"/.stamp-copy-*
    mv "$tmp/addons" "$addons" && mv "$tmp/baseline" "$baseline" && rm -rf "$tmp"
    touch "$OPENG2P_DIR/.stamp-copy-$key"
}

# Installs what OpenG2P's modules import, keeping every package of the venv where it is: the
# venv is shared by every clone on the machine, and Odoo 17 breaks with a newer cryptography.
_openg2p_python() {
    local reqs=("$ADDON_DIR/tools/requirements-openg2p.txt" "$ADDON_DIR/tools/requirements-openg2p-nodeps.txt")
    local stamp
    stamp="openg2p-$(cat "${reqs[@]}" | sha1sum | cut -c1-16)"
    [ -f "$VENV/.stamp-$stamp" ] && return 0
    log "installing the Python packages of OpenG2P's modules into $VENV"
    local before="$OPENG2P_DIR/pip-before.txt" after="$OPENG2P_DIR/pip-after.txt"
    "$PYTHON" -m pip freeze --disable-pip-version-check > "$before"
    "$PYTHON" -m pip install -q --disable-pip-version-check -c "$before" -r "${reqs[0]}"
    "$PYTHON" -m pip install -q --disable-pip-version-check --no-deps -r "${reqs[1]}"
    "$PYTHON" -m pip freeze --disable-pip-version-check > "$after"
    local moved
    moved="$(comm -23 <(sort "$before") <(sort "$after"))"
    [ -z "$moved" ] || die "installing OpenG2P's packages changed packages of the venv:
$moved
       Reinstall them (pip install -r $VENV/odoo-requirements.txt) and report this."
    "$PYTHON" - <<'PY' || die "the venv no longer satisfies Odoo 17 after installing OpenG2P's packages."
import importlib.metadata as md
import odoo  # noqa: F401
for name, version in {"cryptography": "3.4.8", "pyOpenSSL": "21.0.0", "urllib3": "1.26.5"}.items():
    assert md.version(name) == version, f"{name} {md.version(name)}, Odoo 17 needs {version}"
PY
    touch "$VENV/.stamp-$stamp"
}

_openg2p_write_configs() {
    local key_file="$WORK_DIR/master.key"
    local odoo_paths="$ODOO_DIR/addons,$ODOO_DIR/odoo/addons"
    local conf paths
    for conf in "$OPENG2P_CONF" "$OPENG2P_BASELINE_CONF"; do
        if [ "$conf" = "$OPENG2P_CONF" ]; then
            paths="$odoo_paths,$ADDONS_LINK_DIR,$OPENG2P_DIR/addons"
        else
            paths="$odoo_paths,$OPENG2P_DIR/addons,$OPENG2P_DIR/baseline"
        fi
        cat > "$conf" <<EOF
[options]
addons_path = $paths
data_dir = $WORK_DIR/data
http_interface = 127.0.0.1
list_db = False
g2p_encryption_master_key_file = $key_file
EOF
    done
}

# Returns 1, with the reason in $OPENG2P_SKIP_REASON, when no OpenG2P modules are available.
openg2p_setup() {
    mkdir -p "$OPENG2P_DIR"
    _openg2p_copy || return 1
    _openg2p_python
    _openg2p_write_configs
}

# The baseline run has no OpenG2P encryption modules to compare with when the user's tree lacks them.
openg2p_has_baseline() {
    [ -f "$OPENG2P_DIR/baseline/g2p_encryption/__manifest__.py" ]
}

# odoo-bin with the OpenG2P configuration: openg2p_odoo_bin CONF ARGS...
openg2p_odoo_bin() {
    local conf="$1"
    shift
    "$PYTHON" "$ODOO_DIR/odoo-bin" -c "$conf" "$@"
}

# A free TCP port on 127.0.0.1, for the HTTP server Odoo's test runner starts.
free_port() {
    "$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
