//! Operator identity: JWTs (`sub` = operatorId as a decimal string, `name` claim), verified
//! by `jsonwebtoken`: HS256 with the relay's secret, or RS256/ES256 with the team's public
//! keys (a PEM file, or a JWKS file as identity providers publish them).
//!
//! Only the algorithms of the configured keys are accepted: the header's `alg` is checked
//! against them before the signature, so a token cannot downgrade itself to `none`, nor
//! sign with the public key as an HMAC secret. `exp` is required.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
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
    /// Header `alg` is not one the relay's keys use.
    #[error("unsupported algorithm {0:?}: the relay accepts {1}")]
    UnsupportedAlgorithm(String, String),
    /// The signature does not match any key.
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
    /// A key file could not be read or used.
    #[error("{path}: {why}")]
    KeyFile {
        /// The file.
        path: String,
        /// What is wrong with it.
        why: String,
    },
}

fn key_file_error(path: &Path, why: impl std::fmt::Display) -> AuthError {
    AuthError::KeyFile {
        path: path.display().to_string(),
        why: why.to_string(),
    }
}

/// One key a token may be signed with.
#[derive(Clone)]
struct Key {
    /// The JWKS `kid`, when it has one: a token naming a `kid` is checked with that key.
    kid: Option<String>,
    alg: Algorithm,
    key: DecodingKey,
}

/// What the relay checks operator tokens with.
#[derive(Clone)]
pub struct Verifier {
    keys: Vec<Key>,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("algorithms", &self.algorithms())
            .finish()
    }
}

impl Verifier {
    /// HS256 with `secret`.
    pub fn hs256(secret: &[u8]) -> Self {
        Self {
            keys: vec![Key {
                kid: None,
                alg: Algorithm::HS256,
                key: DecodingKey::from_secret(secret),
            }],
        }
    }

    /// RS256 or ES256 with the public key in a PEM file (`BEGIN PUBLIC KEY`, or an RSA
    /// `BEGIN RSA PUBLIC KEY`), the algorithm from the key.
    ///
    /// # Errors
    /// [`AuthError::KeyFile`] naming the file.
    pub fn from_public_key_file(path: &Path) -> Result<Self, AuthError> {
        let pem = std::fs::read(path).map_err(|e| key_file_error(path, e))?;
        let (alg, key) = match DecodingKey::from_rsa_pem(&pem) {
            Ok(k) => (Algorithm::RS256, k),
            Err(_) => DecodingKey::from_ec_pem(&pem)
                .map(|k| (Algorithm::ES256, k))
                .map_err(|_| key_file_error(path, "is not a PEM RSA or P-256 public key"))?,
        };
        Ok(Self {
            keys: vec![Key {
                kid: None,
                alg,
                key,
            }],
        })
    }

    /// The RS256 and ES256 keys of a JWKS file (`{"keys": [...]}`); keys of other
    /// algorithms are skipped.
    ///
    /// # Errors
    /// [`AuthError::KeyFile`] naming the file, also when it holds no usable key.
    pub fn from_jwks_file(path: &Path) -> Result<Self, AuthError> {
        let text = std::fs::read_to_string(path).map_err(|e| key_file_error(path, e))?;
        let set: JwkSet = serde_json::from_str(&text)
            .map_err(|e| key_file_error(path, format!("is not a JWKS document: {e}")))?;
        let mut keys = Vec::new();
        for jwk in &set.keys {
            let alg = match &jwk.algorithm {
                jsonwebtoken::jwk::AlgorithmParameters::RSA(_) => Algorithm::RS256,
                jsonwebtoken::jwk::AlgorithmParameters::EllipticCurve(p)
                    if p.curve == jsonwebtoken::jwk::EllipticCurve::P256 =>
                {
                    Algorithm::ES256
                }
                _ => continue,
            };
            let key = DecodingKey::from_jwk(jwk)
                .map_err(|e| key_file_error(path, format!("a key cannot be used: {e}")))?;
            keys.push(Key {
                kid: jwk.common.key_id.clone(),
                alg,
                key,
            });
        }
        if keys.is_empty() {
            return Err(key_file_error(path, "holds no RSA or P-256 key"));
        }
        Ok(Self { keys })
    }

    /// The algorithms accepted, as a sentence.
    pub fn algorithms(&self) -> String {
        let mut names: Vec<String> = self.keys.iter().map(|k| format!("{:?}", k.alg)).collect();
        names.dedup();
        names.join(", ")
    }

    /// Verifies `token` and returns the operator it names.
    ///
    /// # Errors
    /// Any [`AuthError`] but `Missing` and `KeyFile`.
    pub fn verify(&self, token: &str) -> Result<OperatorIdentity, AuthError> {
        if token.split('.').count() != 3 {
            return Err(AuthError::Malformed("expected three dot-separated parts"));
        }
        let header = jsonwebtoken::decode_header(token).map_err(|_| {
            // an `alg` jsonwebtoken does not know (`none`, say) is refused by name
            match unknown_alg(token) {
                Some(alg) => AuthError::UnsupportedAlgorithm(alg, self.algorithms()),
                None => AuthError::Malformed("header is not the expected JSON"),
            }
        })?;
        let candidates: Vec<&Key> = self
            .keys
            .iter()
            .filter(|k| k.alg == header.alg)
            .filter(|k| match (&header.kid, &k.kid) {
                (Some(want), Some(have)) => want == have,
                _ => true,
            })
            .collect();
        if candidates.is_empty() {
            return Err(AuthError::UnsupportedAlgorithm(
                format!("{:?}", header.alg),
                self.algorithms(),
            ));
        }
        let mut last = AuthError::BadSignature;
        for k in candidates {
            let mut v = Validation::new(k.alg);
            v.leeway = LEEWAY_SECS;
            v.validate_nbf = true;
            match jsonwebtoken::decode::<Claims>(token, &k.key, &v) {
                Ok(data) => return identity(data.claims),
                Err(e) => {
                    last = match e.kind() {
                        ErrorKind::InvalidSignature => AuthError::BadSignature,
                        ErrorKind::ExpiredSignature => return Err(AuthError::Expired),
                        ErrorKind::ImmatureSignature => return Err(AuthError::NotYetValid),
                        ErrorKind::MissingRequiredClaim(_) | ErrorKind::Json(_) => {
                            return Err(AuthError::Malformed("part is not the expected JSON"));
                        }
                        _ => AuthError::Malformed("could not be decoded"),
                    }
                }
            }
        }
        Err(last)
    }
}

/// The `alg` of a header jsonwebtoken refused, if it names one.
fn unknown_alg(token: &str) -> Option<String> {
    #[derive(Deserialize)]
    struct Alg {
        alg: String,
    }
    let part = token.split('.').next()?;
    let bytes = URL_SAFE_NO_PAD.decode(part).ok()?;
    serde_json::from_slice::<Alg>(&bytes).ok().map(|h| h.alg)
}

fn identity(claims: Claims) -> Result<OperatorIdentity, AuthError> {
    let operator_id = claims
        .sub
        .parse::<u64>()
        .map_err(|_| AuthError::BadSubject(claims.sub.clone()))?;
    Ok(OperatorIdentity {
        operator_id,
        name: claims.name,
    })
}

/// What the simulator (or a test) signs operator tokens with.
#[derive(Clone)]
pub struct Signer {
    alg: Algorithm,
    key: EncodingKey,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Signer({:?})", self.alg)
    }
}

impl Signer {
    /// HS256 with `secret`.
    pub fn hs256(secret: &[u8]) -> Self {
        Self {
            alg: Algorithm::HS256,
            key: EncodingKey::from_secret(secret),
        }
    }

    /// RS256 or ES256 with the private key in a PEM file (PKCS#8 `BEGIN PRIVATE KEY`, or
    /// `BEGIN RSA PRIVATE KEY`), the algorithm from the key.
    ///
    /// # Errors
    /// [`AuthError::KeyFile`] naming the file.
    pub fn from_private_key_file(path: &Path) -> Result<Self, AuthError> {
        let pem = std::fs::read(path).map_err(|e| key_file_error(path, e))?;
        if let Ok(key) = EncodingKey::from_rsa_pem(&pem) {
            return Ok(Self {
                alg: Algorithm::RS256,
                key,
            });
        }
        EncodingKey::from_ec_pem(&pem)
            .map(|key| Self {
                alg: Algorithm::ES256,
                key,
            })
            .map_err(|_| {
                key_file_error(
                    path,
                    "is not a PEM RSA or P-256 private key (an EC key must be PKCS#8: \
                     openssl pkcs8 -topk8 -nocrypt -in KEY)",
                )
            })
    }

    /// The algorithm it signs with.
    pub fn algorithm(&self) -> String {
        format!("{:?}", self.alg)
    }

    /// `claims` as a signed JWT.
    pub fn sign(&self, claims: &Claims) -> String {
        // encoding a struct of strings and integers with a key that loaded cannot fail
        jsonwebtoken::encode(&Header::new(self.alg), claims, &self.key).unwrap_or_default()
    }
}

/// Signs `claims` with `secret` as an HS256 JWT.
pub fn sign_hs256(secret: &[u8], claims: &Claims) -> String {
    Signer::hs256(secret).sign(claims)
}

/// Verifies an HS256 JWT and returns the operator it names.
///
/// # Errors
/// Any [`AuthError`] but `Missing`.
pub fn verify_hs256(secret: &[u8], token: &str) -> Result<OperatorIdentity, AuthError> {
    Verifier::hs256(secret).verify(token)
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
            Err(AuthError::UnsupportedAlgorithm(
                "none".into(),
                "HS256".into()
            ))
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

    #[test]
    fn es256_keys_verify_and_refuse_an_hmac_made_with_the_public_key() {
        let dir = std::env::temp_dir().join(format!("relay-auth-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let pair = rcgen::KeyPair::generate().expect("a P-256 key");
        let (private, public) = (dir.join("es256.pem"), dir.join("es256.pub.pem"));
        std::fs::write(&private, pair.serialize_pem()).expect("write");
        std::fs::write(&public, pair.public_key_pem()).expect("write");
        let signer = Signer::from_private_key_file(&private).expect("signer");
        assert_eq!(signer.algorithm(), "ES256");
        let verifier = Verifier::from_public_key_file(&public).expect("verifier");
        let token = signer.sign(&Claims::new(&ann(), 60));
        assert_eq!(verifier.verify(&token), Ok(ann()));
        // the public key used as an HMAC secret: refused by its algorithm
        let forged = sign_hs256(
            &std::fs::read(&public).expect("read"),
            &Claims::new(&ann(), 60),
        );
        assert!(matches!(
            verifier.verify(&forged),
            Err(AuthError::UnsupportedAlgorithm(alg, _)) if alg == "HS256"
        ));
        // another key's signature
        let other = rcgen::KeyPair::generate().expect("key");
        let other_file = dir.join("other.pem");
        std::fs::write(&other_file, other.serialize_pem()).expect("write");
        let stranger = Signer::from_private_key_file(&other_file).expect("signer");
        assert_eq!(
            verifier.verify(&stranger.sign(&Claims::new(&ann(), 60))),
            Err(AuthError::BadSignature)
        );
        let e = Verifier::from_public_key_file(&dir.join("missing.pem")).expect_err("missing");
        assert!(e.to_string().contains("missing.pem"), "{e}");
    }
}
