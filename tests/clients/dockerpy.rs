//! docker-py's credential-store driver (`dockerpycreds`): get, store, erase and the not-found
//! mapping, exactly as docker-py drives a helper.

use crate::util::*;
use acr_testkit::NULL_GUID;

const SCRIPT: &str = r#"
import json, sys
import dockerpycreds
from dockerpycreds import errors

s = dockerpycreds.Store("acr")
out = {"exe": s.exe}
out["get"] = s.get(sys.argv[1])
s.store(sys.argv[1], "00000000-0000-0000-0000-000000000000", "x")
out["store"] = "ok"
s.erase(sys.argv[1])
out["erase"] = "ok"
for host in ("docker.io", "https://index.docker.io/v1/"):
    try:
        s.get(host)
        out[host] = "no error"
    except errors.CredentialsNotFound as e:
        out[host] = "CredentialsNotFound"
    except errors.StoreError as e:
        out[host] = "StoreError: %s" % e
try:
    s.store("docker.io", "someone", "pw")
    out["store-foreign"] = "ok"
except errors.CredentialsNotFound:
    out["store-foreign"] = "CredentialsNotFound"
except errors.StoreError as e:
    out["store-foreign"] = "StoreError"
print(json.dumps(out))
"#;

#[test]
fn dockerpycreds_get_store_erase_and_not_found() {
    let s = Setup::new();
    let out = s.run(
        s.client(system_python())
            .args(["-c", SCRIPT, HOST])
            .env("PYTHONDONTWRITEBYTECODE", "1"),
    );
    assert!(
        out.status.success(),
        "python failed: {}\n(is the Debian package python3-dockerpycreds installed?)",
        String::from_utf8_lossy(&out.stderr)
    );
    s.dump("dockerpycreds");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("script JSON");
    assert_eq!(
        v["exe"],
        s.world
            .bin_dir()
            .join("docker-credential-acr")
            .to_str()
            .unwrap(),
        "the helper under test was found on PATH"
    );
    assert_eq!(v["get"]["ServerURL"], HOST);
    assert_eq!(v["get"]["Username"], NULL_GUID);
    let secret = v["get"]["Secret"].as_str().expect("secret");
    assert!(
        s.fake.validate_refresh_token(HOST, secret),
        "a live ACR refresh token"
    );
    assert_eq!(v["store"], "ok");
    assert_eq!(v["erase"], "ok");
    assert_eq!(v["docker.io"], "CredentialsNotFound", "{v}");
    assert_eq!(
        v["https://index.docker.io/v1/"], "CredentialsNotFound",
        "{v}"
    );
    assert_eq!(v["store-foreign"], "StoreError", "{v}");

    // How docker-py drove the helper: one verb argument, the payload on stdin without newline.
    let calls = s.helper_calls();
    let verbs: Vec<&str> = calls.iter().map(|(a, _)| a[0].as_str()).collect();
    assert_eq!(
        verbs,
        ["get", "store", "erase", "get", "get", "store"],
        "{calls:?}"
    );
    assert!(calls.iter().all(|(a, _)| a.len() == 1), "{calls:?}");
    assert_eq!(calls[0].1, HOST);
    let stored: serde_json::Value = serde_json::from_str(&calls[1].1).expect("store JSON");
    assert_eq!(
        stored,
        serde_json::json!({"ServerURL": HOST, "Username": NULL_GUID, "Secret": "x"})
    );
    assert_eq!(calls[2].1, HOST);
}
