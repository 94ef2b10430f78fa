//! Secret-leak proof: every verb and every error path we can trigger, with trace logging and
//! `RUST_BACKTRACE=1`, for every identity kind, agent on and off. All process output (stdout but
//! the protocol's own `Secret`/`password` payload, stderr, the agent's log, `agent status`,
//! `doctor`) is collected and searched for every secret the run involved: client secrets, the
//! MI header, federated assertions, CI request tokens, a Kubernetes service-account token, the
//! Entra tokens the fake issued and the ACR refresh tokens it minted.

use crate::util::*;
use acr_testkit::{Challenge, Endpoint, Fault, SeenKind};
use std::process::Output;
use std::time::Duration;

const REG: &str = "myreg.azurecr.io";
const TRACE: (&str, &str) = ("DOCKER_CREDENTIAL_ACR_LOG", "trace");

/// Everything printed, by label, plus the tokens handed out as protocol payloads.
#[derive(Default)]
struct Collected {
    texts: Vec<(String, String)>,
    payload_tokens: Vec<String>,
}

impl Collected {
    /// Records a run; removes the one field that legitimately carries a token (the `Secret` of a
    /// successful `get`, the `password`s of a kubelet response) after remembering it.
    fn add(&mut self, label: &str, out: &Output) {
        assert_no_panic(out, label);
        let mut text = stdout(out);
        if out.status.success() {
            if let Ok(mut v) = serde_json::from_str::<serde_json::Value>(text.trim()) {
                if let Some(t) = v.get("Secret").and_then(|t| t.as_str()) {
                    self.payload_tokens.push(t.to_string());
                    v["Secret"] = "<payload>".into();
                }
                if let Some(auth) = v.get_mut("auth").and_then(|a| a.as_object_mut()) {
                    for entry in auth.values_mut() {
                        if let Some(p) = entry.get("password").and_then(|p| p.as_str()) {
                            self.payload_tokens.push(p.to_string());
                            entry["password"] = "<payload>".into();
                        }
                    }
                }
                text = v.to_string();
            }
        }
        self.texts.push((format!("{label} stdout"), text));
        self.texts.push((format!("{label} stderr"), stderr(out)));
    }
}

struct Identity {
    name: &'static str,
    env: Vec<(String, String)>,
}

#[test]
fn no_secret_reaches_any_output() {
    let s = Setup::new();
    let fake = &s.fake;
    let mut secrets: Vec<String> = vec![
        s.secret().to_string(),
        fake.mi_header().to_string(),
        fake.gha_request_token().to_string(),
        fake.ado_access_token().to_string(),
    ];

    // The identities: secret app, App Service MI, workload identity, GitHub Actions, Azure Pipelines.
    let (tenant, client) = (
        "3b1c9a52-0000-4000-8000-00000000aa01",
        "9d5e0c11-0000-4000-8000-00000000aa02",
    );
    fake.add_federated_app(tenant, client);
    let assertion =
        fake.mint_federated_assertion("system:serviceaccount:ns:sa", Duration::from_secs(3600));
    secrets.push(assertion.clone());
    let token_file = s.world.root().join("federated-token");
    std::fs::write(&token_file, &assertion).expect("token file");
    let fed = |extra: &[(&str, String)]| {
        let mut env = vec![
            ("AZURE_TENANT_ID".to_string(), tenant.to_string()),
            ("AZURE_CLIENT_ID".to_string(), client.to_string()),
        ];
        env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.clone())));
        env
    };
    let identities = vec![
        Identity {
            name: "secret",
            env: s.sp.clone(),
        },
        Identity {
            name: "app-service-mi",
            env: vec![
                ("IDENTITY_ENDPOINT".into(), fake.mi_endpoint()),
                ("IDENTITY_HEADER".into(), fake.mi_header().into()),
            ],
        },
        Identity {
            name: "workload-identity",
            env: fed(&[(
                "AZURE_FEDERATED_TOKEN_FILE",
                token_file.to_string_lossy().into(),
            )]),
        },
        Identity {
            name: "github-actions",
            env: fed(&[
                ("ACTIONS_ID_TOKEN_REQUEST_URL", fake.gha_request_url()),
                (
                    "ACTIONS_ID_TOKEN_REQUEST_TOKEN",
                    fake.gha_request_token().into(),
                ),
            ]),
        },
        Identity {
            name: "azure-pipelines",
            env: fed(&[
                ("SYSTEM_OIDCREQUESTURI", fake.ado_request_uri()),
                ("SYSTEM_ACCESSTOKEN", fake.ado_access_token().into()),
                (
                    "AZURESUBSCRIPTION_SERVICE_CONNECTION_ID",
                    "sc-leak-test".into(),
                ),
            ]),
        },
    ];

    let mut c = Collected::default();
    let path = format!(
        "{}:/usr/sbin:/usr/bin:/sbin:/bin",
        s.world.bin_dir().display()
    );
    s.world.link_bin("docker-credential-acr", bin());
    s.world
        .write_docker_config(&serde_json::json!({"credHelpers": {REG: "acr"}}));
    let run = |c: &mut Collected,
               label: &str,
               args: &[&str],
               stdin: &str,
               env: &[(String, String)],
               agent: bool| {
        let mut all: Vec<(&str, &str)> =
            env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        all.push(TRACE);
        all.push(("PATH", path.as_str()));
        if !agent {
            all.push(NO_AGENT);
        }
        let out = s.run(args, stdin, &all, false);
        c.add(label, &out);
        out
    };

    // Every verb, every identity, agent off then on. The `<token>` store's secret is not a JWT,
    // so it is accepted and not kept: this test never writes the machine's keyring.
    let store_secret = format!("store-secret-{}", std::process::id());
    secrets.push(store_secret.clone());
    let store =
        serde_json::json!({"ServerURL": REG, "Username": "<token>", "Secret": store_secret})
            .to_string();
    let foreign_store =
        serde_json::json!({"ServerURL": "docker.io", "Username": "u", "Secret": store_secret})
            .to_string();
    for id in &identities {
        for agent in [false, true] {
            let l = |what: &str| format!("{} agent={agent} {what}", id.name);
            for reg in [REG, "second.azurecr.io"] {
                let out = run(&mut c, &l("get"), &["get"], reg, &id.env, agent);
                creds(&out);
            }
            run(
                &mut c,
                &l("warm"),
                &["warm", "--min-ttl", "1h", REG],
                "",
                &id.env,
                agent,
            );
            run(&mut c, &l("store"), &["store"], &store, &id.env, agent);
            run(
                &mut c,
                &l("store foreign"),
                &["store"],
                &foreign_store,
                &id.env,
                agent,
            );
            run(&mut c, &l("list"), &["list"], "unused", &id.env, agent);
            run(
                &mut c,
                &l("kubelet"),
                &["kubelet"],
                &kubelet_request(REG, None),
                &id.env,
                agent,
            );
            run(
                &mut c,
                &l("doctor"),
                &["doctor", "--acquire", REG],
                "",
                &id.env,
                agent,
            );
            run(&mut c, &l("doctor plain"), &["doctor"], "", &id.env, agent);
            run(
                &mut c,
                &l("agent status"),
                &["agent", "status"],
                "",
                &id.env,
                agent,
            );
            run(
                &mut c,
                &l("agent status json"),
                &["agent", "status", "--json"],
                "",
                &id.env,
                agent,
            );
            run(&mut c, &l("erase"), &["erase"], REG, &id.env, agent);
        }
    }
    for args in [
        &["version"][..],
        &["--help"],
        &["configure", "--dry-run", REG],
        &["agent", "stop"],
    ] {
        run(
            &mut c,
            &format!("{args:?}"),
            args,
            "",
            &identities[0].env,
            false,
        );
    }

    // Kubernetes service-account token (KEP-4412) as the pod's identity, agent off and on.
    let sa_token = fake.mint_federated_assertion(
        "system:serviceaccount:team:puller",
        Duration::from_secs(3600),
    );
    secrets.push(sa_token.clone());
    for agent in [false, true] {
        let out = run(
            &mut c,
            &format!("kubelet sa agent={agent}"),
            &["kubelet"],
            &kubelet_request(REG, Some((&sa_token, tenant, client))),
            &[],
            agent,
        );
        assert!(out.status.success(), "{}", stderr(&out));
    }

    // Error paths, each with the secret-bearing identity that triggers it, agent off and on.
    let wrong_secret = format!("wrong-secret-{}", std::process::id());
    let wrong_header = format!("wrong-mi-header-{}", std::process::id());
    let wrong_gha = format!("wrong-gha-token-{}", std::process::id());
    secrets.extend([
        wrong_secret.clone(),
        wrong_header.clone(),
        wrong_gha.clone(),
    ]);
    let expired = fake.mint_federated_assertion("system:serviceaccount:ns:sa", Duration::ZERO);
    secrets.push(expired.clone());
    let expired_file = s.world.root().join("expired-token");
    std::fs::write(&expired_file, &expired).expect("expired token file");
    let with = |base: &[(String, String)], k: &str, v: &str| {
        let mut env: Vec<(String, String)> = base.iter().filter(|(n, _)| n != k).cloned().collect();
        env.push((k.to_string(), v.to_string()));
        env
    };
    let error_envs: Vec<(&str, Vec<(String, String)>)> = vec![
        (
            "wrong secret",
            with(&identities[0].env, "AZURE_CLIENT_SECRET", &wrong_secret),
        ),
        (
            "wrong MI header",
            with(&identities[1].env, "IDENTITY_HEADER", &wrong_header),
        ),
        (
            "expired assertion",
            with(
                &identities[2].env,
                "AZURE_FEDERATED_TOKEN_FILE",
                &expired_file.to_string_lossy(),
            ),
        ),
        (
            "wrong GitHub token",
            with(
                &identities[3].env,
                "ACTIONS_ID_TOKEN_REQUEST_TOKEN",
                &wrong_gha,
            ),
        ),
        ("no identity", Vec::new()),
    ];
    for (name, env) in &error_envs {
        for agent in [false, true] {
            let out = run(
                &mut c,
                &format!("{name} agent={agent}"),
                &["get"],
                "third.azurecr.io",
                env,
                agent,
            );
            one_line_failure(&out);
            run(
                &mut c,
                &format!("{name} doctor"),
                &["doctor", "--acquire", "third.azurecr.io"],
                "",
                env,
                agent,
            );
        }
    }
    // Upstream faults and refusals, for the secret app and the MI (whose header is a secret).
    s.world.add_host("fourth.azurecr.io");
    s.world.add_host("fifth.azurecr.io");
    let client_id = s.sp_var("AZURE_CLIENT_ID").to_string();
    let system_mi = fake.system_assigned().expect("system MI").object_id;
    type Arm<'a> = Box<dyn Fn() + 'a>;
    let fault = |ep: Endpoint, f: Fault| -> (String, &str, Arm, Arm) {
        let name = format!("{ep:?} {f:?}");
        (
            name,
            "third.azurecr.io",
            Box::new(move || fake.set_fault(ep, Some(f.clone()))),
            Box::new(move || fake.set_fault(ep, None)),
        )
    };
    let cases: Vec<(String, &str, Arm, Arm)> = vec![
        (
            "denied".into(),
            "fourth.azurecr.io",
            Box::new(|| {
                fake.deny("fourth.azurecr.io", &client_id);
                fake.deny("fourth.azurecr.io", &system_mi);
            }),
            Box::new(|| {}),
        ),
        fault(Endpoint::EntraToken, Fault::Status(500)),
        fault(Endpoint::EntraToken, Fault::Truncated),
        fault(Endpoint::MiToken, Fault::Status(500)),
        fault(Endpoint::AcrExchange, Fault::NotJson),
        fault(Endpoint::AcrExchange, Fault::Truncated),
        fault(Endpoint::AcrExchange, Fault::Status(503)),
        (
            "basic challenge".into(),
            "third.azurecr.io",
            Box::new(|| fake.set_challenge("third.azurecr.io", Challenge::Basic)),
            Box::new(|| fake.set_challenge("third.azurecr.io", Challenge::Bearer)),
        ),
        (
            "foreign realm".into(),
            "third.azurecr.io",
            Box::new(|| {
                fake.set_challenge(
                    "third.azurecr.io",
                    Challenge::RealmHost("second.azurecr.io".into()),
                )
            }),
            Box::new(|| fake.set_challenge("third.azurecr.io", Challenge::Bearer)),
        ),
    ];
    for (name, reg, arm, disarm) in &cases {
        arm();
        for id in &identities[..2] {
            for agent in [false, true] {
                let l = format!("{name} {} agent={agent} {reg}", id.name);
                run(&mut c, &l, &["get"], reg, &id.env, agent);
                run(
                    &mut c,
                    &format!("{l} erase"),
                    &["erase"],
                    reg,
                    &id.env,
                    agent,
                );
            }
        }
        disarm();
    }
    // A renewal that fails while a valid token is cached: the token is served with a warning.
    fake.set_refresh_lifetime(Duration::from_secs(8));
    creds(&run(
        &mut c,
        "before outage",
        &["get"],
        "fifth.azurecr.io",
        &identities[0].env,
        true,
    ));
    fake.set_fault(Endpoint::AcrExchange, Some(Fault::Status(503)));
    // Past a third of the 8 s life, below R = 2/3 of it: renewal is due and fails.
    std::thread::sleep(Duration::from_secs(4));
    let out = run(
        &mut c,
        "stale",
        &["get"],
        "fifth.azurecr.io",
        &identities[0].env,
        true,
    );
    creds(&out);
    assert!(
        stderr(&out).contains("because renewal failed"),
        "{}",
        stderr(&out)
    );
    fake.set_fault(Endpoint::AcrExchange, None);
    fake.set_refresh_lifetime(Duration::from_secs(10_800));
    // A bad config file and malformed kubelet input.
    let cfg = s.write_config("[defaults]\nclient_secret = \"in-config-secret\"\n");
    secrets.push("in-config-secret".into());
    run(
        &mut c,
        "bad config get",
        &["get"],
        REG,
        &identities[0].env,
        false,
    );
    run(
        &mut c,
        "bad config doctor",
        &["doctor", REG],
        "",
        &identities[0].env,
        false,
    );
    std::fs::remove_file(cfg).expect("remove config");
    s.write_config("");
    run(
        &mut c,
        "kubelet garbage",
        &["kubelet"],
        "{\"apiVersion\":",
        &identities[0].env,
        false,
    );

    // The agent's view and log, last.
    for (l, args) in [
        ("final status", &["agent", "status"][..]),
        ("final status json", &["agent", "status", "--json"]),
    ] {
        let out = s.run(args, "", &[TRACE], false);
        c.add(l, &out);
    }
    s.stop_agent();
    let log = std::fs::read_to_string(s.agent_log()).unwrap_or_default();
    assert!(
        log.contains("TRACE") || log.contains("DEBUG"),
        "the agent logged at trace level"
    );
    c.texts.push(("agent.log".into(), log));

    // Every secret the fake saw, and every token it issued that reached a client.
    // (Every credential-bearing value a request carried: secrets, assertions, the MI header, CI
    // request tokens in `Authorization`, Entra tokens sent to the exchange.)
    for seen in fake.seen() {
        if seen.kind == SeenKind::Authorization {
            if let Some((_, value)) = seen.value.split_once(' ') {
                secrets.push(value.to_string());
            }
        }
        secrets.push(seen.value);
    }
    secrets.extend(c.payload_tokens.iter().cloned());
    secrets.retain(|x| x.len() >= 12);
    secrets.sort();
    secrets.dedup();
    let entra = fake
        .seen()
        .iter()
        .filter(|x| fake.is_entra_token(&x.value))
        .count();
    assert!(
        entra > 0 && !c.payload_tokens.is_empty(),
        "the run produced tokens to look for"
    );
    let mut leaks = Vec::new();
    for (label, text) in &c.texts {
        for secret in &secrets {
            if text.contains(secret.as_str()) {
                leaks.push(format!("{label}: contains a secret ({}…)", &secret[..8]));
            }
        }
    }
    eprintln!(
        "leak check: {} outputs, {} secrets, {} bytes of text",
        c.texts.len(),
        secrets.len(),
        c.texts.iter().map(|(_, t)| t.len()).sum::<usize>()
    );
    assert!(leaks.is_empty(), "secrets leaked:\n{}", leaks.join("\n"));
    assert_entra_tokens_contained(
        fake,
        &[
            REG,
            "second.azurecr.io",
            "third.azurecr.io",
            "fourth.azurecr.io",
            "fifth.azurecr.io",
        ],
    );
}

fn kubelet_request(registry: &str, sa: Option<(&str, &str, &str)>) -> String {
    let mut v = serde_json::json!({
        "apiVersion": "credentialprovider.kubelet.k8s.io/v1",
        "kind": "CredentialProviderRequest",
        "image": format!("{registry}/team/app:v1"),
    });
    if let Some((token, tenant, client)) = sa {
        v["serviceAccountToken"] = token.into();
        v["serviceAccountAnnotations"] = serde_json::json!({
            "kubernetes.azure.com/acr-client-id": client,
            "kubernetes.azure.com/acr-tenant-id": tenant,
        });
    }
    v.to_string()
}
