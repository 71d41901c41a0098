//! Operator identity: HS256 JWTs (`sub` = operatorId as a decimal string, `name` claim).
//!
//! Only HS256 is accepted; the header's `alg` is checked before the signature, so a token
//! cannot downgrade itself to `none` or to another algorithm. The signature is compared in
//! constant time by `hmac`. `exp` is required.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Clock skew tolerated on `exp` and `nbf`, in seconds.
pub const LEEWAY_SECS: u64 = 5;

/// An authenticated operator, as stamped on every event it sends.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OperatorIdentity {
    /// The token's `sub`, as the number the protocol carries.
    pub operator_id: u64,
    /// The token's `name` claim.
    pub name: String,
}

/// The claims the relay reads and the simulator writes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// operatorId as a decimal string.
    pub sub: String,
    /// Operator display name.
    pub name: String,
    /// Expiry, seconds since the Unix epoch.
    pub exp: u64,
    /// Issued at, seconds since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<u64>,
    /// Not before, seconds since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
}

impl Claims {
    /// Claims for `identity`, valid for `ttl_secs` from now.
    pub fn new(identity: &OperatorIdentity, ttl_secs: u64) -> Self {
        let now = unix_now();
        Self {
            sub: identity.operator_id.to_string(),
            name: identity.name.clone(),
            exp: now.saturating_add(ttl_secs),
            iat: Some(now),
            nbf: None,
        }
    }
}

/// Why a token was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    /// No token in the handshake nor in `join`.
    #[error("no operator token")]
    Missing,
    /// Not three base64url parts of JSON.
    #[error("malformed token: {0}")]
    Malformed(&'static str),
    /// Header `alg` is not HS256.
    #[error("unsupported algorithm {0:?}, only HS256 is accepted")]
    UnsupportedAlgorithm(String),
    /// HMAC does not match.
    #[error("bad signature")]
    BadSignature,
    /// `exp` is in the past.
    #[error("token expired")]
    Expired,
    /// `nbf` is in the future.
    #[error("token not valid yet")]
    NotYetValid,
    /// `sub` is not a decimal operator id.
    #[error("subject {0:?} is not a numeric operator id")]
    BadSubject(String),
}

#[derive(Deserialize)]
struct Header {
    alg: String,
}

/// Signs `claims` with `secret` as an HS256 JWT.
pub fn sign_hs256(secret: &[u8], claims: &Claims) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    // Serializing a struct of strings and integers cannot fail.
    let payload = serde_json::to_vec(claims).unwrap_or_default();
    let signing_input = format!("{header}.{}", URL_SAFE_NO_PAD.encode(payload));
    let signature = URL_SAFE_NO_PAD.encode(
        mac(secret, signing_input.as_bytes())
            .finalize()
            .into_bytes(),
    );
    format!("{signing_input}.{signature}")
}

/// Verifies an HS256 JWT and returns the operator it names.
///
/// # Errors
/// Any [`AuthError`] but `Missing`.
pub fn verify_hs256(secret: &[u8], token: &str) -> Result<OperatorIdentity, AuthError> {
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(AuthError::Malformed("expected three dot-separated parts"));
    };
    let header: Header = decode_json(header)?;
    if header.alg != "HS256" {
        return Err(AuthError::UnsupportedAlgorithm(header.alg));
    }
    let signature = URL_SAFE_NO_PAD
        .decode(signature)
        .map_err(|_| AuthError::Malformed("signature is not base64url"))?;
    let signed_len = header_len(token);
    mac(secret, &token.as_bytes()[..signed_len])
        .verify_slice(&signature)
        .map_err(|_| AuthError::BadSignature)?;
    let claims: Claims = decode_json(payload)?;
    let now = unix_now();
    if now > claims.exp.saturating_add(LEEWAY_SECS) {
        return Err(AuthError::Expired);
    }
    if claims
        .nbf
        .is_some_and(|nbf| nbf > now.saturating_add(LEEWAY_SECS))
    {
        return Err(AuthError::NotYetValid);
    }
    let operator_id = claims
        .sub
        .parse::<u64>()
        .map_err(|_| AuthError::BadSubject(claims.sub.clone()))?;
    Ok(OperatorIdentity {
        operator_id,
        name: claims.name,
    })
}

/// Reads a token's identity without checking signature or expiry.
///
/// Only for `--insecure-dev`, where the relay runs without a secret.
///
/// # Errors
/// `Malformed` or `BadSubject`.
pub fn claims_unverified(token: &str) -> Result<OperatorIdentity, AuthError> {
    let payload = token
        .split('.')
        .nth(1)
        .ok_or(AuthError::Malformed("expected three dot-separated parts"))?;
    let claims: Claims = decode_json(payload)?;
    let operator_id = claims
        .sub
        .parse::<u64>()
        .map_err(|_| AuthError::BadSubject(claims.sub.clone()))?;
    Ok(OperatorIdentity {
        operator_id,
        name: claims.name,
    })
}

/// Length of `header.payload`, the signed part of a token already split in three.
fn header_len(token: &str) -> usize {
    token.rfind('.').unwrap_or(0)
}

fn mac(secret: &[u8], input: &[u8]) -> HmacSha256 {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = <HmacSha256 as Mac>::new_from_slice(secret).unwrap_or_else(|_| unreachable!());
    mac.update(input);
    mac
}

fn decode_json<T: for<'de> Deserialize<'de>>(part: &str) -> Result<T, AuthError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| AuthError::Malformed("part is not base64url"))?;
    serde_json::from_slice(&bytes)
        .map_err(|_| AuthError::Malformed("part is not the expected JSON"))
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"test-secret";

    fn ann() -> OperatorIdentity {
        OperatorIdentity {
            operator_id: 42,
            name: "Ann".into(),
        }
    }

    #[test]
    fn round_trip() {
        let token = sign_hs256(SECRET, &Claims::new(&ann(), 60));
        assert_eq!(verify_hs256(SECRET, &token), Ok(ann()));
    }

    #[test]
    fn wrong_secret_is_refused() {
        let token = sign_hs256(b"other", &Claims::new(&ann(), 60));
        assert_eq!(verify_hs256(SECRET, &token), Err(AuthError::BadSignature));
    }

    #[test]
    fn tampered_payload_is_refused() {
        let token = sign_hs256(SECRET, &Claims::new(&ann(), 60));
        let mut forged = Claims::new(&ann(), 60);
        forged.sub = "1".into();
        let forged_payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&forged).expect("json"));
        let parts: Vec<&str> = token.split('.').collect();
        let tampered = format!("{}.{}.{}", parts[0], forged_payload, parts[2]);
        assert_eq!(
            verify_hs256(SECRET, &tampered),
            Err(AuthError::BadSignature)
        );
    }

    #[test]
    fn alg_none_is_refused() {
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none"}"#);
        let payload =
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&Claims::new(&ann(), 60)).expect("json"));
        let token = format!("{header}.{payload}.");
        assert_eq!(
            verify_hs256(SECRET, &token),
            Err(AuthError::UnsupportedAlgorithm("none".into()))
        );
    }

    #[test]
    fn expired_is_refused() {
        let mut claims = Claims::new(&ann(), 0);
        claims.exp = unix_now() - 3600;
        let token = sign_hs256(SECRET, &claims);
        assert_eq!(verify_hs256(SECRET, &token), Err(AuthError::Expired));
    }

    #[test]
    fn not_before_in_future_is_refused() {
        let mut claims = Claims::new(&ann(), 7200);
        claims.nbf = Some(unix_now() + 3600);
        let token = sign_hs256(SECRET, &claims);
        assert_eq!(verify_hs256(SECRET, &token), Err(AuthError::NotYetValid));
    }

    #[test]
    fn non_numeric_subject_is_refused() {
        let mut claims = Claims::new(&ann(), 60);
        claims.sub = "ann".into();
        let token = sign_hs256(SECRET, &claims);
        assert_eq!(
            verify_hs256(SECRET, &token),
            Err(AuthError::BadSubject("ann".into()))
        );
    }

    #[test]
    fn garbage_is_malformed() {
        for token in ["", "a.b", "a.b.c.d", "!!!.???.***"] {
            assert!(
                matches!(verify_hs256(SECRET, token), Err(AuthError::Malformed(_))),
                "{token:?}"
            );
        }
    }
}
