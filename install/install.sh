#!/bin/sh
# Installs the built docker-credential-acr client and the docker-credential-acr-engine beside it
# (the client execs the engine for everything but a warm `get`, so they always go in the same
# directory) plus the service files. Builds nothing.
#
# User mode (default): both binaries into PREFIX/bin (PREFIX: /usr/local for root, else ~/.local), the
# per-user agent unit into ${XDG_CONFIG_HOME:-~/.config}/systemd/user/ (Linux) or the launchd
# agent into ~/Library/LaunchAgents/ (macOS). Docker's config.json is never edited: wire
# registries with `docker-credential-acr configure REGISTRY...`.
#
# Node mode (--node): both binaries into the kubelet credential-provider bin dir, the kubelet
# CredentialProviderConfig (only if none exists yet) and the hardened node agent unit.
#
# Idempotent: a file whose content and mode already match is reported "unchanged" and not
# touched, so a second run changes nothing.
#
# DOCKER_CREDENTIAL_ACR_INSTALL_OS overrides `uname -s` (packaging and tests: stage the macOS
# launchd agent from Linux).
set -eu

usage() {
    cat <<'EOF'
Usage: install.sh [options]
  --binary PATH           client to install (default: target/release/docker-credential-acr);
                          docker-credential-acr-engine is taken from the same directory
  --prefix DIR            user mode: install into DIR/bin (default /usr/local as root, else ~/.local)
  --node                  node mode: kubelet credential provider + node agent (system unit)
  --kubelet-bin-dir DIR   node mode: kubelet --image-credential-provider-bin-dir
                          (default /etc/kubernetes/credential-provider)
  --kubelet-config PATH   node mode: kubelet --image-credential-provider-config
                          (default /etc/kubernetes/credential-provider-config.yaml; kept if present)
  --destdir DIR           stage every node-mode path under DIR (packaging, tests)
  --no-systemd            skip the systemd unit / launchd agent
  --dry-run               print what would change; write nothing
  -h, --help              this text
EOF
}

die() {
    echo "install.sh: $*" >&2
    exit 1
}

here=$(CDPATH='' cd -- "$(dirname -- "$0")" && pwd)
name=docker-credential-acr
engine_name=docker-credential-acr-engine
binary=
prefix=
node=0
kubelet_bin_dir=/etc/kubernetes/credential-provider
kubelet_config=/etc/kubernetes/credential-provider-config.yaml
destdir=
service=1
dry_run=0

need_arg() {
    [ $# -ge 2 ] && [ -n "$2" ] || die "$1 needs a value"
}

while [ $# -gt 0 ]; do
    case $1 in
        --binary) need_arg "$@"; binary=$2; shift 2 ;;
        --binary=*) binary=${1#*=}; shift ;;
        --prefix) need_arg "$@"; prefix=$2; shift 2 ;;
        --prefix=*) prefix=${1#*=}; shift ;;
        --node) node=1; shift ;;
        --kubelet-bin-dir) need_arg "$@"; kubelet_bin_dir=$2; shift 2 ;;
        --kubelet-bin-dir=*) kubelet_bin_dir=${1#*=}; shift ;;
        --kubelet-config) need_arg "$@"; kubelet_config=$2; shift 2 ;;
        --kubelet-config=*) kubelet_config=${1#*=}; shift ;;
        --destdir) need_arg "$@"; destdir=$2; shift 2 ;;
        --destdir=*) destdir=${1#*=}; shift ;;
        --no-systemd | --no-service) service=0; shift ;;
        --dry-run | -n) dry_run=1; shift ;;
        -h | --help) usage; exit 0 ;;
        *) usage >&2; die "unknown option: $1" ;;
    esac
done

uid=$(id -u)
os=${DOCKER_CREDENTIAL_ACR_INSTALL_OS:-$(uname -s)}

# --- the binary -------------------------------------------------------------------------------
if [ -z "$binary" ]; then
    for candidate in "$here/../target/release/$name" "./target/release/$name"; do
        if [ -f "$candidate" ]; then
            binary=$candidate
            break
        fi
    done
    [ -n "$binary" ] || die "no binary found: build it first (scripts/build) or pass --binary PATH"
fi
[ -f "$binary" ] && [ -x "$binary" ] || die "not an executable file: $binary"
engine=$(dirname -- "$binary")/$engine_name
[ -f "$engine" ] && [ -x "$engine" ] || die "no $engine_name beside $binary: $engine is not an executable file (both come from the same build)"
"$engine" version >/dev/null 2>&1 || die "$engine does not run ('$engine version' failed)"
version=$("$binary" version 2>/dev/null) || die "$binary does not run ('$binary version' failed)"

# --- helpers ----------------------------------------------------------------------------------
tmpdir=$(mktemp -d "${TMPDIR:-/tmp}/dca-install.XXXXXX")
trap 'rm -rf "$tmpdir"' EXIT HUP INT TERM

changed=0

# has_mode FILE MODE: FILE's permission bits are exactly MODE (octal, e.g. 0755).
has_mode() {
    [ -n "$(find "$1" -prune -perm "$2" 2>/dev/null)" ]
}

# install_file SRC DEST MODE: copy unless DEST already has the same content and mode.
install_file() {
    src=$1 dest=$2 mode=$3
    if [ -f "$dest" ] && cmp -s "$src" "$dest" && has_mode "$dest" "$mode"; then
        echo "unchanged: $dest"
        return 0
    fi
    if [ -e "$dest" ]; then verb=update done=updated; else verb=install done=installed; fi
    changed=1
    if [ "$dry_run" = 1 ]; then
        echo "would $verb: $dest"
        return 0
    fi
    mkdir -p "$(dirname -- "$dest")"
    staged="$dest.tmp.$$"
    cp "$src" "$staged"
    chmod "$mode" "$staged"
    mv -f "$staged" "$dest"
    echo "$done: $dest"
}

# keep_or_install SRC DEST: like install_file, but never replaces a different existing file.
keep_or_install() {
    src=$1 dest=$2
    if [ -f "$dest" ] && ! cmp -s "$src" "$dest"; then
        echo "kept: $dest (exists and differs; merge the provider from $src by hand)"
        return 0
    fi
    install_file "$src" "$dest" 0644
}

# Escapes a path for the replacement side of sed s|..|..|.
sed_escape() {
    printf '%s\n' "$1" | sed 's/[\\|&]/\\&/g'
}

# A path usable on a systemd ExecStart= line: no whitespace, `%` doubled (specifier escape).
unit_path() {
    case $1 in
        *[[:space:]]*) die "path with whitespace cannot go into a systemd unit: $1" ;;
    esac
    printf '%s\n' "$1" | sed 's/%/%%/g'
}

# render_unit TEMPLATE EXEC_START OUT: the unit with its ExecStart= line replaced.
render_unit() {
    exec_line=$(sed_escape "ExecStart=$2")
    sed "s|^ExecStart=.*|$exec_line|" "$1" >"$3"
}

# render_plist TEMPLATE ENGINE OUT: the plist with the program path replaced (XML-escaped).
render_plist() {
    xml=$(printf '%s\n' "$2" | sed 's/&/\&amp;/g; s/</\&lt;/g; s/>/\&gt;/g')
    path=$(sed_escape "$xml")
    sed "s|<string>/usr/local/bin/$engine_name</string>|<string>$path</string>|" "$1" >"$3"
}

if [ "$dry_run" = 1 ]; then
    echo "dry run: nothing is written"
fi
echo "binary: $binary ($version)"

# --- node mode --------------------------------------------------------------------------------
if [ "$node" = 1 ]; then
    if [ "$uid" != 0 ] && [ "$dry_run" = 0 ] && [ -z "$destdir" ]; then
        die "--node installs system files: run as root (or use --dry-run / --destdir)"
    fi
    target="$kubelet_bin_dir/$name"
    engine_target="$kubelet_bin_dir/$engine_name"
    install_file "$binary" "$destdir$target" 0755
    install_file "$engine" "$destdir$engine_target" 0755
    keep_or_install "$here/kubelet/credential-provider-config.yaml" "$destdir$kubelet_config"
    if [ "$service" = 1 ]; then
        render_unit "$here/systemd/docker-credential-acr-agent-system.service" \
            "$(unit_path "$engine_target") agent run --system" "$tmpdir/system.service"
        install_file "$tmpdir/system.service" \
            "$destdir/etc/systemd/system/docker-credential-acr-agent.service" 0644
    fi
    if [ "$changed" = 0 ]; then
        echo "nothing to do: already installed"
    fi
    cat <<EOF
next steps:
  kubelet flags: --image-credential-provider-config=$kubelet_config --image-credential-provider-bin-dir=$kubelet_bin_dir
  identity: /etc/docker-credential-acr/config.toml (see the README)
EOF
    if [ "$service" = 1 ]; then
        echo "  systemctl daemon-reload && systemctl enable --now docker-credential-acr-agent.service"
    fi
    exit 0
fi

# --- user mode --------------------------------------------------------------------------------
if [ -z "$prefix" ]; then
    if [ "$uid" = 0 ]; then prefix=/usr/local; else prefix=${HOME:?HOME is not set}/.local; fi
fi
target="$prefix/bin/$name"
engine_target="$prefix/bin/$engine_name"
install_file "$binary" "$target" 0755
install_file "$engine" "$engine_target" 0755

if [ "$service" = 1 ]; then
    case $os in
        Darwin)
            render_plist "$here/launchd/io.github.docker-credential-acr.agent.plist" "$engine_target" \
                "$tmpdir/agent.plist"
            plist="${HOME:?HOME is not set}/Library/LaunchAgents/io.github.docker-credential-acr.agent.plist"
            install_file "$tmpdir/agent.plist" "$plist" 0644
            service_hint="launchctl bootstrap gui/$uid $plist"
            ;;
        *)
            render_unit "$here/systemd/docker-credential-acr-agent.service" \
                "$(unit_path "$engine_target") agent run" "$tmpdir/user.service"
            config_home=${XDG_CONFIG_HOME:-${HOME:?HOME is not set}/.config}
            install_file "$tmpdir/user.service" \
                "$config_home/systemd/user/docker-credential-acr-agent.service" 0644
            service_hint="systemctl --user daemon-reload && systemctl --user enable --now docker-credential-acr-agent.service"
            ;;
    esac
fi

# --- shell completions and man page -----------------------------------------------------------
# Generated by the binary from its own command-line definition (so they always match it) into
# the places bash-completion, zsh, fish and man look under the prefix.
for spec in "bash:bash-completion/completions/$name" "zsh:zsh/site-functions/_$name" \
    "fish:fish/vendor_completions.d/$name.fish" "man:man/man1/$name.1"; do
    kind=${spec%%:*}
    if [ "$kind" = man ]; then set -- man; else set -- completions "$kind"; fi
    if "$binary" "$@" >"$tmpdir/generated.$kind" 2>/dev/null && [ -s "$tmpdir/generated.$kind" ]; then
        install_file "$tmpdir/generated.$kind" "$prefix/share/${spec#*:}" 0644
    else
        echo "install.sh: skipped $prefix/share/${spec#*:} ('$binary $*' failed)" >&2
    fi
done

if [ "$changed" = 0 ]; then
    echo "nothing to do: already installed"
fi
echo "next steps:"
case ":${PATH:-}:" in
    *":$prefix/bin:"*) ;;
    *) echo "  add $prefix/bin to PATH (docker looks helpers up on PATH)" ;;
esac
docker_config="${DOCKER_CONFIG:-${HOME:-}/.docker}/config.json"
if [ -f "$docker_config" ]; then
    echo "  $docker_config left as it is: wire registries with '$name configure REGISTRY...'"
else
    echo "  wire registries with '$name configure REGISTRY...'"
fi
if [ "$service" = 1 ]; then
    echo "  optional agent service: $service_hint"
fi
