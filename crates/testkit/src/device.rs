//! People in the fake Entra: the device authorization grant (RFC 8628) at
//! `/{tenant}/oauth2/v2.0/devicecode` with token polling, and refresh-token
//! redemption with strict rotation (a redeemed refresh token is spent) and
//! revocation (`invalid_grant`, AADSTS50173).
//!
//! What a poll answers is scripted with [`DeviceStep`]s (one per poll; an
//! empty script answers `authorization_pending`), so a test decides when the
//! person approves, declines or lets the code expire, and sees every poll.

use crate::jwt::{encode, format_utc, now_secs, random_secret, stable_uuid, uuid};
use crate::route::{Reply, Req};
use crate::state::{Inner, Shared};
use serde_json::json;
use std::collections::{HashMap, VecDeque};
use std::time::Instant;

/// What the fake answers to one device-code poll.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeviceStep {
    /// `authorization_pending`.
    Pending,
    /// `slow_down`.
    SlowDown,
    /// The person with this account name approved.
    Approve(String),
    /// `authorization_declined` (Entra's name for RFC 8628's `access_denied`).
    Decline,
    /// `expired_token`.
    Expire,
}

/// One grant a person's client made at the token endpoint.
#[derive(Clone, Debug)]
pub struct UserGrant {
    /// When it arrived.
    pub at: Instant,
    /// `device_code` or `refresh_token`.
    pub grant: String,
    /// Tenant path segment.
    pub tenant: String,
    /// The refresh token presented (refresh grants).
    pub refresh_token: Option<String>,
    /// HTTP status answered.
    pub status: u16,
}

#[derive(Clone, Debug)]
struct Person {
    tenant: String,
    account: String,
}

#[derive(Clone, Debug)]
struct Code {
    tenant: String,
    client_id: String,
    scope: String,
    expires: u64,
}

#[derive(Clone, Debug)]
struct Refresh {
    tenant: String,
    account: String,
    client_id: String,
    revoked: bool,
}

/// The fake's people, device codes and refresh tokens.
#[derive(Debug, Default)]
pub(crate) struct People {
    people: Vec<Person>,
    steps: VecDeque<DeviceStep>,
    interval: Option<u64>,
    codes: HashMap<String, Code>,
    refresh: HashMap<String, Refresh>,
    pub grants: Vec<UserGrant>,
    pub devicecode_requests: usize,
    pub last_user_code: Option<String>,
}

fn error(status: u16, err: &str, code: u32, msg: &str) -> Reply {
    Reply::json(
        status,
        &json!({
            "error": err,
            "error_description": format!(
                "AADSTS{code}: {msg} Trace ID: {} Correlation ID: {} Timestamp: {}",
                uuid(), uuid(), format_utc(now_secs())
            ),
            "error_codes": [code],
        }),
    )
}

/// The tenant segment if `path` is `/{tenant}/oauth2/v2.0/devicecode`.
pub(crate) fn devicecode_tenant(path: &str) -> Option<&str> {
    let rest = path.strip_prefix('/')?;
    let (tenant, tail) = rest.split_once('/')?;
    (!tenant.is_empty() && tail == "oauth2/v2.0/devicecode").then_some(tenant)
}

/// Handles `POST /{tenant}/oauth2/v2.0/devicecode`.
pub(crate) fn devicecode(shared: &Shared, req: &Req) -> Reply {
    let tenant = devicecode_tenant(&req.path).unwrap_or_default().to_string();
    let mut g = shared.lock();
    g.people.devicecode_requests += 1;
    let (Some(client_id), Some(scope)) = (req.f("client_id"), req.f("scope")) else {
        return error(
            400,
            "invalid_request",
            900144,
            "The request body must contain the following parameter: 'client_id'.",
        );
    };
    let device_code = random_secret(32);
    let user_code = format!("F{}", &random_secret(8).to_ascii_uppercase()[..7]);
    let interval = g.people.interval.unwrap_or(5);
    g.people.last_user_code = Some(user_code.clone());
    let expires_in = 900;
    g.people.codes.insert(
        device_code.clone(),
        Code {
            tenant,
            client_id: client_id.to_string(),
            scope: scope.to_string(),
            expires: now_secs() + expires_in,
        },
    );
    Reply::json(
        200,
        &json!({
            "device_code": device_code,
            "user_code": user_code,
            "verification_uri": "https://microsoft.com/devicelogin",
            "expires_in": expires_in,
            "interval": interval,
            "message": format!("To sign in, use a web browser to open the page https://microsoft.com/devicelogin and enter the code {user_code} to authenticate."),
        }),
    )
}

/// Answers the token endpoint's person grants (`device_code`, `refresh_token`); `None` for the
/// others.
pub(crate) fn token(g: &mut Inner, tenant: &str, req: &Req) -> Option<Reply> {
    let grant = req.f("grant_type")?;
    let reply = match grant {
        "urn:ietf:params:oauth:grant-type:device_code" => poll(g, req),
        "refresh_token" => redeem(g, tenant, req),
        _ => return None,
    };
    g.people.grants.push(UserGrant {
        at: Instant::now(),
        grant: if grant == "refresh_token" {
            "refresh_token"
        } else {
            "device_code"
        }
        .into(),
        tenant: tenant.to_string(),
        refresh_token: req.f("refresh_token").map(str::to_owned),
        status: reply.status,
    });
    Some(reply)
}

fn poll(g: &mut Inner, req: &Req) -> Reply {
    let Some(code) = req
        .f("device_code")
        .and_then(|c| g.people.codes.get(c))
        .cloned()
    else {
        return error(
            400,
            "invalid_grant",
            70000,
            "The provided value for the 'device_code' is not valid.",
        );
    };
    if req.f("client_id") != Some(code.client_id.as_str()) {
        return error(
            400,
            "invalid_grant",
            70000,
            "The device code was issued to another client.",
        );
    }
    if now_secs() >= code.expires {
        return error(400, "expired_token", 70020, "The provided value for the input parameter 'device_code' is not valid. This device code has expired.");
    }
    match g.people.steps.pop_front().unwrap_or(DeviceStep::Pending) {
        DeviceStep::Pending => error(
            400,
            "authorization_pending",
            70016,
            "OAuth 2.0 device flow error. Authorization is pending. Continue polling.",
        ),
        DeviceStep::SlowDown => error(400, "slow_down", 70016, "Slow down: poll less often."),
        DeviceStep::Decline => error(
            400,
            "authorization_declined",
            70017,
            "The user declined the request.",
        ),
        DeviceStep::Expire => error(400, "expired_token", 70020, "This device code has expired."),
        DeviceStep::Approve(account) => {
            let Some(person) = g
                .people
                .people
                .iter()
                .find(|p| {
                    p.account.eq_ignore_ascii_case(&account)
                        && (code.tenant == "organizations"
                            || code.tenant == "common"
                            || p.tenant.eq_ignore_ascii_case(&code.tenant))
                })
                .cloned()
            else {
                return error(
                    400,
                    "invalid_grant",
                    50034,
                    "The user account does not exist in this directory.",
                );
            };
            if let Some(device_code) = req.f("device_code") {
                g.people.codes.remove(device_code);
            }
            let resource = code
                .scope
                .split(' ')
                .find(|s| s.ends_with("/.default"))
                .unwrap_or("https://containerregistry.azure.net/.default")
                .to_string();
            tokens(g, &person, &code.client_id, &resource, true)
        }
    }
}

fn redeem(g: &mut Inner, tenant: &str, req: &Req) -> Reply {
    let presented = req.f("refresh_token").unwrap_or_default().to_string();
    let Some(refresh) = g.people.refresh.get(&presented).cloned() else {
        return error(
            400,
            "invalid_grant",
            9002313,
            "Invalid request. The refresh token is malformed, spent or unknown.",
        );
    };
    if refresh.revoked {
        return error(400, "invalid_grant", 50173, "The provided grant has expired due to it being revoked, a fresh auth token is needed. The user might have changed or reset their password.");
    }
    if !refresh.tenant.eq_ignore_ascii_case(tenant) {
        return error(
            400,
            "invalid_grant",
            9002313,
            "The refresh token was issued in another tenant.",
        );
    }
    if req.f("client_id") != Some(refresh.client_id.as_str()) {
        return error(
            400,
            "invalid_grant",
            70000,
            "The refresh token was issued to a different client.",
        );
    }
    let scope = req.f("scope").unwrap_or_default();
    let Some(resource) = scope.split(' ').find(|s| s.ends_with("/.default")) else {
        return error(
            400,
            "invalid_scope",
            70011,
            "The provided value for the input parameter 'scope' is not valid.",
        );
    };
    let resource = resource.to_string();
    // Strict rotation: the presented token is spent.
    g.people.refresh.remove(&presented);
    let person = Person {
        tenant: refresh.tenant,
        account: refresh.account,
    };
    tokens(g, &person, &refresh.client_id, &resource, false)
}

fn tokens(
    g: &mut Inner,
    person: &Person,
    client_id: &str,
    resource: &str,
    id_token: bool,
) -> Reply {
    let oid = stable_uuid(&format!("user/{}/{}", person.tenant, person.account));
    let lifetime = g.entra_lifetime;
    let (access, _) = crate::entra::issue(g, &person.tenant, client_id, &oid, resource, lifetime);
    let refresh = format!("RT.{}", random_secret(40));
    g.people.refresh.insert(
        refresh.clone(),
        Refresh {
            tenant: person.tenant.clone(),
            account: person.account.clone(),
            client_id: client_id.to_string(),
            revoked: false,
        },
    );
    let mut body = json!({
        "token_type": "Bearer",
        "scope": resource,
        "expires_in": lifetime,
        "ext_expires_in": lifetime,
        "access_token": access,
        "refresh_token": refresh,
    });
    if id_token {
        let now = now_secs();
        body["id_token"] = json!(encode(&json!({
            "aud": client_id, "iss": format!("https://login.microsoftonline.com/{}/v2.0", person.tenant),
            "iat": now, "nbf": now, "exp": now + 3600,
            "tid": person.tenant, "oid": oid, "preferred_username": person.account, "ver": "2.0",
        })));
    }
    Reply::json(200, &body)
}

impl People {
    pub fn add(&mut self, tenant: &str, account: &str) {
        self.people.push(Person {
            tenant: tenant.to_string(),
            account: account.to_string(),
        });
    }
    pub fn script(&mut self, steps: &[DeviceStep], interval: u64) {
        self.steps = steps.iter().cloned().collect();
        self.interval = Some(interval);
    }
    pub fn revoke(&mut self, account: &str) -> usize {
        let mut n = 0;
        for r in self.refresh.values_mut() {
            if r.account.eq_ignore_ascii_case(account) {
                r.revoked = true;
                n += 1;
            }
        }
        n
    }
    pub fn live_refresh_tokens(&self, account: &str) -> Vec<String> {
        self.refresh
            .iter()
            .filter(|(_, r)| r.account.eq_ignore_ascii_case(account) && !r.revoked)
            .map(|(t, _)| t.clone())
            .collect()
    }
    pub fn is_tenant(&self, tenant: &str) -> bool {
        tenant == "organizations"
            || tenant == "common"
            || self
                .people
                .iter()
                .any(|p| p.tenant.eq_ignore_ascii_case(tenant))
    }
}
