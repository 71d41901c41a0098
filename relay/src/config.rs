//! Relay configuration: flags with environment fallbacks, checked once at start-up.

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;

use clap::Parser;

use crate::clock::Clock;

/// Default `SOCKET_PORT`.
pub const DEFAULT_PORT: u16 = 3001;
/// Default `SOCKET_PATH`.
pub const DEFAULT_PATH: &str = "/chat";
/// Default `RATE_LIMIT_PER_MINUTE`.
pub const DEFAULT_RATE_LIMIT: u32 = 100;
/// Default `TYPING_RATE_LIMIT_PER_MINUTE`.
pub const DEFAULT_TYPING_RATE_LIMIT: u32 = 600;
/// Default `MAX_PAYLOAD_BYTES`.
pub const DEFAULT_MAX_PAYLOAD: usize = 1_000_000;
/// Default `MAX_IMAGE_BYTES`.
pub const DEFAULT_MAX_IMAGE: usize = 1_000_000;
/// Default `SOCKET_BUFFER_PACKETS`.
pub const DEFAULT_BUFFER_PACKETS: usize = 4096;
/// Shortest accepted `RELAY_JWT_SECRET`, in bytes.
pub const MIN_SECRET_BYTES: usize = 16;

/// Everything the relay can be told. Flag > environment > default.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "relay",
    version,
    about = "Reference Socket.IO relay for multi-operator support chat"
)]
pub struct Config {
    /// Address to listen on.
    #[arg(long, env = "SOCKET_HOST", default_value_t = IpAddr::V4(Ipv4Addr::UNSPECIFIED))]
    pub host: IpAddr,
    /// TCP port to listen on (0: any free port).
    #[arg(long, env = "SOCKET_PORT", default_value_t = DEFAULT_PORT)]
    pub port: u16,
    /// HTTP path of the Socket.IO endpoint.
    #[arg(long, env = "SOCKET_PATH", default_value = DEFAULT_PATH, value_parser = parse_path)]
    pub path: String,
    /// Allowed browser origins, comma-separated (`*`: any). Checked by CORS and on WebSocket upgrades.
    #[arg(long, env = "CORS_ORIGIN", value_delimiter = ',', value_parser = parse_origin)]
    pub cors_origin: Vec<String>,
    /// HS256 secret that signs operator JWTs (at least 16 bytes).
    #[arg(long, env = "RELAY_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,
    /// Verify operator tokens with this public key instead (PEM; RSA → RS256, P-256 → ES256).
    #[arg(long, env = "RELAY_JWT_PUBLIC_KEY", conflicts_with_all = ["jwt_secret", "jwks_file"])]
    pub jwt_public_key: Option<PathBuf>,
    /// Verify operator tokens with the RS256/ES256 keys of this JWKS file (`kid` honoured).
    #[arg(long, env = "RELAY_JWKS_FILE", conflicts_with_all = ["jwt_secret", "jwt_public_key"])]
    pub jwks_file: Option<PathBuf>,
    /// Development only: without a secret, trust the operatorId/name that `join` claims.
    #[arg(long, env = "RELAY_INSECURE_DEV")]
    pub insecure_dev: bool,
    /// Messages (operatorMessage + clientMessage) per socket per rolling minute.
    #[arg(long, env = "RATE_LIMIT_PER_MINUTE", default_value_t = DEFAULT_RATE_LIMIT,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub rate_limit_per_minute: u32,
    /// Typing events per socket per rolling minute (over it they are dropped silently).
    #[arg(long, env = "TYPING_RATE_LIMIT_PER_MINUTE", default_value_t = DEFAULT_TYPING_RATE_LIMIT,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub typing_rate_limit_per_minute: u32,
    /// Largest event accepted, in bytes, on every transport (WebSocket frames included).
    #[arg(long, env = "MAX_PAYLOAD_BYTES", default_value_t = DEFAULT_MAX_PAYLOAD,
          value_parser = parse_size)]
    pub max_payload_bytes: usize,
    /// Largest decoded image accepted, in bytes.
    #[arg(long, env = "MAX_IMAGE_BYTES", default_value_t = DEFAULT_MAX_IMAGE, value_parser = parse_size)]
    pub max_image_bytes: usize,
    /// Outgoing packets buffered per socket before emits are dropped (and counted).
    #[arg(long, env = "SOCKET_BUFFER_PACKETS", default_value_t = DEFAULT_BUFFER_PACKETS,
          value_parser = parse_buffer)]
    pub socket_buffer_packets: usize,
    /// Redis shared by every relay of a cluster (`redis://host:port`); unset: a single node.
    #[arg(long, env = "REDIS_URL")]
    pub redis_url: Option<String>,
    /// Prefix of the cluster's Redis keys and channels (several clusters may share a Redis).
    #[arg(long, env = "REDIS_PREFIX", default_value = "relay")]
    pub redis_prefix: String,
    /// Cross-node messages a node may have waiting before it drops them (and counts the drops).
    #[arg(long, env = "REDIS_STREAM_BUFFER", default_value_t = crate::cluster::DEFAULT_STREAM_BUFFER,
          value_parser = parse_buffer)]
    pub redis_stream_buffer: usize,
    /// Serve TLS with this certificate chain (PEM, leaf first); needs --tls-key.
    #[arg(long, env = "RELAY_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The private key (PEM) of --tls-cert.
    #[arg(long, env = "RELAY_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Tokio worker threads (unset: one per core). Every delivery wakes the socket's
    /// writer; with one worker those wake-ups stay on one thread.
    #[arg(long, env = "RELAY_THREADS", value_parser = clap::value_parser!(u16).range(1..=256))]
    pub worker_threads: Option<u16>,
    /// Clock for rate limits (tests use a manual one).
    #[arg(skip)]
    pub clock: Clock,
}

/// A configuration the relay refuses to start with.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    /// Neither a secret nor the insecure flag.
    #[error(
        "RELAY_JWT_SECRET is not set: operators cannot be authenticated. Set it (or --jwt-secret), \
         or give the identity provider's public key (--jwt-public-key, --jwks-file), \
         or pass --insecure-dev to trust claimed identities during development"
    )]
    MissingSecret,
    /// Secret too short to resist brute force.
    #[error("RELAY_JWT_SECRET is {0} bytes long; use at least {MIN_SECRET_BYTES}")]
    WeakSecret(usize),
    /// A TLS certificate without its key, or a key without its certificate.
    #[error("--tls-cert and --tls-key (RELAY_TLS_CERT, RELAY_TLS_KEY) go together: give both")]
    HalfTls,
    /// Images could never fit in an event.
    #[error("MAX_IMAGE_BYTES ({image}) must not exceed MAX_PAYLOAD_BYTES ({payload})")]
    ImageOverPayload {
        /// Image limit.
        image: usize,
        /// Event limit.
        payload: usize,
    },
}

impl Config {
    /// The runtime these settings ask for: `worker_threads` workers, or one per core.
    ///
    /// # Errors
    /// The runtime could not be built.
    pub fn runtime(&self) -> std::io::Result<tokio::runtime::Runtime> {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        if let Some(n) = self.worker_threads {
            b.worker_threads(usize::from(n));
        }
        b.enable_all().build()
    }

    /// Defaults with the given JWT secret, for embedding the relay (tests, the simulator).
    pub fn with_secret(secret: impl Into<String>) -> Self {
        Self {
            host: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: 0,
            path: DEFAULT_PATH.to_owned(),
            cors_origin: Vec::new(),
            jwt_secret: Some(secret.into()),
            jwt_public_key: None,
            jwks_file: None,
            insecure_dev: false,
            rate_limit_per_minute: DEFAULT_RATE_LIMIT,
            typing_rate_limit_per_minute: DEFAULT_TYPING_RATE_LIMIT,
            max_payload_bytes: DEFAULT_MAX_PAYLOAD,
            max_image_bytes: DEFAULT_MAX_IMAGE,
            socket_buffer_packets: DEFAULT_BUFFER_PACKETS,
            redis_url: None,
            redis_prefix: "relay".to_owned(),
            redis_stream_buffer: crate::cluster::DEFAULT_STREAM_BUFFER,
            tls_cert: None,
            tls_key: None,
            worker_threads: None,
            clock: Clock::System,
        }
    }

    /// Checks what single flags cannot.
    ///
    /// # Errors
    /// See [`ConfigError`].
    pub fn validate(&self) -> Result<(), ConfigError> {
        let keys = self.jwt_public_key.is_some() || self.jwks_file.is_some();
        match &self.jwt_secret {
            None if !self.insecure_dev && !keys => return Err(ConfigError::MissingSecret),
            Some(s) if s.len() < MIN_SECRET_BYTES => return Err(ConfigError::WeakSecret(s.len())),
            _ => {}
        }
        if self.tls_cert.is_some() != self.tls_key.is_some() {
            return Err(ConfigError::HalfTls);
        }
        if self.max_image_bytes > self.max_payload_bytes {
            return Err(ConfigError::ImageOverPayload {
                image: self.max_image_bytes,
                payload: self.max_payload_bytes,
            });
        }
        Ok(())
    }

    /// What operator tokens are verified with; `None` in insecure development mode.
    ///
    /// # Errors
    /// A key file that cannot be read or used, named.
    pub fn verifier(&self) -> Result<Option<crate::auth::Verifier>, crate::auth::AuthError> {
        use crate::auth::Verifier;
        if let Some(path) = &self.jwks_file {
            return Verifier::from_jwks_file(path).map(Some);
        }
        if let Some(path) = &self.jwt_public_key {
            return Verifier::from_public_key_file(path).map(Some);
        }
        Ok(self
            .jwt_secret
            .as_ref()
            .map(|s| Verifier::hs256(s.as_bytes())))
    }

    /// True when any browser origin may connect.
    pub fn any_origin(&self) -> bool {
        self.cors_origin.is_empty() || self.cors_origin.iter().any(|o| o == "*")
    }
}

fn parse_path(s: &str) -> Result<String, String> {
    let trimmed = s.trim_end_matches('/');
    if !s.starts_with('/') || trimmed.is_empty() || s.contains(['?', '#', ' ']) {
        return Err(format!("{s:?} is not an absolute path like /chat"));
    }
    Ok(trimmed.to_owned())
}

fn parse_origin(s: &str) -> Result<String, String> {
    let s = s.trim();
    if s == "*" {
        return Ok(s.to_owned());
    }
    let s = s.trim_end_matches('/');
    let rest = s
        .strip_prefix("http://")
        .or_else(|| s.strip_prefix("https://"))
        .ok_or_else(|| format!("{s:?} is not an origin like https://example.com"))?;
    if rest.is_empty() || rest.contains(['/', '?', '#', ' ', '@']) {
        return Err(format!(
            "{s:?} is not an origin like https://example.com[:port]"
        ));
    }
    Ok(s.to_owned())
}

fn parse_buffer(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if n >= 16 => Ok(n),
        _ => Err(format!("{s:?} is not a packet count of at least 16")),
    }
}

fn parse_size(s: &str) -> Result<usize, String> {
    let n: usize = s
        .replace('_', "")
        .parse()
        .map_err(|_| format!("{s:?} is not a number of bytes"))?;
    if n < 1024 {
        return Err(format!("{n} bytes is too small; use at least 1024"));
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Config, clap::Error> {
        Config::try_parse_from(std::iter::once("relay").chain(args.iter().copied()))
    }

    #[test]
    fn defaults_match_protocol() {
        let c = parse(&["--jwt-secret", "0123456789abcdef"]).expect("parses");
        assert_eq!(c.path, "/chat");
        assert_eq!(c.rate_limit_per_minute, 100);
        assert_eq!(c.max_payload_bytes, 1_000_000);
        assert!(c.validate().is_ok());
    }

    #[test]
    fn refuses_to_start_without_secret() {
        let mut c = Config::with_secret("unused");
        c.jwt_secret = None;
        assert_eq!(c.validate(), Err(ConfigError::MissingSecret));
        c.insecure_dev = true;
        assert!(c.validate().is_ok());
    }

    #[test]
    fn refuses_short_secret() {
        let c = parse(&["--jwt-secret", "short"]).expect("parses");
        assert_eq!(c.validate(), Err(ConfigError::WeakSecret(5)));
    }

    #[test]
    fn bad_values_are_clear_errors() {
        for args in [
            &["--port", "70000"][..],
            &["--path", "chat"],
            &["--rate-limit-per-minute", "0"],
            &["--rate-limit-per-minute", "ten"],
            &["--max-payload-bytes", "12"],
            &["--cors-origin", "example.com"],
            &["--cors-origin", "https://a.com/path"],
        ] {
            let err = parse(args).expect_err("refused");
            assert!(err.to_string().contains("invalid value"), "{args:?}: {err}");
        }
    }

    #[test]
    fn origins_are_a_comma_list() {
        let c = parse(&[
            "--cors-origin",
            "http://localhost:3000,https://app.example.com/",
        ])
        .expect("parses");
        assert_eq!(
            c.cors_origin,
            ["http://localhost:3000", "https://app.example.com"]
        );
        assert!(!c.any_origin());
    }

    #[test]
    fn image_limit_must_fit_payload() {
        let mut c = Config::with_secret("0123456789abcdef");
        c.max_image_bytes = c.max_payload_bytes + 1;
        assert!(matches!(
            c.validate(),
            Err(ConfigError::ImageOverPayload { .. })
        ));
    }
}
