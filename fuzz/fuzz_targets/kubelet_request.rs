//! kubelet writes a `CredentialProviderRequest` on stdin; its image name and service-account
//! fields come from pod specs. Parsing must not panic, a refusal is one line for kubelet's log,
//! and no refusal repeats the service-account token.
#![no_main]

use acr_cli::kubelet::parse_request;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

const TOKEN_KEY: &str = "serviceAccountToken";

fuzz_target!(|data: &[u8]| {
    let Err(error) = parse_request(data) else {
        return;
    };
    let message = error.to_string();
    let debug = format!("{error:?}");
    assert!(
        !message.contains(['\n', '\r']),
        "refusal is not one line: {message:?}"
    );
    if let Some(token) = token_to_watch(data) {
        assert!(
            !message.contains(&token) && !debug.contains(&token),
            "refusal repeats the service-account token: {message:?}"
        );
    }
});

/// The request's service-account token, when a refusal could only contain it by repeating it: it
/// is long enough to recognise, no other string in the request contains it, and the refusal of
/// the same request with another token does not contain it either (fixed wording).
fn token_to_watch(data: &[u8]) -> Option<String> {
    let Value::Object(mut map) = serde_json::from_slice::<Value>(data).ok()? else {
        return None;
    };
    let token = map.get(TOKEN_KEY)?.as_str()?.to_string();
    if token.len() < 8 {
        return None;
    }
    let mut others = Vec::new();
    for (key, value) in &map {
        others.push(key.clone());
        if key != TOKEN_KEY {
            strings(value, &mut others);
        }
    }
    if others.iter().any(|s| s.contains(&token)) {
        return None;
    }
    map.insert(TOKEN_KEY.into(), Value::String("-".into()));
    let other = serde_json::to_vec(&map).ok()?;
    match parse_request(&other) {
        Err(m) if m.to_string().contains(&token) || format!("{m:?}").contains(&token) => None,
        _ => Some(token),
    }
}

fn strings(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => out.push(s.clone()),
        Value::Array(a) => a.iter().for_each(|v| strings(v, out)),
        Value::Object(m) => m.iter().for_each(|(k, v)| {
            out.push(k.clone());
            strings(v, out);
        }),
        _ => {}
    }
}
