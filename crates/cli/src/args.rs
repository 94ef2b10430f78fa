//! Hand-rolled argument parsing: the hot path (`get`) must not pay for a parser framework.

/// Options of `agent run`.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct AgentRunOpts {
    /// Serve the node-wide socket under /run (systemd system unit, kubelet).
    pub system: bool,
    /// Inherited pipe to report readiness on (set by the helper's auto-start).
    pub ready_fd: Option<i32>,
    /// Write logs here instead of stderr (set by auto-start: stderr is /dev/null then).
    pub log_file: Option<String>,
}

/// A parsed command line.
#[derive(Debug, PartialEq, Eq)]
pub enum Command {
    /// `--help`.
    Help,
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
}

/// One-line usage, printed for bad arguments.
pub const USAGE: &str = "Usage: docker-credential-acr <store|get|erase|list|version> | warm [--min-ttl 2h] REGISTRY... | agent <run|status|stop [--forget]> | kubelet [merge-config --into PATH --from FILE --out OUT] | configure [--containers] [--dry-run] REGISTRY... | doctor [--acquire] [REGISTRY] | export [--min-ttl 2h] [--format docker-config|k8s-secret] [--namespace NS] [--name NAME] REGISTRY... | sync (--file PATH | --k8s-secret NS/NAME... | --namespace-selector SEL --secret-name NAME) [--service-account NAME] [--lease NS/NAME] [--min-ttl 2h] REGISTRY... | login [--tenant T] [--client-id C] [--registry R] | logout [--tenant T]";

/// Parses arguments (without the program name).
pub fn parse(args: &[String]) -> Result<Command, String> {
    let words: Vec<&str> = args.iter().map(String::as_str).collect();
    match words.as_slice() {
        ["get"] => Ok(Command::Get),
        ["store"] => Ok(Command::Store),
        ["erase"] => Ok(Command::Erase),
        ["list"] => Ok(Command::List),
        ["version"] | ["--version"] | ["-v"] => Ok(Command::Version),
        ["--help"] | ["-h"] | ["help"] => Ok(Command::Help),
        ["warm", rest @ ..] => parse_warm(rest),
        ["agent", "run", rest @ ..] => parse_agent_run(rest).map(Command::AgentRun),
        ["agent", "status"] => Ok(Command::AgentStatus { json: false }),
        ["agent", "status", "--json"] => Ok(Command::AgentStatus { json: true }),
        ["agent", "stop"] => Ok(Command::AgentStop { forget: false }),
        ["agent", "stop", "--forget"] => Ok(Command::AgentStop { forget: true }),
        ["kubelet"] => Ok(Command::Kubelet),
        ["kubelet", "merge-config", rest @ ..] => {
            crate::kubelet_config::parse_args(rest).map(Command::KubeletMergeConfig)
        }
        ["configure", rest @ ..] => parse_configure(rest),
        ["doctor", rest @ ..] => crate::doctor::parse_args(rest).map(Command::Doctor),
        ["export", rest @ ..] => crate::export::parse_args(rest).map(Command::Export),
        ["sync", rest @ ..] => crate::sync::parse_args(rest).map(Command::Sync),
        ["login", rest @ ..] => crate::signin::parse_login(rest).map(Command::Login),
        ["logout"] => Ok(Command::Logout { tenant: None }),
        ["logout", "--tenant", t] if !t.is_empty() && !t.starts_with('-') => Ok(Command::Logout {
            tenant: Some(t.to_string()),
        }),
        [] => Err(USAGE.to_string()),
        // A known verb with the wrong number of arguments: docker's helpers answer with usage.
        [verb, ..] if ["get", "store", "erase", "list", "version", "kubelet"].contains(verb) => {
            Err(USAGE.to_string())
        }
        [verb, ..]
            if !verb.starts_with('-')
                && !["warm", "agent", "kubelet", "configure", "login", "logout"].contains(verb) =>
        {
            Err(format!(
                "{}: unknown action: {}",
                crate::NAME,
                printable(verb)
            ))
        }
        _ => Err(USAGE.to_string()),
    }
}

/// One argument of a subcommand, as [`Flags`] splits it.
pub(crate) enum Arg<'a> {
    /// `--flag` or `-f` (its value, if any, comes from [`Flags::value`]).
    Flag(&'a str),
    /// Anything else (a registry).
    Operand(&'a str),
}

/// Walks a subcommand's arguments: `--flag VALUE`, `--flag=VALUE` and operands, with one-line
/// errors that name the verb. The one lexer of `warm`, `export` and `sync`.
pub(crate) struct Flags<'a> {
    verb: &'static str,
    rest: std::slice::Iter<'a, &'a str>,
    inline: Option<&'a str>,
}

impl<'a> Flags<'a> {
    /// Starts at the first argument after `verb`.
    pub fn new(verb: &'static str, rest: &'a [&'a str]) -> Self {
        Flags {
            verb,
            rest: rest.iter(),
            inline: None,
        }
    }

    /// The next argument, `None` at the end.
    pub fn next_arg(&mut self) -> Option<Arg<'a>> {
        let a: &'a str = self.rest.next()?;
        self.inline = None;
        Some(match a.split_once('=') {
            Some((flag, v)) if flag.starts_with("--") => {
                self.inline = Some(v);
                Arg::Flag(flag)
            }
            _ if a.starts_with('-') => Arg::Flag(a),
            _ => Arg::Operand(a),
        })
    }

    /// The value of `flag`: after `=`, else the next argument; `what` names it in the error.
    pub fn value(&mut self, flag: &str, what: &str) -> Result<String, String> {
        match self.inline.take() {
            Some(v) => Ok(v.to_string()),
            None => self
                .rest
                .next()
                .map(|v| v.to_string())
                .ok_or_else(|| format!("{}: {flag} needs {what}", self.verb)),
        }
    }

    /// The value of `--min-ttl`, in seconds.
    pub fn min_ttl(&mut self, flag: &str) -> Result<u64, String> {
        let v = self.value(flag, "a duration such as 2h")?;
        acr_proto::config::parse_duration(&v)
            .map(|d| d.as_secs())
            .map_err(|e| format!("{}: {flag} {}: {e}", self.verb, printable(&v)))
    }

    /// The error for a flag the verb does not know.
    pub fn unknown(&self, flag: &str) -> String {
        format!("{}: unknown option {}", self.verb, printable(flag))
    }
}

fn parse_warm(rest: &[&str]) -> Result<Command, String> {
    let mut min_ttl = None;
    let mut registries = Vec::new();
    let mut args = Flags::new("warm", rest);
    while let Some(arg) = args.next_arg() {
        match arg {
            Arg::Flag(flag @ "--min-ttl") => min_ttl = Some(args.min_ttl(flag)?),
            Arg::Flag(flag) => return Err(args.unknown(flag)),
            Arg::Operand(registry) => registries.push(registry.to_string()),
        }
    }
    if registries.is_empty() {
        return Err("warm: name at least one registry, e.g. docker-credential-acr warm --min-ttl 2h myreg.azurecr.io".into());
    }
    Ok(Command::Warm {
        min_ttl,
        registries,
    })
}

fn parse_configure(rest: &[&str]) -> Result<Command, String> {
    let (mut containers, mut dry_run, mut registries) = (false, false, Vec::new());
    for a in rest {
        match *a {
            "--containers" => containers = true,
            "--dry-run" | "-n" => dry_run = true,
            o if o.starts_with('-') => {
                return Err(format!("configure: unknown option {}", printable(o)))
            }
            r => registries.push(r.to_string()),
        }
    }
    Ok(Command::Configure {
        registries,
        containers,
        dry_run,
    })
}

fn parse_agent_run(rest: &[&str]) -> Result<AgentRunOpts, String> {
    let mut o = AgentRunOpts::default();
    let mut it = rest.iter();
    while let Some(a) = it.next() {
        match *a {
            "--system" => o.system = true,
            "--ready-fd" => {
                o.ready_fd = Some(
                    it.next()
                        .and_then(|v| v.parse().ok())
                        .ok_or("agent run: --ready-fd needs a number")?,
                )
            }
            "--log-file" => {
                o.log_file = Some(
                    it.next()
                        .ok_or("agent run: --log-file needs a path")?
                        .to_string(),
                )
            }
            other => return Err(format!("agent run: unknown option {}", printable(other))),
        }
    }
    Ok(o)
}

/// Shortens and sanitises user text for echoing in an error (or a terminal line).
pub(crate) fn printable(s: &str) -> String {
    acr_proto::text::printable(s, 64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(a: &[&str]) -> Result<Command, String> {
        parse(&a.iter().map(|s| s.to_string()).collect::<Vec<_>>())
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
            p(&["frob"]),
            Err("docker-credential-acr: unknown action: frob".into())
        );
        assert_eq!(p(&[]), Err(USAGE.into()));
        assert_eq!(p(&["get", "extra"]), Err(USAGE.into()));
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
        assert!(p(&["agent", "stop", "--frob"]).is_err());
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
        assert_eq!(
            p(&["agent", "run", "--ready-fd", "3"]),
            Ok(Command::AgentRun(AgentRunOpts {
                ready_fd: Some(3),
                ..Default::default()
            }))
        );
    }
}
