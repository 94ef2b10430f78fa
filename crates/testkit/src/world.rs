//! [`World`]: a throw-away environment (HOME, XDG dirs, DOCKER_CONFIG, a
//! `bin/` on PATH) plus a hosts file pointing Azure names at a
//! [`FakeAzure`], applied to programs through a private mount namespace.

use crate::fake::FakeAzure;
use std::ffi::OsStr;
use std::net::Ipv4Addr;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

/// Names every world resolves to the fake.
const DEFAULT_HOSTS: &[&str] = &[
    "myreg.azurecr.io",
    "second.azurecr.io",
    "third.azurecr.io",
    "myreg.azurecr.cn",
    "myreg.azurecr.us",
    "login.microsoftonline.com",
    "login.chinacloudapi.cn",
    "login.microsoftonline.us",
    "oidc.example.test",
];

/// One invocation recorded by [`World::spy_bin`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpyCall {
    /// Arguments after the program name.
    pub args: Vec<String>,
    /// Everything the caller wrote to stdin, byte for byte (lossy UTF-8).
    pub stdin: String,
}

/// An isolated test environment bound to one [`FakeAzure`]. Dropping it
/// deletes its directory; processes a test started are the test's to stop.
pub struct World {
    dir: tempfile::TempDir,
    ip: Ipv4Addr,
    ca_pem: PathBuf,
    hosts: Mutex<Vec<String>>,
}

impl std::fmt::Debug for World {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("World")
            .field("root", &self.dir.path())
            .field("ip", &self.ip)
            .finish_non_exhaustive()
    }
}

impl World {
    /// Creates the directories and hosts file for a test against `fake`.
    pub fn new(fake: &FakeAzure) -> World {
        let dir = tempfile::Builder::new()
            .prefix("acr-testkit-world.")
            .tempdir()
            .expect("tempdir");
        for sub in [
            "home", "run", "config", "cache", "state", "docker", "bin", "tmp", "certs",
        ] {
            std::fs::create_dir_all(dir.path().join(sub)).expect("create world dir");
        }
        std::fs::set_permissions(
            dir.path().join("run"),
            std::fs::Permissions::from_mode(0o700),
        )
        .expect("chmod run dir");
        let mut hosts: Vec<String> = DEFAULT_HOSTS.iter().map(|s| s.to_string()).collect();
        for name in fake.cert_names() {
            if !name.contains('*') && name != "localhost" && !hosts.contains(name) {
                hosts.push(name.clone());
            }
        }
        let world = World {
            dir,
            ip: fake.ip(),
            ca_pem: fake.ca_pem_path().to_path_buf(),
            hosts: Mutex::new(hosts),
        };
        world.write_hosts();
        world
    }

    fn write_hosts(&self) {
        let hosts = self.hosts.lock().unwrap_or_else(|e| e.into_inner());
        let mut text = String::from("127.0.0.1 localhost\n");
        for h in hosts.iter() {
            text.push_str(&format!("{} {h}\n", self.ip));
        }
        std::fs::write(self.hosts_file(), text).expect("write hosts file");
    }

    /// Also resolves `name` to the fake (it must be covered by the certificate
    /// for HTTPS, e.g. `*.azurecr.io` or a [`crate::FakeOptions::extra_name`]).
    pub fn add_host(&self, name: &str) {
        {
            let mut hosts = self.hosts.lock().unwrap_or_else(|e| e.into_inner());
            if !hosts.iter().any(|h| h == name) {
                hosts.push(name.to_string());
            }
        }
        self.write_hosts();
    }

    /// Root of the world's temporary directory.
    pub fn root(&self) -> &Path {
        self.dir.path()
    }
    /// `HOME` of programs run through [`World::command`].
    pub fn home(&self) -> PathBuf {
        self.root().join("home")
    }
    /// `XDG_RUNTIME_DIR` (mode 0700): where the agent puts its socket.
    pub fn run_dir(&self) -> PathBuf {
        self.root().join("run")
    }
    /// `XDG_CONFIG_HOME`.
    pub fn config_dir(&self) -> PathBuf {
        self.root().join("config")
    }
    /// `XDG_CACHE_HOME`.
    pub fn cache_dir(&self) -> PathBuf {
        self.root().join("cache")
    }
    /// `XDG_STATE_HOME`.
    pub fn state_dir(&self) -> PathBuf {
        self.root().join("state")
    }
    /// `DOCKER_CONFIG` (holds `config.json`).
    pub fn docker_config(&self) -> PathBuf {
        self.root().join("docker")
    }
    /// First entry of `PATH`: put fake tools (`az`) here.
    pub fn bin_dir(&self) -> PathBuf {
        self.root().join("bin")
    }
    /// The hosts file bind-mounted over `/etc/hosts`.
    pub fn hosts_file(&self) -> PathBuf {
        self.root().join("hosts")
    }
    /// The CA PEM given to programs as `SSL_CERT_FILE`.
    pub fn ca_pem(&self) -> &Path {
        &self.ca_pem
    }

    /// A command running `program` with a cleared, isolated environment and
    /// `/etc/hosts` replaced by the world's hosts file (private mount
    /// namespace via `unshare`). Arguments added later with `.arg()` go to
    /// `program`; add `AZURE_*` and friends with `.env()`.
    ///
    /// The environment is cleared, then: `PATH` (world `bin/` first), `HOME`,
    /// `XDG_{RUNTIME_DIR,CONFIG_HOME,CACHE_HOME,STATE_HOME}`, `DOCKER_CONFIG`,
    /// `TMPDIR`, `SSL_CERT_FILE` and `CURL_CA_BUNDLE` (the fake's CA),
    /// `SSL_CERT_DIR` (an empty dir, hiding the system store),
    /// `RUST_BACKTRACE=1`, `LANG=C`. The working directory is `HOME`.
    /// `unshare` execs in place, so the child's pid is `program`'s pid.
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let unshare = if Path::new("/usr/bin/unshare").exists() {
            "/usr/bin/unshare"
        } else {
            "unshare"
        };
        let mut cmd = Command::new(unshare);
        cmd.args(["--mount", "--propagation", "private", "sh", "-c"])
            .arg(r#"mount --bind "$0" /etc/hosts && exec "$@""#)
            .arg(self.hosts_file())
            .arg(program.as_ref());
        let real_path = std::env::var_os("PATH").unwrap_or_default();
        let mut path = self.bin_dir().into_os_string();
        for p in [
            real_path.as_os_str(),
            OsStr::new("/usr/sbin:/usr/bin:/sbin:/bin"),
        ] {
            if !p.is_empty() {
                path.push(":");
                path.push(p);
            }
        }
        cmd.env_clear()
            .current_dir(self.home())
            .env("PATH", path)
            .env("HOME", self.home())
            .env("XDG_RUNTIME_DIR", self.run_dir())
            .env("XDG_CONFIG_HOME", self.config_dir())
            .env("XDG_CACHE_HOME", self.cache_dir())
            .env("XDG_STATE_HOME", self.state_dir())
            .env("DOCKER_CONFIG", self.docker_config())
            .env("TMPDIR", self.root().join("tmp"))
            .env("SSL_CERT_FILE", &self.ca_pem)
            // Debian's curl ignores SSL_CERT_FILE but honours this one.
            .env("CURL_CA_BUNDLE", &self.ca_pem)
            .env("SSL_CERT_DIR", self.root().join("certs"))
            .env("RUST_BACKTRACE", "1")
            .env("LANG", "C");
        cmd
    }

    /// Registers a fresh secret app in `fake` and returns its
    /// `AZURE_TENANT_ID` / `AZURE_CLIENT_ID` / `AZURE_CLIENT_SECRET` pairs.
    pub fn env_secret_app(&self, fake: &FakeAzure) -> Vec<(String, String)> {
        let tenant = crate::jwt::uuid();
        let client_id = crate::jwt::uuid();
        let secret = format!("s3cr3t~{}", crate::jwt::random_secret(18));
        fake.add_secret_app(&tenant, &client_id, &secret);
        vec![
            ("AZURE_TENANT_ID".into(), tenant),
            ("AZURE_CLIENT_ID".into(), client_id),
            ("AZURE_CLIENT_SECRET".into(), secret),
        ]
    }

    /// Writes `bin/az`: `az account get-access-token --scope S|--resource R`
    /// prints a token the fake accepts (ACR or ARM audience, valid ~1 year);
    /// every call appends its arguments to `bin/az.calls` (see [`World::az_calls`]).
    pub fn install_fake_az(&self, fake: &FakeAzure, tenant: &str, client_id: &str) {
        let year = Duration::from_secs(365 * 86_400);
        let acr = fake.mint_entra_token(tenant, client_id, crate::ACR_RESOURCE, year);
        let arm = fake.mint_entra_token(tenant, client_id, crate::ARM_RESOURCE, year);
        let exp = crate::jwt::now_secs() + year.as_secs();
        let calls = self.bin_dir().join("az.calls");
        let script = format!(
            r#"#!/bin/sh
printf '%s\n' "$*" >> '{calls}'
if [ "$1" != account ] || [ "$2" != get-access-token ]; then
  echo "ERROR: fake az: unsupported command: $*" >&2; exit 1
fi
shift 2
res=""
while [ $# -gt 0 ]; do
  case "$1" in
    --scope|--scopes|--resource) res="$2"; shift 2 ;;
    --scope=*|--scopes=*|--resource=*) res="${{1#*=}}"; shift ;;
    -o|--output|--tenant|-t|--subscription) shift 2 ;;
    --output=*|--tenant=*|--subscription=*|--only-show-errors) shift ;;
    *) echo "ERROR: fake az: unrecognized argument: $1" >&2; exit 1 ;;
  esac
done
res="${{res%/.default}}"
case "$res" in
  https://containerregistry.azure.net|https://containerregistry.azure.net/) tok='{acr}' ;;
  https://management.core.windows.net|https://management.core.windows.net/|https://management.azure.com|https://management.azure.com/) tok='{arm}' ;;
  *) echo "ERROR: fake az: unsupported resource '$res'" >&2; exit 1 ;;
esac
printf '{{"accessToken":"%s","expiresOn":"2030-01-01 00:00:00.000000","expires_on":{exp},"subscription":"sub","tenant":"{tenant}","tokenType":"Bearer"}}\n' "$tok"
"#,
            calls = calls.display(),
        );
        let az = self.bin_dir().join("az");
        std::fs::write(&az, script).expect("write fake az");
        std::fs::set_permissions(&az, std::fs::Permissions::from_mode(0o755)).expect("chmod az");
    }

    /// Makes `target` callable as `name` from the world's `PATH` (a symlink
    /// in [`World::bin_dir`]), e.g. the helper under test as
    /// `docker-credential-acr` for clients that look helpers up on `PATH`.
    pub fn link_bin(&self, name: &str, target: impl AsRef<Path>) -> PathBuf {
        let link = self.bin_dir().join(name);
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(target.as_ref(), &link).expect("symlink into world bin/");
        link
    }

    /// Like [`World::link_bin`], but through a recording wrapper: every call's
    /// arguments and stdin are kept (see [`World::spy_calls`]) before `target`
    /// runs with them. Shows exactly how a third-party client drives a helper.
    pub fn spy_bin(&self, name: &str, target: impl AsRef<Path>) -> PathBuf {
        let calls = self.spy_dir(name);
        std::fs::create_dir_all(&calls).expect("create spy dir");
        let script = format!(
            r#"#!/bin/sh
f='{calls}'/"$(date +%s%N).$$"
printf '%s
' "$@" > "$f.args"
cat > "$f.stdin"
exec '{target}' "$@" < "$f.stdin"
"#,
            calls = calls.display(),
            target = target.as_ref().display(),
        );
        let path = self.bin_dir().join(name);
        let _ = std::fs::remove_file(&path);
        std::fs::write(&path, script).expect("write spy wrapper");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
            .expect("chmod spy wrapper");
        path
    }

    fn spy_dir(&self, name: &str) -> PathBuf {
        self.root().join("spy").join(name)
    }

    /// Calls recorded by [`World::spy_bin`] for `name`, oldest first.
    pub fn spy_calls(&self, name: &str) -> Vec<SpyCall> {
        let dir = self.spy_dir(name);
        let mut stems: Vec<String> = std::fs::read_dir(&dir)
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .filter_map(|e| {
                        e.file_name()
                            .to_str()?
                            .strip_suffix(".args")
                            .map(String::from)
                    })
                    .collect()
            })
            .unwrap_or_default();
        stems.sort();
        stems
            .into_iter()
            .map(|stem| SpyCall {
                args: std::fs::read_to_string(dir.join(format!("{stem}.args")))
                    .unwrap_or_default()
                    .lines()
                    .map(str::to_string)
                    .collect(),
                stdin: std::fs::read_to_string(dir.join(format!("{stem}.stdin")))
                    .unwrap_or_default(),
            })
            .collect()
    }

    /// Writes `$DOCKER_CONFIG/config.json` (docker CLI, docker-py, containers/image).
    pub fn write_docker_config(&self, config: &serde_json::Value) -> PathBuf {
        let path = self.docker_config().join("config.json");
        std::fs::write(&path, config.to_string()).expect("write docker config.json");
        path
    }

    /// Writes `$XDG_RUNTIME_DIR/containers/auth.json`, the first file
    /// containers/image (skopeo, podman) reads.
    pub fn write_containers_auth(&self, auth: &serde_json::Value) -> PathBuf {
        let dir = self.run_dir().join("containers");
        std::fs::create_dir_all(&dir).expect("create containers dir");
        let path = dir.join("auth.json");
        std::fs::write(&path, auth.to_string()).expect("write containers auth.json");
        path
    }

    /// Argument lines of every fake `az` call so far (one entry per call).
    pub fn az_calls(&self) -> Vec<String> {
        std::fs::read_to_string(self.bin_dir().join("az.calls"))
            .map(|s| s.lines().map(str::to_string).collect())
            .unwrap_or_default()
    }
}
