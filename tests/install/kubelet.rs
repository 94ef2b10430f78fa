//! The kubelet `CredentialProviderConfig`: decoded as kubelet does (strict: unknown or duplicate
//! fields are errors), validated with kubelet's rules, and its `matchImages` evaluated with
//! kubelet's `URLsMatch` (same label count, one label per `*`, equal port, path prefix).

use crate::util::*;
use serde_json::Value;

/// YAML to JSON with PyYAML, refusing duplicate keys (kubelet's strict decoder does).
const YAML_TO_JSON: &str = r#"
import json, sys, yaml

class Strict(yaml.SafeLoader):
    pass

def mapping(loader, node, deep=False):
    keys = set()
    for k, _ in node.value:
        key = loader.construct_object(k, deep=deep)
        if key in keys:
            raise SystemExit("duplicate key %r" % (key,))
        keys.add(key)
    return loader.construct_mapping(node, deep)

Strict.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, mapping)
print(json.dumps(list(yaml.load_all(open(sys.argv[1]), Loader=Strict))))
"#;

/// Every YAML document in `path`, as JSON values (PyYAML, duplicate keys refused).
pub fn load_yaml_docs(path: &std::path::Path) -> Vec<Value> {
    let out = python(YAML_TO_JSON, &[path.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}: YAML did not parse (needs the Debian package python3-yaml): {}",
        path.display(),
        text(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON from PyYAML")
}

/// The one document in `path`.
pub fn load_yaml(path: &std::path::Path) -> Value {
    let mut docs = load_yaml_docs(path);
    assert_eq!(docs.len(), 1, "{}: one document", path.display());
    docs.remove(0)
}

fn load_config() -> Value {
    load_yaml(&install_dir().join("kubelet/credential-provider-config.yaml"))
}

/// Exactly these keys may appear (strict decoding), and `required` must.
fn keys(v: &Value, allowed: &[&str], required: &[&str], what: &str) {
    let obj = v
        .as_object()
        .unwrap_or_else(|| panic!("{what} is not a mapping"));
    for k in obj.keys() {
        assert!(allowed.contains(&k.as_str()), "{what}: unknown field {k:?}");
    }
    for r in required {
        assert!(obj.contains_key(*r), "{what}: missing required field {r:?}");
    }
}

/// Go `time.ParseDuration` for the forms a config uses (`10m`, `1h30m`, `0s`, `1.5h`).
fn go_duration_secs(s: &str) -> Option<f64> {
    if s == "0" {
        return Some(0.0);
    }
    let mut total = 0.0;
    let mut rest = s;
    while !rest.is_empty() {
        let n = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .filter(|&n| n > 0)?;
        let value: f64 = rest[..n].parse().ok()?;
        rest = &rest[n..];
        let u = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..u] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        total += value * scale;
        rest = &rest[u..];
    }
    Some(total)
}

/// `ParseSchemelessURL` + `SplitURL`: (host labels, port, path).
fn split(s: &str) -> (Vec<String>, String, String) {
    let (authority, path) = match s.find('/') {
        Some(i) => (&s[..i], &s[i..]),
        None => (s, ""),
    };
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') => (h, p),
        _ => (authority, ""),
    };
    (
        host.split('.').map(str::to_string).collect(),
        port.to_string(),
        path.to_string(),
    )
}

/// `filepath.Match` for one label: `*` (any run), `?` (one char), literals. Classes are not
/// used by our patterns and are refused rather than half-implemented.
fn glob(pattern: &[char], name: &[char]) -> bool {
    match pattern.split_first() {
        None => name.is_empty(),
        Some(('*', rest)) => (0..=name.len()).any(|i| glob(rest, &name[i..])),
        Some(('?', rest)) => !name.is_empty() && glob(rest, &name[1..]),
        Some(('[' | '\\', _)) => panic!("glob classes/escapes are not supported here"),
        Some((c, rest)) => name.first() == Some(c) && glob(rest, &name[1..]),
    }
}

/// Kubelet's `URLsMatch(glob, target)`.
pub fn urls_match(pattern: &str, target: &str) -> bool {
    let (gl, gport, gpath) = split(pattern);
    let (tl, tport, tpath) = split(target);
    if gport != tport || gl.len() != tl.len() || !tpath.starts_with(&gpath) {
        return false;
    }
    gl.iter().zip(&tl).all(|(g, t)| {
        let g: Vec<char> = g.chars().collect();
        let t: Vec<char> = t.chars().collect();
        glob(&g, &t)
    })
}

#[test]
fn urls_match_follows_kubelet() {
    // The examples from kubelet's own documentation and tests.
    assert!(urls_match("*.docker.io", "blah.docker.io"));
    assert!(!urls_match("*.docker.io", "not.right.io"));
    assert!(!urls_match("*.io", "a.b.io"), "one label per *");
    assert!(urls_match("*.*.io", "a.b.io"));
    assert!(urls_match("app*.k8s.io", "app1.k8s.io"));
    assert!(urls_match("k8s.*", "k8s.io"));
    assert!(
        !urls_match("reg.io", "reg.io:5000/x"),
        "absent vs present port"
    );
    assert!(urls_match("reg.io:5000", "reg.io:5000/x"));
    assert!(
        urls_match("reg.io/foo", "reg.io/foobar"),
        "plain string prefix"
    );
    assert!(!urls_match("reg.io/foo", "reg.io/bar"));
    assert_eq!(go_duration_secs("10m"), Some(600.0));
    assert_eq!(go_duration_secs("1h30m"), Some(5400.0));
    assert_eq!(go_duration_secs("10"), None, "a unit is required");
}

#[test]
fn config_has_exactly_the_fields_kubelet_requires() {
    let v = load_config();
    keys(
        &v,
        &["apiVersion", "kind", "providers"],
        &["apiVersion", "kind", "providers"],
        "config",
    );
    assert_eq!(v["apiVersion"], "kubelet.config.k8s.io/v1");
    assert_eq!(v["kind"], "CredentialProviderConfig");
    let providers = v["providers"].as_array().expect("providers list");
    assert_eq!(providers.len(), 1, "one provider");
    let p = &providers[0];
    keys(
        p,
        &[
            "name",
            "matchImages",
            "defaultCacheDuration",
            "apiVersion",
            "args",
            "env",
            "tokenAttributes",
        ],
        &["name", "matchImages", "defaultCacheDuration", "apiVersion"],
        "provider",
    );
    // The name is the executable in --image-credential-provider-bin-dir.
    assert_eq!(p["name"], "docker-credential-acr");
    assert_eq!(p["apiVersion"], "credentialprovider.kubelet.k8s.io/v1");
    assert_eq!(p["args"], serde_json::json!(["kubelet"]));
    let d = p["defaultCacheDuration"]
        .as_str()
        .expect("duration is a string");
    assert_eq!(d, "10m");
    assert!(go_duration_secs(d).is_some_and(|s| s >= 0.0), "{d}");
    let images: Vec<&str> = p["matchImages"]
        .as_array()
        .expect("matchImages list")
        .iter()
        .map(|x| x.as_str().expect("matchImages entries are strings"))
        .collect();
    assert!(!images.is_empty());
    let mut sorted = images.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), images.len(), "no duplicate patterns");
    for i in &images {
        assert!(
            !i.contains("://") && !i.contains(char::is_whitespace),
            "{i:?}"
        );
    }
}

#[test]
fn match_images_cover_every_acr_name_and_nothing_else() {
    let v = load_config();
    let images: Vec<String> = v["providers"][0]["matchImages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap().to_string())
        .collect();
    let matched = |image: &str| images.iter().any(|g| urls_match(g, image));
    for image in [
        "myreg.azurecr.io/team/app",
        "myreg.azurecr.io/app",
        "myreg.westeurope.data.azurecr.io/x",
        "myreg.westeurope.geo.azurecr.io/x",
        "myreg.azurecr.cn/team/app",
        "myreg.chinaeast2.data.azurecr.cn/x",
        "myreg.azurecr.us/team/app",
        "myreg.usgovvirginia.data.azurecr.us/x",
        "myreg.azurecr.sovcloud-azure.fr/team/app",
        "myreg.francecentral.geo.azurecr.sovcloud-azure.fr/x",
        "registry123.azurecr.sovcloud-azure.de/x",
        "registry123.deloscloudgermanycentral.geo.azurecr.sovcloud-azure.de/x",
    ] {
        assert!(matched(image), "{image} must match {images:?}");
    }
    for image in [
        "evil.example/x",
        "azurecr.io/x",
        "evilazurecr.io/x",
        "myreg.azurecr.io.evil.example/x",
        "myreg.azurecr.io:5000/x",
        "mcr.microsoft.com/dotnet/runtime",
        "docker.io/library/alpine",
    ] {
        assert!(!matched(image), "{image} must not match {images:?}");
    }
}

fn strings(v: &Value) -> Vec<&str> {
    v.as_array()
        .map(|a| {
            a.iter()
                .map(|x| x.as_str().expect("strings only"))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn sa_token_variant_adds_token_attributes_kubelet_accepts_for_the_annotations_we_read() {
    let plain = load_config();
    let sa = load_yaml(&install_dir().join("kubelet/credential-provider-config-sa-token.yaml"));
    // The same provider apart from tokenAttributes (so the plain checks above cover the rest).
    let mut stripped = sa.clone();
    let attrs = stripped["providers"][0]
        .as_object_mut()
        .expect("provider mapping")
        .remove("tokenAttributes")
        .expect("tokenAttributes present");
    assert_eq!(stripped, plain, "only tokenAttributes differ");
    // ServiceAccountTokenAttributes (kubelet config v1, 1.34+): exactly these fields.
    keys(
        &attrs,
        &[
            "serviceAccountTokenAudience",
            "cacheType",
            "requireServiceAccount",
            "requiredServiceAccountAnnotationKeys",
            "optionalServiceAccountAnnotationKeys",
        ],
        &[
            "serviceAccountTokenAudience",
            "cacheType",
            "requireServiceAccount",
        ],
        "tokenAttributes",
    );
    assert_eq!(
        attrs["serviceAccountTokenAudience"],
        "api://AzureADTokenExchange"
    );
    // Our ACR token depends on the service account's annotations, not on the pod.
    assert_eq!(attrs["cacheType"], "ServiceAccount");
    assert!(attrs["requireServiceAccount"].is_boolean());
    let required = strings(&attrs["requiredServiceAccountAnnotationKeys"]);
    let optional = strings(&attrs["optionalServiceAccountAnnotationKeys"]);
    // Kubelet's validation: required keys need requireServiceAccount; keys unique; lists disjoint.
    if !required.is_empty() {
        assert_eq!(attrs["requireServiceAccount"], true);
    }
    let mut all: Vec<&str> = required.iter().chain(&optional).copied().collect();
    let n = all.len();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), n, "annotation keys unique and disjoint");
    // The provider fails without the client-id annotation and falls back to AZURE_TENANT_ID.
    assert_eq!(required, [acr_cli::kubelet::CLIENT_ID_ANNOTATION]);
    assert_eq!(optional, [acr_cli::kubelet::TENANT_ID_ANNOTATION]);
}
