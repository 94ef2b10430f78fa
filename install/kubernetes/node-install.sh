#!/bin/sh
# Installs docker-credential-acr as the kubelet image credential provider on one node, from
# inside a privileged pod (the DaemonSet in install/kubernetes/node-installer.yaml) or straight
# on the node. Every host path is written under --root (the host's / mounted in the pod).
#
#   1. the binary and the engine beside it (docker-credential-acr-engine, which the client execs
#      for `kubelet` and everything but a warm `get`) into kubelet's
#      --image-credential-provider-bin-dir;
#   2. our provider merged into kubelet's --image-credential-provider-config (other providers,
#      e.g. AKS's acr-credential-provider, kept in place; the file as it was before our first
#      change is kept as FILE.before-docker-credential-acr);
#   3. kubeadm only: the two kubelet flags added to KUBELET_EXTRA_ARGS when absent;
#   4. /etc/docker-credential-acr/config.toml (when --config-toml is given) and the hardened
#      node agent unit docker-credential-acr-agent.service;
#   5. systemctl (through --host-exec): daemon-reload, enable + restart the agent, restart
#      kubelet, each only when what it reads changed since the state recorded in
#      /var/lib/docker-credential-acr/node-install.state. A re-run with nothing new is a no-op.
#
# Profiles (paths each distribution's kubelet already uses):
#   kubeadm  /etc/kubernetes/credential-provider-config.yaml, bin /etc/kubernetes/credential-provider,
#            flags added to KUBELET_EXTRA_ARGS in /etc/default/kubelet (/etc/sysconfig/kubelet on
#            RPM systems), unit kubelet
#   aks      /var/lib/kubelet/credential-provider-config.yaml, bin /var/lib/kubelet/credential-provider
#            (flags already set in /etc/default/kubelet), unit kubelet
#   eks      /etc/eks/image-credential-provider/config.json, bin /etc/eks/image-credential-provider
#            (flags set by nodeadm), unit kubelet
#   k3s      /var/lib/rancher/credentialprovider/config.yaml, bin .../credentialprovider/bin
#            (k3s's own defaults), unit k3s-agent (agents) or k3s (servers)
#   auto     the first whose marks exist: eks, k3s, aks, else kubeadm
# Flags already present in the profile's kubelet flags file win over the profile's paths.
#
# Sources: kubeadm: kubernetes/website docs/setup/production-environment/tools/kubeadm/
# kubelet-integration.md (KUBELET_EXTRA_ARGS in /etc/default/kubelet or /etc/sysconfig/kubelet,
# last in the flag chain). AKS: kubernetes-sigs/cloud-provider-azure
# site/content/en/topics/credential-provider.md (acr-credential-provider in
# /var/lib/kubelet/credential-provider, config /var/lib/kubelet/credential-provider-config.yaml).
# EKS: awslabs/amazon-eks-ami nodeadm/internal/kubelet/image-credential-provider.go (nodeadm
# writes config.json and sets both flags on every boot, so a reboot undoes the merge until this
# installer's pod runs again, which the DaemonSet does). k3s: k3s-io/k3s pkg/cli/cmds/agent.go
# (default --image-credential-provider-bin-dir and -config under /var/lib/rancher/credentialprovider).
set -eu

name=docker-credential-acr
engine_name=docker-credential-acr-engine
die() {
    echo "node-install: $*" >&2
    exit 1
}
usage() {
    cat <<'EOF'
Usage: node-install.sh --binary PATH --provider-config FILE [options]
  --root DIR              the host's / (default /; /host in the DaemonSet)
  --profile NAME          auto (default) | kubeadm | aks | eks | k3s
  --binary PATH           the docker-credential-acr binary to install (with the
                          docker-credential-acr-engine beside it)
  --provider-config FILE  a CredentialProviderConfig holding our provider (merged, not copied)
  --config-toml FILE      installed as /etc/docker-credential-acr/config.toml
  --kubelet-config PATH   override the profile's provider config path (host path)
  --kubelet-bin-dir DIR   override the profile's provider bin dir (host path)
  --host-exec CMD         prefix for systemctl on the host (DaemonSet: nsenter into PID 1);
                          empty: run systemctl directly
  --no-agent              skip the node agent unit
  -h, --help              this text
EOF
}

root=/
profile=auto
binary=
provider_config=
config_toml=
kubelet_config=
kubelet_bin_dir=
host_exec=
agent=1
need() { [ $# -ge 2 ] || die "$1 needs a value"; }
while [ $# -gt 0 ]; do
    case $1 in
        --root) need "$@"; root=$2; shift 2 ;;
        --profile) need "$@"; profile=$2; shift 2 ;;
        --binary) need "$@"; binary=$2; shift 2 ;;
        --provider-config) need "$@"; provider_config=$2; shift 2 ;;
        --config-toml) need "$@"; config_toml=$2; shift 2 ;;
        --kubelet-config) need "$@"; kubelet_config=$2; shift 2 ;;
        --kubelet-bin-dir) need "$@"; kubelet_bin_dir=$2; shift 2 ;;
        --host-exec) need "$@"; host_exec=$2; shift 2 ;;
        --no-agent) agent=0; shift ;;
        -h | --help) usage; exit 0 ;;
        *) usage >&2; die "unknown option: $1" ;;
    esac
done
[ -n "$binary" ] || die "--binary is required"
[ -n "$provider_config" ] || die "--provider-config is required"
[ -f "$binary" ] && [ -x "$binary" ] || die "not an executable file: $binary"
engine=$(dirname -- "$binary")/$engine_name
[ -f "$engine" ] && [ -x "$engine" ] || die "no $engine_name beside $binary: $engine is not an executable file"
[ -f "$provider_config" ] || die "no such file: $provider_config"
[ -z "$config_toml" ] || [ -f "$config_toml" ] || die "no such file: $config_toml"
[ -d "$root" ] || die "no such directory: $root"
root=${root%/}

# h PATH: a host path as seen from here.
h() { printf '%s%s\n' "$root" "$1"; }

# --- profile ----------------------------------------------------------------------------------
if [ "$profile" = auto ]; then
    if [ -d "$(h /etc/eks)" ]; then
        profile=eks
    elif [ -d "$(h /etc/rancher/k3s)" ] || [ -d "$(h /var/lib/rancher/k3s)" ]; then
        profile=k3s
    elif [ -f "$(h /etc/kubernetes/azure.json)" ] || [ -f "$(h /var/lib/kubelet/credential-provider-config.yaml)" ]; then
        profile=aks
    else
        profile=kubeadm
    fi
    echo "profile: $profile (detected)"
else
    echo "profile: $profile"
fi
flags_file=
edit_flags=0
service=kubelet
case $profile in
    kubeadm)
        p_config=/etc/kubernetes/credential-provider-config.yaml
        p_bin=/etc/kubernetes/credential-provider
        # The file kubeadm's kubelet drop-in reads KUBELET_EXTRA_ARGS from: /etc/default/kubelet
        # (DEB) or /etc/sysconfig/kubelet (RPM); the drop-in's EnvironmentFile= line decides.
        flags_file=
        for dropin in /etc/systemd/system/kubelet.service.d/10-kubeadm.conf \
            /usr/lib/systemd/system/kubelet.service.d/10-kubeadm.conf \
            /lib/systemd/system/kubelet.service.d/10-kubeadm.conf; do
            [ -f "$(h "$dropin")" ] || continue
            flags_file=$(sed -n 's|^EnvironmentFile=-\{0,1\}\(/etc/[a-z]*/kubelet\)[[:space:]]*$|\1|p' \
                "$(h "$dropin")" | head -n 1)
            break
        done
        if [ -z "$flags_file" ]; then
            flags_file=/etc/default/kubelet
            if [ ! -f "$(h /etc/default/kubelet)" ] && [ -f "$(h /etc/sysconfig/kubelet)" ]; then
                flags_file=/etc/sysconfig/kubelet
            fi
        fi
        edit_flags=1
        ;;
    aks)
        p_config=/var/lib/kubelet/credential-provider-config.yaml
        p_bin=/var/lib/kubelet/credential-provider
        flags_file=/etc/default/kubelet
        ;;
    eks)
        p_config=/etc/eks/image-credential-provider/config.json
        p_bin=/etc/eks/image-credential-provider
        ;;
    k3s)
        p_config=/var/lib/rancher/credentialprovider/config.yaml
        p_bin=/var/lib/rancher/credentialprovider/bin
        service=k3s
        for unit_dir in /etc/systemd/system /usr/lib/systemd/system /lib/systemd/system; do
            if [ -f "$(h "$unit_dir/k3s-agent.service")" ]; then
                service=k3s-agent
                break
            fi
        done
        ;;
    *) die "unknown profile: $profile (auto, kubeadm, aks, eks or k3s)" ;;
esac

# flag_value FILE FLAG: the value of --FLAG=V or --FLAG V in FILE, if any.
flag_value() {
    [ -f "$1" ] || return 0
    # One word a line; a word may start with VAR= (AKS: KUBELET_FLAGS=--first-flag=...).
    tr -s ' \t"'"'" '\n\n\n\n' <"$1" | sed -n "s|^\(.*=\)\{0,1\}--$2=||p; /--$2\$/{n;p;}" | head -n 1
}
if [ -n "$flags_file" ]; then
    existing_config=$(flag_value "$(h "$flags_file")" image-credential-provider-config)
    existing_bin=$(flag_value "$(h "$flags_file")" image-credential-provider-bin-dir)
    [ -z "$existing_config" ] || p_config=$existing_config
    [ -z "$existing_bin" ] || p_bin=$existing_bin
    if [ "$edit_flags" = 0 ] && { [ -z "$existing_config" ] || [ -z "$existing_bin" ]; }; then
        echo "node-install: warning: $flags_file does not set both --image-credential-provider-config and --image-credential-provider-bin-dir; kubelet will not call the provider until it does" >&2
    fi
fi
kubelet_config=${kubelet_config:-$p_config}
kubelet_bin_dir=${kubelet_bin_dir:-$p_bin}
echo "kubelet: --image-credential-provider-config=$kubelet_config --image-credential-provider-bin-dir=$kubelet_bin_dir"

# --- helpers ----------------------------------------------------------------------------------
tmpdir=$(mktemp -d "${TMPDIR:-/tmp}/dca-node.XXXXXX")
trap 'rm -rf "$tmpdir"' EXIT HUP INT TERM

# put SRC DEST MODE: DEST (a host path) gets SRC's bytes and MODE unless it has them already.
put() {
    dest=$(h "$2")
    if [ -f "$dest" ] && cmp -s "$1" "$dest" && [ -n "$(find "$dest" -prune -perm "$3")" ]; then
        echo "unchanged: $2"
        return 0
    fi
    if [ -e "$dest" ]; then verb=updated; else verb=installed; fi
    mkdir -p "$(dirname -- "$dest")"
    cp "$1" "$dest.tmp.$$"
    chmod "$3" "$dest.tmp.$$"
    mv -f "$dest.tmp.$$" "$dest"
    echo "$verb: $2"
}

# fingerprint HOSTPATH...: one line naming the content of each file (or its absence).
fingerprint() {
    for f in "$@"; do
        if [ -f "$(h "$f")" ]; then
            sha256sum <"$(h "$f")" | cut -d' ' -f1
        else
            echo "absent"
        fi
    done | sha256sum | cut -d' ' -f1
}

host() {
    # shellcheck disable=SC2086 # the prefix is a command line of its own
    $host_exec "$@"
}

# --- 1. validate before touching anything: the merge fails on a broken config ------------------
"$binary" kubelet merge-config --into "$(h "$kubelet_config")" --from "$provider_config" \
    --out "$tmpdir/provider-config" ||
    die "kubelet config not merged; nothing on the node was changed"
unit_path=/etc/systemd/system/$name-agent.service
if [ "$agent" = 1 ]; then
    case $kubelet_bin_dir in
        *[[:space:]]* | *%*) die "the bin dir cannot go into a systemd unit: $kubelet_bin_dir" ;;
    esac
    sed "s|^ExecStart=.*|ExecStart=$kubelet_bin_dir/$engine_name agent run --system|" \
        "$(dirname -- "$0")/../systemd/$name-agent-system.service" >"$tmpdir/agent.service"
fi

# --- 2. files ---------------------------------------------------------------------------------
put "$binary" "$kubelet_bin_dir/$name" 0755
put "$engine" "$kubelet_bin_dir/$engine_name" 0755
if [ -f "$(h "$kubelet_config")" ] && ! cmp -s "$tmpdir/provider-config" "$(h "$kubelet_config")"; then
    backup="$kubelet_config.before-$name"
    if [ ! -e "$(h "$backup")" ]; then
        cp -p "$(h "$kubelet_config")" "$(h "$backup")"
        echo "backup: $backup"
    fi
fi
put "$tmpdir/provider-config" "$kubelet_config" 0644

if [ "$edit_flags" = 1 ]; then
    ff=$(h "$flags_file")
    if [ -z "$(flag_value "$ff" image-credential-provider-config)" ]; then
        flags="--image-credential-provider-config=$kubelet_config --image-credential-provider-bin-dir=$kubelet_bin_dir"
        if [ -f "$ff" ]; then cp "$ff" "$tmpdir/flags"; else : >"$tmpdir/flags"; fi
        if grep -q '^KUBELET_EXTRA_ARGS=' "$tmpdir/flags"; then
            sed "s|^KUBELET_EXTRA_ARGS=\([\"']\{0,1\}\)|KUBELET_EXTRA_ARGS=\1$flags |" \
                "$tmpdir/flags" >"$tmpdir/flags.new"
        else
            cp "$tmpdir/flags" "$tmpdir/flags.new"
            echo "KUBELET_EXTRA_ARGS=\"$flags\"" >>"$tmpdir/flags.new"
        fi
        [ ! -f "$ff" ] || [ -e "$ff.before-$name" ] || cp -p "$ff" "$ff.before-$name"
        put "$tmpdir/flags.new" "$flags_file" 0644
    else
        echo "unchanged: $flags_file (kubelet flags present)"
    fi
fi

config_path=/etc/$name/config.toml
if [ -n "$config_toml" ]; then
    put "$config_toml" "$config_path" 0644
fi
if [ "$agent" = 1 ]; then
    put "$tmpdir/agent.service" "$unit_path" 0644
fi

# --- 3. services: each restarted once per change of what it reads -----------------------------
state=/var/lib/$name/node-install.state
kubelet_now=$(fingerprint "$kubelet_bin_dir/$name" "$kubelet_bin_dir/$engine_name" "$kubelet_config" ${flags_file:+"$flags_file"})
agent_now=$(fingerprint "$kubelet_bin_dir/$engine_name" "$config_path" "$unit_path")
kubelet_was=$(sed -n 's/^kubelet //p' "$(h "$state")" 2>/dev/null || true)
agent_was=$(sed -n 's/^agent //p' "$(h "$state")" 2>/dev/null || true)
did=0
if [ "$agent" = 1 ] && [ "$agent_now" != "$agent_was" ]; then
    host systemctl daemon-reload
    host systemctl enable "$name-agent.service"
    host systemctl restart "$name-agent.service"
    echo "restarted: $name-agent.service"
    did=1
fi
if [ "$kubelet_now" != "$kubelet_was" ]; then
    host systemctl restart "$service"
    echo "restarted: $service"
    did=1
fi
if [ "$did" = 1 ]; then
    mkdir -p "$(dirname -- "$(h "$state")")"
    printf 'kubelet %s\nagent %s\n' "$kubelet_now" "$agent_now" >"$(h "$state").tmp"
    mv -f "$(h "$state").tmp" "$(h "$state")"
else
    echo "nothing to do: already installed"
fi
