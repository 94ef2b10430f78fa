//! The config file is written by people (and by `configure`): any text must give a config or
//! one line naming the problem, and a config that parses must resolve every host without panic.
#![no_main]

use acr_proto::config::Config;
use acr_proto::host::RegistryHost;
use acr_token::policy::Policy;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let config = match Config::parse(text) {
        Ok(c) => c,
        Err(e) => {
            assert!(
                !e.contains(['\n', '\r']),
                "config error is not one line: {e:?}"
            );
            return;
        }
    };
    let _ = Policy::from_settings(&config.agent);
    let mut hosts: Vec<String> = [
        "myreg.azurecr.io",
        "r.azurecr.cn",
        "docker.io",
        "localhost:5000",
    ]
    .map(String::from)
    .to_vec();
    for r in &config.registries {
        if let Some(p) = &r.pattern {
            hosts.push(p.trim().replace("*.", "x."));
        }
    }
    for (src, dst) in &config.kubelet.mirrors {
        hosts.push(src.clone());
        hosts.push(dst.clone());
    }
    for host in hosts.iter().filter_map(|h| RegistryHost::parse(h).ok()) {
        let resolved = config.resolve(&host);
        assert_eq!(
            resolved.is_some(),
            config.recognises(&host),
            "resolve and recognises disagree on {host}"
        );
    }
});
