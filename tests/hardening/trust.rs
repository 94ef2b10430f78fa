//! Trust boundaries against another local user (uid 65534 via `setpriv`; the suite runs as root,
//! the victim). The impostor pre-creates socket directories with a listening `agent.sock` that
//! counts every byte it receives and answers a forged credential, and plants `agent.log` as a
//! symlink to a file of the victim's. The victim's helper must send it nothing and its agent must
//! not write through the link.

use crate::util::*;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// The impostor, as a small Python program run as uid 65534: creates `dir` (0777) unless it
/// exists, plants `agent.log -> target`, listens on `sock` (0666), and records in `tally`
/// "<connections> <bytes>" after every event. It answers any request with a forged credential.
const IMPOSTOR: &str = r#"
import os, socket, sys, json, struct
d, sock, target, tally = sys.argv[1:5]
if not os.path.isdir(d):
    os.makedirs(d)
    os.chmod(d, 0o777)
os.symlink(target, os.path.join(d, 'agent.log'))
s = socket.socket(socket.AF_UNIX)
s.bind(sock)
os.chmod(sock, 0o666)
s.listen(16)
conns = 0
total = 0
def note():
    with open(tally, 'w') as f:
        f.write('%d %d' % (conns, total))
note()
print('ready', flush=True)
forged = json.dumps({"result": "credential", "username": "forged", "secret": "FORGED-BY-IMPOSTOR",
                     "expires_at": 4102444800, "warning": None}).encode()
while True:
    c, _ = s.accept()
    conns += 1
    note()
    c.settimeout(5)
    try:
        while True:
            b = c.recv(65536)
            if not b:
                break
            total += len(b)
            note()
            c.sendall(struct.pack('>I', len(forged)) + forged)
    except Exception:
        pass
    c.close()
"#;

struct Impostor {
    child: Child,
    tally: PathBuf,
}

impl Impostor {
    /// Starts the impostor and waits until it listens.
    fn start(dir: &Path, sock: &Path, target: &Path, tally: &Path) -> Impostor {
        let mut child = Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .args(["/usr/bin/python3", "-c", IMPOSTOR])
            .args([dir, sock, target, tally])
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("setpriv python3");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("impostor stdout"))
            .read_line(&mut line)
            .expect("impostor ready line");
        assert_eq!(line.trim(), "ready", "the impostor did not start");
        Impostor {
            child,
            tally: tally.to_path_buf(),
        }
    }

    /// (connections accepted, bytes received).
    fn tally(&self) -> (u64, u64) {
        let text = std::fs::read_to_string(&self.tally).unwrap_or_default();
        let mut it = text
            .split_whitespace()
            .map(|n| n.parse().unwrap_or(u64::MAX));
        (it.next().unwrap_or(0), it.next().unwrap_or(0))
    }
}

impl Drop for Impostor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A victim-owned file the impostor's `agent.log` points at, and a place 65534 can write in.
fn arena(s: &Setup) -> (PathBuf, PathBuf, Vec<u8>) {
    // The world's root is private; let the other user through to a shared sticky directory.
    std::fs::set_permissions(s.world.root(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let shared = s.world.root().join("shared");
    std::fs::create_dir_all(&shared).unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o1777)).unwrap();
    let target = s.world.root().join("victim-file");
    let content = b"victim's own content\n".to_vec();
    std::fs::write(&target, &content).unwrap();
    (shared, target, content)
}

/// Every entry under `dir`, for "nothing was added".
fn listing(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

fn assert_answered_in_process(s: &Setup, out: &std::process::Output) {
    let token = token_of(out);
    assert!(
        !token.contains("FORGED"),
        "served the impostor's credential"
    );
    assert!(
        s.fake.count(acr_testkit::Endpoint::AcrExchange) >= 1,
        "not from the registry"
    );
    let err = stderr(out);
    assert!(
        err.contains("not using the agent socket"),
        "no warning: {err}"
    );
    assert_eq!(err.lines().count(), 1, "one warning line: {err}");
}

#[test]
fn without_xdg_runtime_dir_the_shared_tmp_fallback_is_never_used() {
    let s = Setup::new();
    let (shared, target, content) = arena(&s);
    // The old fallback: $TMPDIR/docker-credential-acr-<uid>, pre-created by the other user.
    let trap = shared.join("docker-credential-acr-0");
    let imp = Impostor::start(
        &trap,
        &trap.join("agent.sock"),
        &target,
        &shared.join("tally-a"),
    );
    let before = listing(&trap);
    let mut cmd = s.command(&["get"], &[("TMPDIR", shared.to_str().unwrap())], true);
    cmd.env_remove("XDG_RUNTIME_DIR");
    let out = run_within(&mut cmd, b"myreg.azurecr.io", LIMIT);
    creds(&out);
    assert_eq!(imp.tally(), (0, 0), "the impostor heard from the victim");
    assert_eq!(listing(&trap), before);
    assert_eq!(std::fs::read(&target).unwrap(), content);
    // The agent lives in the user's own state directory instead, private.
    let own = s.world.state_dir().join("docker-credential-acr/run");
    assert!(own.join("agent.sock").exists(), "{}", stderr(&out));
    assert_eq!(
        std::fs::metadata(&own).unwrap().permissions().mode() & 0o777,
        0o700
    );
    let mut stop = s.command(&["agent", "stop"], &[], false);
    stop.env_remove("XDG_RUNTIME_DIR");
    run_within(&mut stop, b"", LIMIT);
    assert!(wait_until(std::time::Duration::from_secs(5), || !own
        .join("agent.sock")
        .exists()));
}

#[test]
fn a_socket_directory_owned_by_another_user_is_sent_nothing() {
    let s = Setup::new();
    let (shared, target, content) = arena(&s);
    // XDG_RUNTIME_DIR pointing at a shared directory (a misconfigured session): the other user
    // got there first.
    let trap = shared.join("docker-credential-acr");
    let imp = Impostor::start(
        &trap,
        &trap.join("agent.sock"),
        &target,
        &shared.join("tally-b"),
    );
    let before = listing(&trap);
    let env = [("XDG_RUNTIME_DIR", shared.to_str().unwrap())];
    let out = s.run(&["get"], "myreg.azurecr.io", &env, true);
    assert_answered_in_process(&s, &out);
    assert_eq!(imp.tally(), (0, 0), "the impostor heard from the victim");
    assert_eq!(listing(&trap), before, "the victim created files there");
    assert_eq!(std::fs::read(&target).unwrap(), content);
    // Nor do erase, list or status talk to it.
    for args in [&["erase"][..], &["list"], &["agent", "status"]] {
        let out = s.run(args, "myreg.azurecr.io", &env, true);
        assert!(stdout(&out).find("FORGED").is_none());
    }
    assert_eq!(imp.tally(), (0, 0));

    // The agent's side: started on that directory it refuses it, and never follows the log link.
    let log = trap.join("agent.log");
    let out = s.run(
        &["agent", "run", "--log-file", log.to_str().unwrap()],
        "",
        &env,
        false,
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("owned by uid 65534"),
        "{}",
        stderr(&out)
    );
    assert_eq!(std::fs::read(&target).unwrap(), content);
    assert_eq!(listing(&trap), before);
}

#[test]
fn a_listener_of_another_uid_in_our_own_directory_is_sent_nothing() {
    let s = Setup::new();
    let (shared, target, _) = arena(&s);
    // The impostor listens in its own directory; the socket then appears inside the victim's
    // private directory (as a rename by anyone able to write there would make it).
    let own = s.socket().parent().unwrap().to_path_buf();
    std::fs::create_dir_all(&own).unwrap();
    std::fs::set_permissions(&own, std::fs::Permissions::from_mode(0o700)).unwrap();
    let imp_dir = shared.join("imp");
    let imp = Impostor::start(
        &imp_dir,
        &imp_dir.join("agent.sock"),
        &target,
        &shared.join("tally-c"),
    );
    std::fs::rename(imp_dir.join("agent.sock"), s.socket()).unwrap();
    let out = s.run(&["get"], "myreg.azurecr.io", &[], true);
    assert_answered_in_process(&s, &out);
    assert!(stderr(&out).contains("uid 65534"), "{}", stderr(&out));
    let (conns, bytes) = imp.tally();
    assert_eq!(conns, 1, "the helper connected once to check the peer");
    assert_eq!(bytes, 0, "the impostor received bytes");
    assert!(s.agent_pids().is_empty(), "no agent started over it");
    // A host that is not ours: the client connected before it knew (and checked the peer), but
    // it sends nothing, warns about nothing and answers not-found as always.
    let out = s.run(&["get"], "docker.io", &[], true);
    assert_eq!(stdout(&out).trim_end(), NOT_FOUND);
    assert_eq!(stderr(&out), "", "a warning for a host that is not ours");
    assert_eq!(imp.tally().1, 0, "the impostor received bytes");
}

#[test]
fn a_planted_log_symlink_in_our_own_directory_is_not_followed() {
    let s = Setup::new();
    let (_, target, content) = arena(&s);
    let own = s.socket().parent().unwrap().to_path_buf();
    std::fs::create_dir_all(&own).unwrap();
    std::fs::set_permissions(&own, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::os::unix::fs::symlink(&target, s.agent_log()).unwrap();
    let out = s.run(
        &["get"],
        "myreg.azurecr.io",
        &[("DOCKER_CREDENTIAL_ACR_LOG", "debug")],
        true,
    );
    creds(&out);
    assert_eq!(s.agent_pids().len(), 1, "the agent runs, without its log");
    assert_eq!(
        std::fs::read(&target).unwrap(),
        content,
        "wrote through the link"
    );
    assert!(std::fs::symlink_metadata(s.agent_log())
        .unwrap()
        .file_type()
        .is_symlink());
    s.stop_agent();
}
