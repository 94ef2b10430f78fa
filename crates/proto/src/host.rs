//! Server-URL normalisation and ACR registry recognition.
//!
//! Clients send the registry in many shapes (`myreg.azurecr.io`, `https://MyReg.azurecr.io/v2/`,
//! `myreg.azurecr.io:443`). Every shape is reduced to one canonical [`RegistryHost`], and only a
//! host that is an ACR login server (or one the user configured) is ever contacted: anything else
//! gets Docker's not-found answer with no network I/O at all.

use std::fmt;

/// Why a server URL could not be reduced to a host. Each message is one line a user can act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostError {
    /// Nothing was given (docker's own text for this case).
    Empty,
    /// The text is not a server URL; the reason says which part is wrong.
    Invalid(&'static str),
}

impl fmt::Display for HostError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostError::Empty => f.write_str("no credentials server URL"),
            HostError::Invalid(why) => write!(f, "invalid registry server URL: {why}"),
        }
    }
}

impl std::error::Error for HostError {}

/// A canonical registry host: lower-case, no scheme, no path, no default `:443`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RegistryHost {
    host: String,
    port: Option<u16>,
}

/// Longest server URL accepted; real ones are under 300 bytes, and this bounds all later work.
pub const MAX_SERVER_URL_LEN: usize = 2048;

impl RegistryHost {
    /// Reduces any form a credential client sends to the canonical host.
    ///
    /// Accepts a bare host, `host:port`, and `http(s)://host[:port][/path]`, any case, with
    /// surrounding whitespace. Rejects user-info, IP literals are allowed through here (they are
    /// simply never recognised as ACR), and anything with characters a DNS name cannot hold.
    pub fn parse(input: &str) -> Result<Self, HostError> {
        let text = input.trim();
        if text.is_empty() {
            return Err(HostError::Empty);
        }
        if text.len() > MAX_SERVER_URL_LEN {
            return Err(HostError::Invalid("longer than 2048 bytes"));
        }
        let rest = match text.find("://") {
            Some(i) => {
                let scheme = text[..i].to_ascii_lowercase();
                if scheme != "https" && scheme != "http" {
                    return Err(HostError::Invalid("scheme must be https"));
                }
                &text[i + 3..]
            }
            None => text,
        };
        let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
        if authority.is_empty() {
            return Err(HostError::Invalid("no host name"));
        }
        if authority.contains('@') {
            return Err(HostError::Invalid(
                "user information is not allowed in a registry URL",
            ));
        }
        let (host, port) = split_port(authority)?;
        let host = host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase();
        if !is_host_name(&host) && !is_ip_literal(&host) {
            return Err(HostError::Invalid("host is not a valid DNS name"));
        }
        let port = port.filter(|p| *p != 443);
        Ok(RegistryHost { host, port })
    }

    /// The host name without port.
    pub fn name(&self) -> &str {
        &self.host
    }

    /// The explicit non-default port, if any.
    pub fn port(&self) -> Option<u16> {
        self.port
    }

    /// Whether the host is an IP address literal (never an ACR login server).
    pub fn is_ip(&self) -> bool {
        is_ip_literal(&self.host)
    }
}

impl fmt::Display for RegistryHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.port {
            Some(p) => write!(f, "{}:{p}", self.host),
            None => f.write_str(&self.host),
        }
    }
}

/// On the wire a host is its canonical string; decoding parses it again, so a peer can never
/// hand over a host the parser would have refused.
impl serde::Serialize for RegistryHost {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for RegistryHost {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        RegistryHost::parse(&text).map_err(serde::de::Error::custom)
    }
}

fn split_port(authority: &str) -> Result<(&str, Option<u16>), HostError> {
    if let Some(inner) = authority.strip_prefix('[') {
        // IPv6 literal: `[::1]` or `[::1]:5000`.
        let end = inner
            .find(']')
            .ok_or(HostError::Invalid("unclosed IPv6 bracket"))?;
        if inner[..end].parse::<std::net::Ipv6Addr>().is_err() {
            return Err(HostError::Invalid(
                "not an IPv6 address inside the brackets",
            ));
        }
        let port = parse_port(&inner[end + 1..])?;
        return Ok((&authority[..end + 2], port));
    }
    match authority.rsplit_once(':') {
        Some((host, port)) => Ok((host, parse_port(&format!(":{port}"))?)),
        None => Ok((authority, None)),
    }
}

fn parse_port(text: &str) -> Result<Option<u16>, HostError> {
    if text.is_empty() {
        return Ok(None);
    }
    let digits = text
        .strip_prefix(':')
        .ok_or(HostError::Invalid("unexpected text after host"))?;
    if digits.is_empty() || digits.len() > 5 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(HostError::Invalid("port must be a number from 1 to 65535"));
    }
    match digits.parse::<u16>() {
        Ok(0) | Err(_) => Err(HostError::Invalid("port must be a number from 1 to 65535")),
        Ok(p) => Ok(Some(p)),
    }
}

/// RFC 1123 host name: labels of letters, digits and inner hyphens, 1..=63 bytes each.
fn is_host_name(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

fn is_ip_literal(host: &str) -> bool {
    host.starts_with('[') || host.parse::<std::net::Ipv4Addr>().is_ok()
}

/// The Azure cloud a registry belongs to; it decides the Entra authority host.
///
/// Sources for the suffixes and authority hosts (one table, [`ACR_SUFFIXES`], holds them):
/// - Azure CLI `src/azure-cli-core/azure/cli/core/cloud.py` (`acr_login_server_endpoint`:
///   `.azurecr.io`, `.azurecr.cn`, `.azurecr.us`; `active_directory` authority per cloud).
/// - Azure CLI `src/azure-cli/azure/cli/command_modules/acr/tests/latest/test_regional_endpoint_utils.py`
///   (sovereign login-server suffixes `.azurecr.sovcloud-azure.de` and `.azurecr.sovcloud-azure.fr`,
///   with regional endpoints `<name>.<region>.geo.azurecr.sovcloud-azure.de`).
/// - Azure.Identity `AzureAuthorityHosts.AzureBleuCloud` (learn.microsoft.com/dotnet/api/
///   azure.identity.azureauthorityhosts.azurebleucloud) and MSAL's known-authority list
///   (`login.sovcloud-identity.fr`, `login.sovcloud-identity.de`); `Add-AzEnvironment -Name Bleu
///   -ServiceManagementUrl https://management.core.sovcloud-api.fr/` for the ARM audience.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Cloud {
    /// Azure public cloud (`.azurecr.io`, `login.microsoftonline.com`).
    Public,
    /// Azure operated by 21Vianet (`.azurecr.cn`, `login.chinacloudapi.cn`).
    China,
    /// Azure US Government (`.azurecr.us`, `login.microsoftonline.us`).
    Usgov,
    /// Bleu, the French national partner cloud (`.azurecr.sovcloud-azure.fr`,
    /// `login.sovcloud-identity.fr`).
    Bleu,
    /// Delos, the German national partner cloud (`.azurecr.sovcloud-azure.de`,
    /// `login.sovcloud-identity.de`).
    Delos,
}

impl Cloud {
    /// The Entra authority host for this cloud, as an https origin.
    pub fn authority_host(self) -> &'static str {
        match self {
            Cloud::Public => "https://login.microsoftonline.com",
            Cloud::China => "https://login.chinacloudapi.cn",
            Cloud::Usgov => "https://login.microsoftonline.us",
            Cloud::Bleu => "https://login.sovcloud-identity.fr",
            Cloud::Delos => "https://login.sovcloud-identity.de",
        }
    }

    /// The ARM audience of this cloud, for registries that are configured to want it.
    pub fn arm_audience(self) -> &'static str {
        match self {
            Cloud::Public => "https://management.core.windows.net/",
            Cloud::China => "https://management.core.chinacloudapi.cn/",
            Cloud::Usgov => "https://management.core.usgovcloudapi.net/",
            Cloud::Bleu => "https://management.core.sovcloud-api.fr/",
            Cloud::Delos => "https://management.core.sovcloud-api.de/",
        }
    }

    /// A name for messages (`doctor`).
    pub fn display_name(self) -> &'static str {
        match self {
            Cloud::Public => "public",
            Cloud::China => "China",
            Cloud::Usgov => "US Government",
            Cloud::Bleu => "Bleu (France)",
            Cloud::Delos => "Delos (Germany)",
        }
    }
}

/// Built-in ACR login-server suffixes and their clouds (protocol.md §1.11; sources on [`Cloud`]).
pub const ACR_SUFFIXES: &[(&str, Cloud)] = &[
    (".azurecr.io", Cloud::Public),
    (".azurecr.cn", Cloud::China),
    (".azurecr.us", Cloud::Usgov),
    (".azurecr.sovcloud-azure.fr", Cloud::Bleu),
    (".azurecr.sovcloud-azure.de", Cloud::Delos),
];

/// What an ACR host under a built-in suffix is, from Microsoft's endpoint reference
/// (learn.microsoft.com/azure/container-registry/container-registry-endpoint-reference):
/// global `<name><suffix>`, regional `<name>.<region>.geo<suffix>`, dedicated data endpoint
/// `<name>.<region>.data<suffix>` (layer downloads only, reached by 307 redirect; it never
/// serves a login, so it must get not-found with no traffic).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AcrEndpoint {
    /// A login server (global, regional `.geo.`, or domain-name-label form) of this cloud.
    LoginServer(Cloud),
    /// A dedicated data endpoint of this cloud: blobs only, never credentials.
    Data(Cloud),
}

/// Classifies a host under a built-in ACR suffix; `None` for any other host.
pub fn classify(host: &RegistryHost) -> Option<AcrEndpoint> {
    if host.is_ip() {
        return None;
    }
    ACR_SUFFIXES.iter().find_map(|(suffix, cloud)| {
        let prefix = host.name().strip_suffix(suffix)?;
        if prefix.is_empty() {
            return None;
        }
        Some(if prefix.ends_with(".data") {
            AcrEndpoint::Data(*cloud)
        } else {
            AcrEndpoint::LoginServer(*cloud)
        })
    })
}

/// Whether `host` is an ACR dedicated data endpoint (`*.<region>.data.azurecr.io` and the same
/// in every cloud): never a login server, whatever the config says.
pub fn is_data_endpoint(host: &RegistryHost) -> bool {
    matches!(classify(host), Some(AcrEndpoint::Data(_)))
}

/// The cloud of a built-in ACR login server (`<name>.azurecr.io`, regional and
/// domain-name-label forms included), or `None` for any other host, data endpoints included.
pub fn builtin_cloud(host: &RegistryHost) -> Option<Cloud> {
    match classify(host)? {
        AcrEndpoint::LoginServer(cloud) => Some(cloud),
        AcrEndpoint::Data(_) => None,
    }
}

/// Whether `host` matches a user pattern: `host`, `host:port`, or `*.suffix` (one or more labels).
pub fn pattern_matches(pattern: &str, host: &RegistryHost) -> bool {
    let pattern = pattern.trim().to_ascii_lowercase();
    if let Some(suffix) = pattern.strip_prefix("*.") {
        let (suffix_host, suffix_port) = match RegistryHost::parse(suffix) {
            Ok(p) => (p.host, p.port),
            Err(_) => return false,
        };
        return suffix_port == host.port
            && host
                .name()
                .strip_suffix(&suffix_host)
                .is_some_and(|p| p.len() > 1 && p.ends_with('.'));
    }
    RegistryHost::parse(&pattern).is_ok_and(|p| &p == host)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canon(s: &str) -> String {
        RegistryHost::parse(s)
            .map(|h| h.to_string())
            .unwrap_or_else(|e| format!("ERR {e}"))
    }

    #[test]
    fn every_client_form_reduces_to_the_same_host() {
        for form in [
            "myreg.azurecr.io",
            "myreg.azurecr.io\n",
            "  myreg.azurecr.io  ",
            "MyReg.AzureCR.io",
            "myreg.azurecr.io:443",
            "https://myreg.azurecr.io",
            "https://myreg.azurecr.io/",
            "https://myreg.azurecr.io/v2/",
            "HTTPS://MYREG.AZURECR.IO:443/v2/",
            "http://myreg.azurecr.io",
            "myreg.azurecr.io/v2/",
            "myreg.azurecr.io.",
        ] {
            assert_eq!(canon(form), "myreg.azurecr.io", "form {form:?}");
        }
        assert_eq!(canon("localhost:5000"), "localhost:5000");
        assert_eq!(canon("https://[::1]:5000/v2/"), "[::1]:5000");
    }

    #[test]
    fn malformed_urls_are_errors_not_panics() {
        for bad in [
            "",
            "   ",
            "https://",
            "ftp://myreg.azurecr.io",
            "myreg.azurecr.io:99999",
            "myreg.azurecr.io:0",
            "myreg.azurecr.io:abc",
            "user:pw@myreg.azurecr.io",
            "https://myreg.azurecr.io@evil.example",
            "my_reg.azurecr.io",
            "*.azurecr.io",
            "my%72eg.azurecr.io",
            "[::1",
            "{\"ServerURL\":\"x\"}",
            "[\n]",
            "[ ]:5000",
            "[zz]",
            "myreg..azurecr.io",
            "-bad.azurecr.io",
            "a\0b.azurecr.io",
        ] {
            assert!(RegistryHost::parse(bad).is_err(), "accepted {bad:?}");
        }
        assert_eq!(RegistryHost::parse(" \n"), Err(HostError::Empty));
    }

    #[test]
    fn builtin_recognition_table() {
        let cases = [
            ("myreg.azurecr.io", Some(Cloud::Public)),
            ("my-reg-abc123hash.azurecr.io", Some(Cloud::Public)),
            ("myreg.westeurope.geo.azurecr.io", Some(Cloud::Public)),
            ("myreg.westeurope.data.azurecr.io", None),
            ("myreg.azurecr.cn", Some(Cloud::China)),
            ("myreg.azurecr.us", Some(Cloud::Usgov)),
            ("azurecr.io", None),
            ("evilazurecr.io", None),
            ("myreg.azurecr.io.evil.example", None),
            ("myreg.azurecr.io.", Some(Cloud::Public)),
            ("docker.io", None),
            ("ghcr.io", None),
            ("index.docker.io", None),
            ("127.0.0.1", None),
            ("[::1]", None),
            ("myreg.azurecr.de", None),
            ("myreg.azurecr.sovcloud-azure.fr", Some(Cloud::Bleu)),
            ("myreg.azurecr.sovcloud-azure.de", Some(Cloud::Delos)),
            ("azurecr.sovcloud-azure.de", None),
            ("myreg.sovcloud-azure.de", None),
        ];
        for (host, want) in cases {
            let parsed = RegistryHost::parse(host).unwrap();
            assert_eq!(builtin_cloud(&parsed), want, "host {host}");
        }
    }

    /// Rows from Microsoft's endpoint reference (global, regional `.geo.`, dedicated data
    /// `.data.` in the public and China clouds) and Azure CLI's regional-endpoint tests
    /// (`test_regional_endpoint_utils.py`: the sovereign clouds' multi-label suffixes and a
    /// domain-name-label registry).
    #[test]
    fn endpoint_families_from_the_sources() {
        use AcrEndpoint::{Data, LoginServer};
        let cases = [
            // container-registry-endpoint-reference (public and docs.azure.cn pages)
            ("myregistry.azurecr.io", Some(LoginServer(Cloud::Public))),
            ("myregistry.eastus.geo.azurecr.io", Some(LoginServer(Cloud::Public))),
            ("myregistry.eastus.data.azurecr.io", Some(Data(Cloud::Public))),
            ("contoso.westus.data.azurecr.io", Some(Data(Cloud::Public))),
            ("myregistry.azurecr.cn", Some(LoginServer(Cloud::China))),
            ("myregistry.chinaeast2.geo.azurecr.cn", Some(LoginServer(Cloud::China))),
            ("myregistry.chinaeast2.data.azurecr.cn", Some(Data(Cloud::China))),
            ("myregistry.usgovvirginia.data.azurecr.us", Some(Data(Cloud::Usgov))),
            // azure-cli test_regional_endpoint_utils.py
            ("myregistry.westus.geo.azurecr.io", Some(LoginServer(Cloud::Public))),
            ("prod-registry.centralus.geo.azurecr.io", Some(LoginServer(Cloud::Public))),
            ("myregistry-d7ezgzevdwfvc8ht.eastus.geo.azurecr.io", Some(LoginServer(Cloud::Public))),
            ("registry123.azurecr.sovcloud-azure.de", Some(LoginServer(Cloud::Delos))),
            (
                "registry123.deloscloudgermanycentral.geo.azurecr.sovcloud-azure.de",
                Some(LoginServer(Cloud::Delos)),
            ),
            (
                "myregistry-d7ezgzevdwfvc8ht.deloscloudgermanycentral.geo.azurecr.sovcloud-azure.de",
                Some(LoginServer(Cloud::Delos)),
            ),
            ("myregistry.azurecr.sovcloud-azure.fr", Some(LoginServer(Cloud::Bleu))),
            (
                "myregistry.francecentral.geo.azurecr.sovcloud-azure.fr",
                Some(LoginServer(Cloud::Bleu)),
            ),
            (
                "myregistry.francecentral.data.azurecr.sovcloud-azure.fr",
                Some(Data(Cloud::Bleu)),
            ),
            ("external-registry.com", None),
            ("10.0.0.5:8080", None),
        ];
        for (host, want) in cases {
            let parsed = RegistryHost::parse(host).unwrap();
            assert_eq!(classify(&parsed), want, "host {host}");
            assert_eq!(
                is_data_endpoint(&parsed),
                matches!(want, Some(Data(_))),
                "host {host}"
            );
        }
    }

    #[test]
    fn authority_hosts_follow_the_cloud() {
        let cases = [
            (Cloud::Public, "https://login.microsoftonline.com"),
            (Cloud::China, "https://login.chinacloudapi.cn"),
            (Cloud::Usgov, "https://login.microsoftonline.us"),
            (Cloud::Bleu, "https://login.sovcloud-identity.fr"),
            (Cloud::Delos, "https://login.sovcloud-identity.de"),
        ];
        for (cloud, authority) in cases {
            assert_eq!(cloud.authority_host(), authority);
        }
    }

    #[test]
    fn user_patterns() {
        let h = |s| RegistryHost::parse(s).unwrap();
        assert!(pattern_matches(
            "registry.corp.example",
            &h("REGISTRY.corp.example")
        ));
        assert!(pattern_matches("*.corp.example", &h("a.b.corp.example")));
        assert!(!pattern_matches("*.corp.example", &h("corp.example")));
        assert!(!pattern_matches("*.corp.example", &h("evilcorp.example")));
        assert!(pattern_matches("localhost:5000", &h("localhost:5000")));
        assert!(!pattern_matches("localhost:5000", &h("localhost:5001")));
        assert!(!pattern_matches("localhost", &h("localhost:5000")));
    }
}
