//! Reading (never verifying) JWT claims: `exp`/`iat` of ACR refresh tokens, `tid` of Entra tokens.
//! The registry and Entra verify signatures; we only need lifetimes and the tenant.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::Deserialize;

/// The claims we read; everything else is ignored.
#[derive(Debug, Default, Deserialize, PartialEq, Eq)]
pub struct Claims {
    /// Expiry, unix seconds.
    pub exp: Option<u64>,
    /// Issued-at, unix seconds.
    pub iat: Option<u64>,
    /// Entra tenant id.
    pub tid: Option<String>,
    /// Entra object id of the principal.
    pub oid: Option<String>,
    /// Application id (v1 tokens).
    pub appid: Option<String>,
    /// Application id (v2 tokens).
    pub azp: Option<String>,
}

/// Decodes the payload of a compact JWS. Returns `None` for anything that is not one
/// (wrong segment count, bad base64url, non-JSON, non-numeric times) instead of failing.
pub fn claims(token: &str) -> Option<Claims> {
    let mut parts = token.split('.');
    let (_header, payload, _sig) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || payload.len() > 64 * 1024 {
        return None;
    }
    // Tolerate padding some encoders add, and the standard alphabet some SDKs wrongly use.
    let cleaned: String = payload
        .trim_end_matches('=')
        .chars()
        .map(|c| match c {
            '+' => '-',
            '/' => '_',
            c => c,
        })
        .collect();
    let bytes = URL_SAFE_NO_PAD.decode(cleaned).ok()?;
    let raw: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    let num = |k: &str| {
        raw.get(k).and_then(|v| {
            v.as_u64()
                .or_else(|| v.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64))
        })
    };
    let text = |k: &str| raw.get(k).and_then(|v| v.as_str()).map(str::to_owned);
    Some(Claims {
        exp: num("exp"),
        iat: num("iat"),
        tid: text("tid"),
        oid: text("oid"),
        appid: text("appid"),
        azp: text("azp"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt(payload: &str) -> String {
        format!(
            "eyJhbGciOiJIUzI1NiJ9.{}.sig",
            URL_SAFE_NO_PAD.encode(payload)
        )
    }

    #[test]
    fn claim_table() {
        assert_eq!(
            claims(&jwt(r#"{"exp":200,"iat":100}"#)).unwrap().exp,
            Some(200)
        );
        assert_eq!(claims(&jwt(r#"{"exp":200.0}"#)).unwrap().exp, Some(200));
        assert_eq!(
            claims(&jwt(r#"{"tid":"t1","oid":"o"}"#))
                .unwrap()
                .tid
                .as_deref(),
            Some("t1")
        );
        assert_eq!(claims(&jwt(r#"{"iat":1}"#)).unwrap().exp, None);
        assert_eq!(claims(&jwt(r#"{"exp":"soon"}"#)).unwrap().exp, None);
        assert_eq!(claims(&jwt(r#"{"exp":-5}"#)).unwrap().exp, None);
        // Characters that differ between base64 and base64url: payload bytes 0xfb 0xff.
        let odd = format!(
            "h.{}.s",
            URL_SAFE_NO_PAD.encode(b"{\"exp\":7,\"x\":\"\xfb\xff\"}")
        );
        assert_eq!(claims(&odd), None, "invalid UTF-8 JSON is rejected");
        let padded = format!("h.{}==.s", URL_SAFE_NO_PAD.encode(r#"{"exp":9}"#));
        assert_eq!(claims(&padded).unwrap().exp, Some(9));
        for bad in [
            "",
            "a.b",
            "a.b.c.d",
            "a.!!!.c",
            "a..c",
            &format!("a.{}.c", URL_SAFE_NO_PAD.encode("[1]")),
        ] {
            assert!(claims(bad).is_none_or(|c| c == Claims::default()), "{bad}");
        }
    }
}
