//! Server URLs come from docker, containerd, buildah, kubelet image names and config patterns:
//! `RegistryHost::parse` decides whether we ever contact a host, so it must not panic and its
//! canonical form must be a fixed point that prints safely on one line.
#![no_main]

use acr_proto::host::{builtin_cloud, pattern_matches, RegistryHost, ACR_SUFFIXES};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    check_host(text);
    // With a newline, the first line is also tried as a user pattern against the rest.
    if let Some((pattern, url)) = text.split_once('\n') {
        if let Ok(host) = RegistryHost::parse(url) {
            let _ = pattern_matches(pattern, &host);
            check_host(url);
        }
    }
});

fn check_host(text: &str) {
    let Ok(host) = RegistryHost::parse(text) else {
        return;
    };
    let shown = host.to_string();
    assert!(
        !shown.chars().any(|c| c.is_whitespace() || c.is_control()),
        "canonical host {shown:?} (from {text:?}) holds whitespace or control characters"
    );
    assert_eq!(
        RegistryHost::parse(&shown).as_ref(),
        Ok(&host),
        "canonical host {shown:?} (from {text:?}) does not re-parse to itself"
    );
    assert!(
        pattern_matches(&shown, &host),
        "host {shown:?} does not match itself as a pattern"
    );
    if let Some(cloud) = builtin_cloud(&host) {
        assert!(!host.is_ip(), "IP literal {shown:?} recognised as ACR");
        let suffix = ACR_SUFFIXES
            .iter()
            .find(|(_, c)| *c == cloud)
            .map(|(s, _)| *s)
            .unwrap();
        assert!(
            host.name().len() > suffix.len() && host.name().ends_with(suffix),
            "{shown:?} recognised as {cloud:?} without its suffix"
        );
    }
    if !host.is_ip() {
        // `*.host` matches one more label in front of the host, never the host itself.
        let wildcard = format!("*.{shown}");
        assert!(
            !pattern_matches(&wildcard, &host),
            "{wildcard:?} matches {shown:?} itself"
        );
        if let Ok(sub) = RegistryHost::parse(&format!("x.{shown}")) {
            assert!(
                pattern_matches(&wildcard, &sub),
                "{wildcard:?} does not match {sub}"
            );
        }
    }
}
