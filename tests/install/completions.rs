//! Shell completions and the man page: `install.sh` installs them under the prefix where bash-completion,
//! zsh, fish and man look; each one works with its tool (bash completes subcommands, flags and
//! values; zsh and fish accept the syntax where they are installed; the man page documents every
//! command). And the command line they describe: `--help` per command exits 0 and names the
//! command's flags; an unknown flag is one line and exit 1.

use crate::script::{ok, Sandbox};
use crate::util::*;
use std::path::Path;
use std::process::Command;

/// The command's words that complete after `words` (the last one being completed), by running
/// the installed bash completion function the way bash's programmable completion does.
fn bash_complete(script: &Path, words: &[&str]) -> Vec<String> {
    let bash = require("/usr/bin/bash", "bash");
    let code = r#"
source "$1"
spec=$(complete -p docker-credential-acr) || exit 3
fn=${spec##* -F }; fn=${fn%% *}
shift
COMP_WORDS=("$@")
COMP_CWORD=$(( $# - 1 ))
COMP_LINE="$*"
COMP_POINT=${#COMP_LINE}
cur=${COMP_WORDS[COMP_CWORD]}
prev=${COMP_WORDS[COMP_CWORD-1]}
"$fn" docker-credential-acr "$cur" "$prev"
printf '%s\n' "${COMPREPLY[@]}"
"#;
    let out = run(Command::new(bash)
        .arg("-c")
        .arg(code)
        .arg("bash")
        .arg(script)
        .arg("docker-credential-acr")
        .args(words));
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout)
        .lines()
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect()
}

#[test]
fn completions_and_man_page_install_under_the_prefix_and_work() {
    let s = Sandbox::new();
    let prefix = s.path("prefix");
    let args = [
        "--binary",
        helper_bin(),
        "--prefix",
        prefix.to_str().unwrap(),
        "--no-systemd",
    ];
    let first = ok(&s.run(&args, &[]));
    let share = prefix.join("share");
    let bash = share.join("bash-completion/completions/docker-credential-acr");
    let zsh = share.join("zsh/site-functions/_docker-credential-acr");
    let fish = share.join("fish/vendor_completions.d/docker-credential-acr.fish");
    let man = share.join("man/man1/docker-credential-acr.1");
    for f in [&bash, &zsh, &fish, &man] {
        assert!(
            first.contains(&format!("installed: {}", f.display())),
            "{first}"
        );
        assert_eq!(crate::script::mode(f), 0o644, "{}", f.display());
    }

    // bash: the spec registers, and completes commands, nested commands, flags and values.
    assert_eq!(bash_complete(&bash, &["wa"]), ["warm"]);
    assert_eq!(
        bash_complete(&bash, &["co"]),
        ["configure"],
        "hidden commands stay hidden"
    );
    assert_eq!(bash_complete(&bash, &["agent", "st"]), ["status", "stop"]);
    assert_eq!(bash_complete(&bash, &["sync", "--k8s"]), ["--k8s-secret"]);
    assert_eq!(
        bash_complete(&bash, &["kubelet", "merge-config", "--in"]),
        ["--into"]
    );
    assert_eq!(
        bash_complete(&bash, &["export", "--format", ""]),
        ["docker-config", "k8s-secret"]
    );
    assert!(bash_complete(&bash, &["doctor", "--"]).contains(&"--acquire".to_string()));

    // zsh and fish: their own parsers accept the scripts (checked where the shell is installed;
    // the suite does not pull in either shell).
    let zsh_text = std::fs::read_to_string(&zsh).unwrap();
    assert!(
        zsh_text.starts_with("#compdef docker-credential-acr"),
        "{zsh_text:.80}"
    );
    if Path::new("/usr/bin/zsh").is_file() {
        let out = run(Command::new("/usr/bin/zsh").arg("-n").arg(&zsh));
        assert!(out.status.success(), "zsh -n: {}", text(&out.stderr));
    }
    let fish_text = std::fs::read_to_string(&fish).unwrap();
    assert!(
        fish_text.contains("complete -c docker-credential-acr"),
        "{fish_text:.200}"
    );
    if Path::new("/usr/bin/fish").is_file() {
        let out = run(Command::new("/usr/bin/fish").arg("--no-execute").arg(&fish));
        assert!(out.status.success(), "fish -n: {}", text(&out.stderr));
    }

    // The man page: a title, then a section for every command (Docker verbs included).
    let page = std::fs::read_to_string(&man).unwrap();
    let title = page
        .lines()
        .find(|l| !l.starts_with(".ie") && !l.starts_with(".el"))
        .unwrap_or_default();
    assert!(title.starts_with(".TH docker-credential-acr 1"), "{title}");
    for command in [
        "GET",
        "STORE",
        "ERASE",
        "LIST",
        "VERSION",
        "WARM",
        "AGENT RUN",
        "AGENT STATUS",
        "AGENT STOP",
        "KUBELET",
        "KUBELET MERGE-CONFIG",
        "CONFIGURE",
        "DOCTOR",
        "EXPORT",
        "SYNC",
        "LOGIN",
        "LOGOUT",
    ] {
        let heading = format!(".SH \"DOCKER-CREDENTIAL-ACR {command}\"");
        assert!(page.contains(&heading), "man page lacks {heading}");
    }
    for flag in [
        "min\\-ttl",
        "ready\\-fd",
        "namespace\\-selector",
        "acquire",
        "dry\\-run",
    ] {
        assert!(page.contains(flag), "man page lacks {flag}");
    }
    if Path::new("/usr/bin/man").is_file() {
        let out = run(Command::new("/usr/bin/man")
            .args(["-l", "-P", "cat"])
            .arg(&man)
            .env("MANWIDTH", "100"));
        assert!(out.status.success(), "man -l: {}", text(&out.stderr));
        assert!(text(&out.stdout).contains("kubelet merge-config"));
    }

    // Idempotent like the rest of the script.
    let second = ok(&s.run(&args, &[]));
    for f in [&bash, &zsh, &fish, &man] {
        assert!(
            second.contains(&format!("unchanged: {}", f.display())),
            "{second}"
        );
    }
}

#[test]
fn help_per_command_names_its_flags_and_unknown_flags_are_one_line() {
    let cases: &[(&[&str], &[&str])] = &[
        (&["--help"], &["warm", "agent", "kubelet", "sync", "login"]),
        (&["warm", "--help"], &["--min-ttl", "REGISTRY"]),
        (&["agent", "--help"], &["run", "status", "stop"]),
        (
            &["agent", "run", "--help"],
            &["--system", "--ready-fd", "--log-file"],
        ),
        (&["agent", "status", "--help"], &["--json"]),
        (&["agent", "stop", "--help"], &["--forget"]),
        (&["kubelet", "--help"], &["merge-config"]),
        (
            &["kubelet", "merge-config", "--help"],
            &["--into", "--from", "--out"],
        ),
        (
            &["configure", "--help"],
            &["--containers", "--dry-run", "-n"],
        ),
        (&["doctor", "--help"], &["--acquire", "REGISTRY"]),
        (
            &["export", "--help"],
            &[
                "--min-ttl",
                "--format",
                "--namespace",
                "--name",
                "k8s-secret",
            ],
        ),
        (
            &["sync", "--help"],
            &[
                "--file",
                "--k8s-secret",
                "--namespace-selector",
                "--secret-name",
                "--service-account",
                "--lease",
                "--min-ttl",
            ],
        ),
        (
            &["login", "--help"],
            &["--tenant", "--client-id", "--registry"],
        ),
        (&["logout", "--help"], &["--tenant"]),
    ];
    for (argv, flags) in cases {
        let out = run(Command::new(helper_bin()).args(*argv));
        let help = text(&out.stdout);
        assert!(
            out.status.success(),
            "{argv:?}: {help}{}",
            text(&out.stderr)
        );
        assert!(help.contains("docker-credential-acr"), "{argv:?}: {help}");
        for flag in *flags {
            assert!(help.contains(flag), "{argv:?} does not name {flag}: {help}");
        }
    }
    for argv in [
        &["warm", "--frob", "myreg.azurecr.io"][..],
        &["agent", "run", "--frob"],
        &["kubelet", "merge-config", "--frob"],
        &["configure", "--frob"],
        &["doctor", "--frob"],
        &["export", "--frob", "myreg.azurecr.io"],
        &["sync", "--frob", "myreg.azurecr.io"],
        &["login", "--frob"],
        &["logout", "--frob"],
    ] {
        let out = run(Command::new(helper_bin()).args(argv));
        assert_eq!(out.status.code(), Some(1), "{argv:?}");
        let line = text(&out.stdout);
        assert_eq!(line.lines().count(), 1, "{argv:?}: {line:?}");
        assert!(line.contains("--frob"), "{argv:?}: {line}");
        assert!(text(&out.stderr).is_empty(), "{argv:?}");
    }
}
