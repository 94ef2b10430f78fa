//! Helpers shared by the testkit's own tests: run `curl` inside a [`World`].

// Each test binary uses a different subset of these helpers.
#![allow(dead_code)]

use acr_testkit::{FakeAzure, World};
use std::time::{SystemTime, UNIX_EPOCH};

/// What `curl` reported.
#[derive(Debug)]
pub struct Resp {
    pub exit: i32,
    pub status: u16,
    pub headers: String,
    pub body: String,
    pub stderr: String,
}

impl Resp {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {self:?}"))
    }
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
    }
}

/// Runs `curl -sS -i --cacert <fake CA> ARGS` inside the world.
pub fn curl(world: &World, fake: &FakeAzure, args: &[&str]) -> Resp {
    let out = world
        .command("curl")
        .args(["-sS", "-i", "--max-time", "5", "--cacert"])
        .arg(fake.ca_pem_path())
        .args(args)
        .output()
        .expect("run curl");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let (headers, body) = stdout.split_once("\r\n\r\n").unwrap_or((&stdout, ""));
    let status = headers
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Resp {
        exit: out.status.code().unwrap_or(-1),
        status,
        headers: headers.to_string(),
        body: body.to_string(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `-d k=v` arguments for a form POST (values are URL-encoded by curl).
pub fn form(pairs: &[(&str, &str)]) -> Vec<String> {
    pairs
        .iter()
        .flat_map(|(k, v)| ["--data-urlencode".to_string(), format!("{k}={v}")])
        .collect()
}

pub const TENANT: &str = "11111111-2222-3333-4444-555555555555";
pub const CLIENT: &str = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee";
pub const TOKEN_URL: &str =
    "https://login.microsoftonline.com/11111111-2222-3333-4444-555555555555/oauth2/v2.0/token";

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

pub fn post(world: &World, fake: &FakeAzure, url: &str, pairs: &[(&str, &str)]) -> Resp {
    let mut args: Vec<String> = form(pairs);
    args.push(url.to_string());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    curl(world, fake, &args)
}

pub fn entra_secret_grant(world: &World, fake: &FakeAzure, secret: &str) -> Resp {
    post(
        world,
        fake,
        TOKEN_URL,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", CLIENT),
            ("client_secret", secret),
            ("scope", "https://containerregistry.azure.net/.default"),
        ],
    )
}
