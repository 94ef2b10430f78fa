//! The command line. Docker's verbs (`get`, `store`, `erase`, `list`, `version`) are matched by
//! hand before clap runs: they keep the answers Docker's own helpers give (a usage line on stdout,
//! exit 1, for anything else). Every other command is a clap derive definition ([`Cli`]), which
//! also produces `--help` per command, the shell completions and the man page, so the three can
//! never disagree with the parser.

use std::time::Duration;

use crate::values::{duration, k8s_name, plain};
use clap::{CommandFactory, Parser, Subcommand};

/// Options of `agent run`.
#[derive(Debug, Default, PartialEq, Eq, clap::Args)]
pub struct AgentRunOpts {
    /// Serve the node-wide socket under /run (systemd system unit, kubelet) instead of the
    /// per-user one.
    #[arg(long)]
    pub system: bool,
    /// Report readiness on this inherited pipe (set by the helper's auto-start).
    #[arg(long, value_name = "FD")]
    pub ready_fd: Option<i32>,
    /// Write logs to this file instead of stderr (set by auto-start: stderr is /dev/null then).
    #[arg(long, value_name = "PATH")]
    pub log_file: Option<String>,
}

/// A parsed command line: what [`crate::run_code`] dispatches on.
#[derive(Debug, PartialEq, Eq)]
pub enum Command {
    /// `--help`, `-h`, `help` or `COMMAND --help`: the help text to print (exit 0).
    Help(String),
    /// `version`, `--version`.
    Version,
    /// Docker verb `get`.
    Get,
    /// Docker verb `store`.
    Store,
    /// Docker verb `erase`.
    Erase,
    /// Docker verb `list`.
    List,
    /// `warm [--min-ttl D] REGISTRY...`.
    Warm {
        /// Required remaining life in seconds.
        min_ttl: Option<u64>,
        /// Registries to warm.
        registries: Vec<String>,
    },
    /// `agent run`.
    AgentRun(AgentRunOpts),
    /// `agent status [--json]`.
    AgentStatus {
        /// Machine-readable output.
        json: bool,
    },
    /// `agent stop [--forget]`.
    AgentStop {
        /// Also delete what this agent instance persisted in the OS keyring.
        forget: bool,
    },
    /// `kubelet`: credential provider exec plugin.
    Kubelet,
    /// `kubelet merge-config --into PATH --from FILE --out OUT` (node installer).
    KubeletMergeConfig(crate::kubelet_config::MergeOpts),
    /// `configure [--containers] [--dry-run] REGISTRY...`.
    Configure {
        /// Registries to wire (empty: the exact ones in the config file).
        registries: Vec<String>,
        /// Also containers' auth.json.
        containers: bool,
        /// Show, don't write.
        dry_run: bool,
    },
    /// `doctor [--acquire] [REGISTRY]`: check the setup, one finding per line.
    Doctor(crate::doctor::Options),
    /// `export [--min-ttl D] [--format F] [--namespace NS] [--name N] REGISTRY...`.
    Export(crate::export::Options),
    /// `sync --file PATH [--min-ttl D] REGISTRY...`.
    Sync(crate::sync::Options),
    /// `login [--tenant T] [--client-id C] [--registry R]`: sign a person in (device flow).
    Login(crate::signin::LoginOpts),
    /// `logout [--tenant T]`: forget the sign-ins (of one tenant).
    Logout {
        /// Only this tenant's.
        tenant: Option<String>,
    },
    /// `completions SHELL` (hidden): the shell's completion script on stdout.
    Completions(clap_complete::Shell),
    /// `man` (hidden): the man page (roff) on stdout.
    Man,
}

/// Why a command line was refused. Each renders as the one line printed on stdout (where
/// Docker's helpers print usage errors) before exit 1.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum UsageError {
    /// No command, a Docker verb with extra words, or an unknown top-level option.
    #[error("{}", usage_line())]
    Usage,
    /// A first word that is no command.
    #[error("{}: unknown action: {}", crate::NAME, printable(.0))]
    UnknownAction(String),
    /// clap refused the arguments of a command; the text is clap's message on one line.
    #[error("{}: {}", crate::NAME, .0)]
    Invalid(String),
    /// `sync`'s flags do not name one target.
    #[error(transparent)]
    Sync(#[from] crate::sync::ArgsError),
}

/// The Docker credential-helper verbs, answered before clap runs.
const DOCKER_VERBS: &[&str] = &["get", "store", "erase", "list", "version"];

/// Parses arguments (without the program name).
pub fn parse(args: &[String]) -> Result<Command, UsageError> {
    let words: Vec<&str> = args.iter().map(String::as_str).collect();
    match words.as_slice() {
        ["get"] => return Ok(Command::Get),
        ["store"] => return Ok(Command::Store),
        ["erase"] => return Ok(Command::Erase),
        ["list"] => return Ok(Command::List),
        ["version"] | ["--version"] | ["-v"] => return Ok(Command::Version),
        ["--help"] | ["help"] => {
            return Ok(Command::Help(Cli::command().render_long_help().to_string()))
        }
        ["-h"] => return Ok(Command::Help(Cli::command().render_help().to_string())),
        // A known verb with the wrong number of arguments: docker's helpers answer with usage.
        [] => return Err(UsageError::Usage),
        [verb, ..] if DOCKER_VERBS.contains(verb) || verb.starts_with('-') => {
            return Err(UsageError::Usage)
        }
        [verb, ..] if Cli::command().find_subcommand(verb).is_none() => {
            return Err(UsageError::UnknownAction(verb.to_string()))
        }
        _ => {}
    }
    let argv = std::iter::once(crate::NAME).chain(words.iter().copied());
    match Cli::try_parse_from(argv) {
        Ok(cli) => cli.command.into_command(),
        Err(e) if e.kind() == clap::error::ErrorKind::DisplayHelp => {
            Ok(Command::Help(e.render().to_string()))
        }
        Err(e) => Err(UsageError::Invalid(one_line(&e))),
    }
}

/// The one-line usage printed for a bad Docker verb or no command at all. The command names
/// come from the clap definition, so a new command shows up here by itself.
fn usage_line() -> String {
    let cmd = Cli::command();
    let others: Vec<&str> = cmd
        .get_subcommands()
        .filter(|c| !c.is_hide_set())
        .map(|c| c.get_name())
        .filter(|n| !DOCKER_VERBS.contains(n))
        .collect();
    format!(
        "Usage: {name} <store|get|erase|list|version> | {name} <{}> [OPTIONS] ({name} COMMAND --help explains each)",
        others.join("|"),
        name = crate::NAME
    )
}

/// clap's error as one line: its message and tips, then the command's usage. Its "Usage:" and
/// "For more information" paragraphs become the trailing `usage: ...`.
fn one_line(e: &clap::Error) -> String {
    let text = e.render().to_string();
    // A command group without its command (`agent`): clap shows the group's help; one line
    // names the commands instead.
    let help_instead = e.kind() == clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand;
    let mut parts = Vec::new();
    let mut usage = None;
    for para in text.split("\n\n") {
        let joined = para.split_whitespace().collect::<Vec<_>>().join(" ");
        if joined.is_empty() || joined.starts_with("For more information") {
            continue;
        }
        if let Some(u) = joined.strip_prefix("Usage: ") {
            usage = Some(u.to_string());
        } else if help_instead {
            if let Some(list) = para.strip_prefix("Commands:") {
                let names: Vec<&str> = list
                    .lines()
                    .filter_map(|l| l.split_whitespace().next())
                    .collect();
                parts.push(format!("name a command: {}", names.join(", ")));
            }
        } else if !joined.contains("as a value, use") {
            parts.push(
                joined
                    .strip_prefix("error: ")
                    .unwrap_or(&joined)
                    .to_string(),
            );
        }
    }
    let mut line = parts.join("; ");
    if let Some(u) = usage {
        line.push_str(&format!("; usage: {u}"));
    }
    // clap echoes arguments, which may hold control characters; capped so a 100 kB argument
    // cannot make a 100 kB error.
    acr_proto::text::printable(&line, 400)
}

/// The whole command line; its doc text is the top of `--help` and of the man page.
#[derive(Debug, Parser)]
#[command(
    about = "Docker credential helper, kubelet credential provider and token agent for Azure Container Registry",
    long_about = "Docker credential helper, kubelet credential provider and token agent for Azure Container \
Registry. Docker, containerd, podman, skopeo and kubelet call it with a verb; it answers with \
tokens for the Microsoft Entra ID identity the environment or the config file names (service \
principal, certificate, workload identity, managed identity, Azure CLI, a signed-in person), \
kept fresh by a background agent it starts on first use.",
    name = "docker-credential-acr",
    bin_name = "docker-credential-acr",
    version,
    disable_version_flag = true,
    disable_help_subcommand = true,
    subcommand_required = true,
    max_term_width = 100
)]
pub struct Cli {
    /// The command.
    #[command(subcommand)]
    pub command: Verb,
}

/// Every command. The Docker verbs are here for `--help`, completions and the man page; the
/// parser answers them before clap runs.
#[derive(Debug, Subcommand)]
pub enum Verb {
    /// Docker protocol: read a registry from stdin, print its credentials as JSON.
    Get,
    /// Docker protocol: keep a `docker login` (JSON on stdin) as a static login.
    Store,
    /// Docker protocol: forget the login for the registry read from stdin.
    Erase,
    /// Docker protocol: print the registries with a static login.
    List,
    /// Print the version.
    Version,
    /// Make sure each registry's token will outlive a long job, renewing it now if needed.
    Warm(WarmArgs),
    /// Run, inspect or stop the background token agent.
    #[command(subcommand)]
    Agent(AgentVerb),
    /// Kubelet image credential provider (exec plugin: request on stdin, response on stdout).
    Kubelet(KubeletArgs),
    /// Add `credHelpers` entries for registries to docker's config.json (and containers' auth.json).
    Configure(ConfigureArgs),
    /// Check the installation and the environment, one finding per line.
    Doctor(DoctorArgs),
    /// Print the credentials `get` would answer as a Docker config JSON or a Kubernetes Secret.
    Export(ExportArgs),
    /// Keep a Docker config JSON file or Kubernetes Secrets fresh, in the foreground.
    Sync(crate::sync::SyncArgs),
    /// Sign a person in with the device code flow; `get` then uses that sign-in.
    Login(LoginArgs),
    /// Forget the sign-ins (of one tenant).
    Logout(LogoutArgs),
    /// Print the completion script for a shell (install/install.sh installs them).
    #[command(hide = true)]
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff; install/install.sh installs it).
    #[command(hide = true)]
    Man,
}

/// `warm`'s arguments.
#[derive(Debug, clap::Args)]
pub struct WarmArgs {
    /// Fail unless each token has at least this long left (e.g. 2h, 90m, 1h30m); renews first.
    #[arg(long, value_name = "DURATION", value_parser = duration)]
    pub min_ttl: Option<Duration>,
    /// Registries, e.g. myreg.azurecr.io.
    #[arg(required = true, value_name = "REGISTRY")]
    pub registries: Vec<String>,
}

/// `agent`'s commands.
#[derive(Debug, Subcommand)]
pub enum AgentVerb {
    /// Run the agent in the foreground (systemd/launchd units; `get` starts one by itself).
    Run(AgentRunOpts),
    /// Show the running agent's tokens and their refresh state.
    Status {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Stop the running agent.
    Stop {
        /// Also delete the tokens this agent kept in the OS keyring.
        #[arg(long)]
        forget: bool,
    },
}

/// `kubelet`'s arguments: none for the provider itself.
#[derive(Debug, clap::Args)]
pub struct KubeletArgs {
    /// Node installer helpers.
    #[command(subcommand)]
    pub command: Option<KubeletVerb>,
}

/// `kubelet`'s commands.
#[derive(Debug, Subcommand)]
pub enum KubeletVerb {
    /// Merge our provider into a node's kubelet CredentialProviderConfig, keeping the others.
    MergeConfig(crate::kubelet_config::MergeOpts),
}

/// `configure`'s arguments.
#[derive(Debug, clap::Args)]
pub struct ConfigureArgs {
    /// Also wire containers' auth.json (podman, skopeo, buildah).
    #[arg(long)]
    pub containers: bool,
    /// Show what would change; write nothing.
    #[arg(long, short = 'n')]
    pub dry_run: bool,
    /// Registries (default: the exact hosts in the config file).
    #[arg(value_name = "REGISTRY")]
    pub registries: Vec<String>,
}

/// `doctor`'s arguments.
#[derive(Debug, clap::Args)]
pub struct DoctorArgs {
    /// Also run one full token acquisition for REGISTRY and report the token's lifetime.
    #[arg(long, requires = "registry")]
    pub acquire: bool,
    /// Check this registry end to end (network probes included).
    #[arg(value_name = "REGISTRY")]
    pub registry: Option<String>,
}

/// `export`'s arguments.
#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    /// Fail unless each token has at least this long left (e.g. 2h, 90m); renews first.
    #[arg(long, value_name = "DURATION", value_parser = duration)]
    pub min_ttl: Option<Duration>,
    /// The document to print.
    #[arg(long, value_enum, default_value_t)]
    pub format: crate::export::Format,
    /// The Secret's namespace (k8s-secret).
    #[arg(long, value_name = "NS", value_parser = k8s_name)]
    pub namespace: Option<String>,
    /// The Secret's name (k8s-secret; default acr-pull).
    #[arg(long, value_parser = k8s_name)]
    pub name: Option<String>,
    /// Registries, e.g. myreg.azurecr.io.
    #[arg(required = true, value_name = "REGISTRY")]
    pub registries: Vec<String>,
}

/// `login`'s arguments.
#[derive(Debug, clap::Args)]
pub struct LoginArgs {
    /// Entra tenant (id or domain; default from the config or AZURE_TENANT_ID).
    #[arg(long, value_parser = plain)]
    pub tenant: Option<String>,
    /// Application (client) id to sign in with.
    #[arg(long, value_parser = plain)]
    pub client_id: Option<String>,
    /// Sign in for this registry's cloud and audience.
    #[arg(long, value_parser = plain)]
    pub registry: Option<String>,
}

/// `logout`'s arguments.
#[derive(Debug, clap::Args)]
pub struct LogoutArgs {
    /// Forget only this tenant's sign-ins.
    #[arg(long, value_parser = plain)]
    pub tenant: Option<String>,
}

impl Verb {
    /// The command the rest of the crate runs.
    fn into_command(self) -> Result<Command, UsageError> {
        Ok(match self {
            Verb::Get => Command::Get,
            Verb::Store => Command::Store,
            Verb::Erase => Command::Erase,
            Verb::List => Command::List,
            Verb::Version => Command::Version,
            Verb::Warm(a) => Command::Warm {
                min_ttl: a.min_ttl.map(|d| d.as_secs()),
                registries: a.registries,
            },
            Verb::Agent(AgentVerb::Run(o)) => Command::AgentRun(o),
            Verb::Agent(AgentVerb::Status { json }) => Command::AgentStatus { json },
            Verb::Agent(AgentVerb::Stop { forget }) => Command::AgentStop { forget },
            Verb::Kubelet(KubeletArgs { command: None }) => Command::Kubelet,
            Verb::Kubelet(KubeletArgs {
                command: Some(KubeletVerb::MergeConfig(o)),
            }) => Command::KubeletMergeConfig(o),
            Verb::Configure(a) => Command::Configure {
                registries: a.registries,
                containers: a.containers,
                dry_run: a.dry_run,
            },
            Verb::Doctor(a) => Command::Doctor(crate::doctor::Options {
                registry: a.registry,
                acquire: a.acquire,
            }),
            Verb::Export(a) => Command::Export(crate::export::Options {
                min_ttl: a.min_ttl.map(|d| d.as_secs()),
                format: a.format,
                namespace: a.namespace,
                name: a.name,
                registries: a.registries,
            }),
            Verb::Sync(a) => Command::Sync(crate::sync::options(a)?),
            Verb::Login(a) => Command::Login(crate::signin::LoginOpts {
                tenant: a.tenant,
                client_id: a.client_id,
                registry: a.registry,
            }),
            Verb::Logout(a) => Command::Logout { tenant: a.tenant },
            Verb::Completions { shell } => Command::Completions(shell),
            Verb::Man => Command::Man,
        })
    }
}

/// `completions SHELL`: the completion script on stdout; exit 1 if it could not be written.
pub fn print_completions(shell: clap_complete::Shell) -> u8 {
    generated("completions", |out| completions(shell, out))
}

/// `man`: the man page on stdout; exit 1 if it could not be written.
pub fn print_man() -> u8 {
    generated("man", man_page)
}

/// Writes a generated document to stdout; a write error is one line on stderr and exit 1.
fn generated(what: &str, write: impl FnOnce(&mut dyn std::io::Write) -> std::io::Result<()>) -> u8 {
    let mut out = std::io::stdout().lock();
    match write(&mut out).and_then(|()| std::io::Write::flush(&mut out)) {
        Ok(()) => 0,
        Err(e) => {
            drop(out);
            crate::output::stderr_line(&format!("{what}: {e}"));
            1
        }
    }
}

/// Writes the completion script for `shell`, generated from [`Cli`].
pub fn completions(
    shell: clap_complete::Shell,
    out: &mut dyn std::io::Write,
) -> std::io::Result<()> {
    // Completions offer what `--help` shows: the hidden generator commands are left out (bash's
    // generator would offer them).
    let full = Cli::command();
    let mut cmd = clap::Command::new(crate::NAME)
        .disable_help_subcommand(true)
        .subcommands(full.get_subcommands().filter(|c| !c.is_hide_set()).cloned());
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut cmd, crate::NAME, &mut script);
    if shell == clap_complete::Shell::Bash {
        // clap_complete 4.6's bash script names the program's state two ways when the program
        // name holds '-' (`docker__credential__acr` where it is set, `docker__subcmd__...` in
        // the labels it is matched against), so no command below the top would complete.
        let text = String::from_utf8_lossy(&script).replace(
            &crate::NAME.replace('-', "__subcmd__"),
            &crate::NAME.replace('-', "__"),
        );
        script = text.into_bytes();
    }
    out.write_all(&script)
}

/// Writes the man page: the top of the page clap_mangen renders (title, name, synopsis,
/// description, options), then one section per command with its synopsis, description and
/// options (their headings demoted to subsections). One page holds every command, so clap_mangen's
/// list of per-command pages (`docker-credential-acr-warm(1)`, never installed) is left out.
pub fn man_page(out: &mut dyn std::io::Write) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut cmd = Cli::command();
    cmd.build();
    let mut roff = Vec::new();
    let top = clap_mangen::Man::new(cmd.clone());
    top.render_title(&mut roff)?;
    top.render_name_section(&mut roff)?;
    top.render_synopsis_section(&mut roff)?;
    top.render_description_section(&mut roff)?;
    top.render_options_section(&mut roff)?;
    let mut stack: Vec<clap::Command> = cmd.get_subcommands().cloned().collect();
    stack.reverse();
    while let Some(sub) = stack.pop() {
        if sub.is_hide_set() {
            continue;
        }
        let name = sub.get_bin_name().unwrap_or(sub.get_name()).to_uppercase();
        writeln!(roff, ".SH \"{}\"", name.replace('"', ""))?;
        let man = clap_mangen::Man::new(sub.clone());
        let mut section = Vec::new();
        man.render_synopsis_section(&mut section)?;
        man.render_description_section(&mut section)?;
        man.render_options_section(&mut section)?;
        for line in String::from_utf8_lossy(&section).lines() {
            match line.strip_prefix(".SH ") {
                Some(heading) => writeln!(roff, ".SS {heading}")?,
                None => writeln!(roff, "{line}")?,
            }
        }
        let mut children: Vec<clap::Command> = sub.get_subcommands().cloned().collect();
        children.reverse();
        stack.extend(children);
    }
    // Each rendered piece repeats the roff preamble (the `Aq` string); once is enough.
    let text = String::from_utf8_lossy(&roff);
    let mut seen = std::collections::HashSet::new();
    for line in text.lines() {
        let preamble = line.starts_with(".ie \\n(.g .ds Aq") || line.starts_with(".el .ds Aq");
        if !preamble || seen.insert(line) {
            writeln!(out, "{line}")?;
        }
    }
    Ok(())
}

/// Shortens and sanitises user text for echoing in an error (or a terminal line).
pub(crate) fn printable(s: &str) -> String {
    acr_proto::text::printable(s, 64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(a: &[&str]) -> Result<Command, UsageError> {
        parse(&a.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn the_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn login_and_logout() {
        assert_eq!(
            p(&["login"]),
            Ok(Command::Login(crate::signin::LoginOpts::default()))
        );
        assert_eq!(
            p(&[
                "login",
                "--tenant",
                "t",
                "--client-id",
                "c",
                "--registry",
                "r.azurecr.io"
            ]),
            Ok(Command::Login(crate::signin::LoginOpts {
                tenant: Some("t".into()),
                client_id: Some("c".into()),
                registry: Some("r.azurecr.io".into()),
            }))
        );
        assert!(p(&["login", "--tenant"]).is_err());
        assert!(p(&["login", "--tenant", "--client-id", "c"]).is_err());
        assert!(p(&["login", "--tenant="]).is_err());
        assert!(p(&["login", "--bogus"]).is_err());
        assert_eq!(p(&["logout"]), Ok(Command::Logout { tenant: None }));
        assert_eq!(
            p(&["logout", "--tenant", "t"]),
            Ok(Command::Logout {
                tenant: Some("t".into())
            })
        );
        assert!(p(&["logout", "extra"]).is_err());
    }

    #[test]
    fn verbs_and_errors() {
        assert_eq!(p(&["get"]), Ok(Command::Get));
        assert_eq!(p(&["--version"]), Ok(Command::Version));
        assert_eq!(
            p(&["frob"]).unwrap_err().to_string(),
            "docker-credential-acr: unknown action: frob"
        );
        assert_eq!(p(&[]), Err(UsageError::Usage));
        assert_eq!(p(&["get", "extra"]), Err(UsageError::Usage));
        assert_eq!(p(&["--help", "extra"]), Err(UsageError::Usage));
        assert!(UsageError::Usage.to_string().starts_with("Usage: "));
        assert_eq!(
            p(&["warm", "--min-ttl", "2h", "r.azurecr.io"]),
            Ok(Command::Warm {
                min_ttl: Some(7200),
                registries: vec!["r.azurecr.io".into()]
            })
        );
        assert!(p(&["warm"]).is_err());
        assert_eq!(
            p(&["agent", "stop", "--forget"]),
            Ok(Command::AgentStop { forget: true })
        );
        assert_eq!(
            p(&["agent", "status", "--json"]),
            Ok(Command::AgentStatus { json: true })
        );
        assert!(p(&["agent", "stop", "--frob"]).is_err());
        assert!(p(&["agent"]).is_err());
        match p(&[
            "export",
            "--format",
            "k8s-secret",
            "--namespace=team",
            "--name",
            "pull",
            "--min-ttl",
            "1h",
            "r.azurecr.io",
        ]) {
            Ok(Command::Export(o)) => {
                assert_eq!(o.format, crate::export::Format::K8sSecret);
                assert_eq!(o.namespace.as_deref(), Some("team"));
                assert_eq!(o.name.as_deref(), Some("pull"));
                assert_eq!(o.min_ttl, Some(3600));
                assert_eq!(o.registries, vec!["r.azurecr.io".to_string()]);
            }
            other => panic!("{other:?}"),
        }
        match p(&["export", "r.azurecr.io"]) {
            Ok(Command::Export(o)) => {
                assert_eq!(o.format, crate::export::Format::DockerConfig);
                assert_eq!(o.min_ttl, None);
            }
            other => panic!("{other:?}"),
        }
        assert!(p(&["export"]).is_err());
        assert!(p(&["export", "--format", "yaml", "r"]).is_err());
        assert!(p(&["export", "--name"]).is_err());
        assert!(p(&["export", "--name", "Bad Name", "r"]).is_err());
        assert!(p(&["export", "--namespace", "-x", "r"]).is_err());
        match p(&[
            "sync",
            "--file",
            "/x/auth.json",
            "r.azurecr.io",
            "s.azurecr.io",
        ]) {
            Ok(Command::Sync(o)) => {
                assert_eq!(
                    o.file.as_deref(),
                    Some(std::path::Path::new("/x/auth.json"))
                );
                assert_eq!(o.registries.len(), 2);
            }
            other => panic!("{other:?}"),
        }
        assert!(p(&["sync", "r.azurecr.io"]).is_err());
        assert!(p(&["sync", "--file", "f"]).is_err());
        assert!(p(&["warm", "--min-ttl", "2x", "r"]).is_err());
        assert!(p(&["warm", "--min-ttl=", "r"]).is_err());
        assert_eq!(
            p(&["agent", "run", "--ready-fd", "3", "--log-file", "/l"]),
            Ok(Command::AgentRun(AgentRunOpts {
                ready_fd: Some(3),
                log_file: Some("/l".into()),
                ..Default::default()
            }))
        );
        assert!(p(&["agent", "run", "--ready-fd", "abc"]).is_err());
        assert_eq!(p(&["kubelet"]), Ok(Command::Kubelet));
        assert!(p(&["kubelet", "extra"]).is_err());
        assert_eq!(
            p(&["configure", "-n", "--containers", "r.azurecr.io"]),
            Ok(Command::Configure {
                registries: vec!["r.azurecr.io".into()],
                containers: true,
                dry_run: true
            })
        );
        assert!(p(&["configure", "--bogus"]).is_err());
    }

    #[test]
    fn doctor_takes_its_flags_from_clap() {
        assert_eq!(
            p(&["doctor"]),
            Ok(Command::Doctor(crate::doctor::Options::default()))
        );
        assert_eq!(
            p(&["doctor", "--acquire", "r.azurecr.io"]),
            Ok(Command::Doctor(crate::doctor::Options {
                registry: Some("r.azurecr.io".into()),
                acquire: true
            }))
        );
        assert!(p(&["doctor", "--acquire"]).is_err());
        assert!(p(&["doctor", "a", "b"]).is_err());
        assert!(p(&["doctor", "--frob"])
            .unwrap_err()
            .to_string()
            .contains("--frob"));
    }

    #[test]
    fn clap_errors_are_one_clean_line() {
        for argv in [
            &["warm", "--bogus", "r.azurecr.io"][..],
            &["warm", "--min-ttl", "2x", "r.azurecr.io"],
            &["warm"],
            &["agent"],
            &["agent", "frob"],
            &["doctor", "\u{1b}[31m", "b"],
            &["kubelet", "merge-config", "--into", "/a"],
        ] {
            let e = p(argv).unwrap_err().to_string();
            assert!(e.starts_with("docker-credential-acr: "), "{argv:?}: {e}");
            assert!(!e.chars().any(char::is_control), "{argv:?}: {e:?}");
        }
        let e = p(&["warm", "--min-ttl", "2x", "r"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("--min-ttl") && e.contains("2x"), "{e}");
        let e = p(&["warm", "--mintll", "2h", "r"]).unwrap_err().to_string();
        assert!(e.contains("usage: docker-credential-acr warm"), "{e}");
    }

    #[test]
    fn help_per_command_names_its_flags() {
        for (argv, flag) in [
            (&["--help"][..], "warm"),
            (&["warm", "--help"], "--min-ttl"),
            (&["agent", "run", "--help"], "--ready-fd"),
            (&["kubelet", "merge-config", "-h"], "--into"),
            (&["sync", "--help"], "--namespace-selector"),
            (&["doctor", "--help"], "--acquire"),
        ] {
            match p(argv) {
                Ok(Command::Help(text)) => assert!(text.contains(flag), "{argv:?}: {text}"),
                other => panic!("{argv:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn durations_are_the_config_files() {
        assert_eq!(duration("150m").unwrap(), Duration::from_secs(9000));
        assert_eq!(duration(" 1h30m ").unwrap(), Duration::from_secs(5400));
        assert_eq!(duration("1d").unwrap(), Duration::from_secs(86400));
        assert!(duration("5").is_err());
        assert!(duration("h").is_err());
        assert!(duration("").is_err());
        // What `warm` and `doctor` print (2h05m) reads back as a duration, to the minute.
        for secs in [40, 125, 7500, 10800, 90000] {
            let printed = acr_proto::time::human(secs);
            let read = duration(&printed).unwrap().as_secs();
            let unit = if secs >= 3600 { 60 } else { 1 };
            assert_eq!(read, secs / unit * unit, "{printed}");
        }
    }

    #[test]
    fn man_page_documents_every_command() {
        let mut out = Vec::new();
        man_page(&mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        // clap_mangen's roff opens with the apostrophe-string definition, then the title.
        let title = text
            .lines()
            .find(|l| !l.starts_with(".ie") && !l.starts_with(".el"));
        assert!(
            title.is_some_and(|l| l.starts_with(".TH docker-credential-acr 1")),
            "{title:?}"
        );
        for c in Cli::command()
            .get_subcommands()
            .filter(|c| !c.is_hide_set())
        {
            let heading = format!(
                ".SH \"DOCKER-CREDENTIAL-ACR {}\"",
                c.get_name().to_uppercase()
            );
            assert!(text.contains(&heading), "{heading}");
        }
        assert!(text.contains("DOCKER-CREDENTIAL-ACR KUBELET MERGE-CONFIG"));
        assert!(!text.contains("COMPLETIONS"));
    }
}
