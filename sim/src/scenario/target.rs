//! `[target]` and the command line's say over it: which backend, how bots reach it (TLS trust,
//! headers) and how they come by operator tokens (a secret, a private key, a file of issued
//! tokens, or a command).

use std::path::PathBuf;

use toml::Spanned;

use super::raw::RawTarget;
use super::resolve::Resolver;
use super::{Credentials, Overrides, Reach, ScenarioError, Target};

/// Most embedded relay nodes a scenario may ask for.
const MAX_EMBEDDED_RELAYS: u32 = 8;

/// Headers the client writes itself on each request.
const CLIENT_HEADERS: [&str; 5] = [
    "host",
    "connection",
    "upgrade",
    "content-length",
    "transfer-encoding",
];

impl Resolver<'_> {
    /// `[target]` with `--target`, `--jwt-private-key`, `--ca-file` and `--insecure` over it.
    pub(super) fn target(
        &self,
        raw: Option<Spanned<RawTarget>>,
        o: &Overrides,
    ) -> Result<Target, ScenarioError> {
        let flags = &o.targets;
        let raw = raw.map(Spanned::into_inner);
        for t in flags {
            wire::Endpoint::parse(t)
                .map_err(|e| ScenarioError::Override(format!("--target {e}")))?;
        }
        let mut urls: Vec<String> = flags.clone();
        if urls.is_empty()
            && let Some(t) = &raw
        {
            for (field, u) in t
                .urls
                .iter()
                .map(|u| ("target.urls", u))
                .chain(t.url.iter().map(|u| ("target.url", u)))
            {
                wire::Endpoint::parse(u.get_ref()).map_err(|m| self.err(u.span(), field, m))?;
                urls.push(u.get_ref().clone());
            }
        }
        let relays = raw.as_ref().and_then(|t| t.relays.as_ref());
        if let Some(n) = relays {
            if *n.get_ref() == 0 || *n.get_ref() > MAX_EMBEDDED_RELAYS {
                return Err(self.err(
                    n.span(),
                    "target.relays",
                    format!("must be 1 to {MAX_EMBEDDED_RELAYS}"),
                ));
            }
            if !urls.is_empty() && flags.is_empty() {
                return Err(self.err(
                    n.span(),
                    "target.relays",
                    "starts embedded relays, so it cannot be combined with target.url(s)",
                ));
            }
        }
        if let Some(p) = raw.as_ref().and_then(|t| t.process.as_ref())
            && *p.get_ref()
            && flags.is_empty()
        {
            if !urls.is_empty() || relays.is_some_and(|n| *n.get_ref() > 1) {
                return Err(self.err(
                    p.span(),
                    "target.process",
                    "starts one relay process, so it cannot be combined with target.url(s) or relays",
                ));
            }
            return Ok(Target::Process);
        }
        if urls.is_empty() {
            if o.jwt_private_key.is_some() {
                return Err(ScenarioError::Override(
                    "--jwt-private-key is for an external target (--target or [target] url)".into(),
                ));
            }
            return Ok(Target::Embedded {
                relays: relays.map_or(1, |n| *n.get_ref()),
            });
        }
        let (credentials, mut reach) = match raw {
            Some(t) => (self.credentials(&t)?, self.reach(t)?),
            None => (
                Credentials::Secret(std::env::var("RELAY_JWT_SECRET").unwrap_or_default()),
                Reach::default(),
            ),
        };
        let credentials = match (&o.jwt_private_key, &o.jwt_secret) {
            (Some(key), _) => {
                if !key.is_file() {
                    return Err(ScenarioError::Override(format!(
                        "--jwt-private-key {}: no such file",
                        key.display()
                    )));
                }
                Credentials::PrivateKey(key.clone())
            }
            (None, Some(secret)) => Credentials::Secret(secret.clone()),
            (None, None) => credentials,
        };
        if let Some(ca) = &o.ca_file {
            if !ca.is_file() {
                return Err(ScenarioError::Override(format!(
                    "--ca-file {}: no such file",
                    ca.display()
                )));
            }
            reach.trust = wire::tls::Trust::CaFile(ca.clone());
        }
        if o.insecure {
            reach.trust = wire::tls::Trust::Insecure;
        }
        Ok(Target::External {
            urls,
            credentials,
            reach,
        })
    }

    /// `path` as written in the scenario: relative to the scenario's folder.
    fn relative(&self, path: &str) -> PathBuf {
        let p = std::path::Path::new(path);
        match self.path.parent() {
            Some(dir) if p.is_relative() => dir.join(p),
            _ => p.to_owned(),
        }
    }

    /// The file `[target] <field>` names, which must exist.
    fn existing_file(&self, path: &Spanned<String>, field: &str) -> Result<PathBuf, ScenarioError> {
        let file = self.relative(path.get_ref());
        if file.is_file() {
            Ok(file)
        } else {
            Err(self.err(
                path.span(),
                format!("target.{field}"),
                format!("{}: no such file", file.display()),
            ))
        }
    }

    /// At most one of `jwt_secret` / `jwt_secret_env`, `jwt_private_key_file`, `tokens_file`
    /// and `token_command`; with none, `RELAY_JWT_SECRET`.
    fn credentials(&self, t: &RawTarget) -> Result<Credentials, ScenarioError> {
        let mut given: Vec<(&str, std::ops::Range<usize>)> = Vec::new();
        if let Some(v) = &t.jwt_secret_env {
            given.push(("jwt_secret_env", v.span()));
        }
        if let Some(v) = &t.jwt_private_key_file {
            given.push(("jwt_private_key_file", v.span()));
        }
        if let Some(v) = &t.tokens_file {
            given.push(("tokens_file", v.span()));
        }
        if let Some(v) = &t.token_command {
            given.push(("token_command", v.span()));
        }
        if given.len() + usize::from(t.jwt_secret.is_some()) > 1 {
            let (field, span) = given.pop().unwrap_or(("jwt_secret", 0..0));
            return Err(self.err(
                span,
                format!("target.{field}"),
                "choose one way to come by operator tokens: jwt_secret, jwt_secret_env, \
                 jwt_private_key_file, tokens_file or token_command",
            ));
        }
        if let Some(secret) = &t.jwt_secret {
            return Ok(Credentials::Secret(secret.clone()));
        }
        if let Some(var) = &t.jwt_secret_env {
            return std::env::var(var.get_ref())
                .map(Credentials::Secret)
                .map_err(|_| {
                    self.err(
                        var.span(),
                        "target.jwt_secret_env",
                        format!("environment variable {} is not set", var.get_ref()),
                    )
                });
        }
        if let Some(key) = &t.jwt_private_key_file {
            return Ok(Credentials::PrivateKey(
                self.existing_file(key, "jwt_private_key_file")?,
            ));
        }
        if let Some(file) = &t.tokens_file {
            return Ok(Credentials::TokensFile(
                self.existing_file(file, "tokens_file")?,
            ));
        }
        if let Some(command) = &t.token_command {
            if command.get_ref().trim().is_empty() {
                return Err(self.err(command.span(), "target.token_command", "is empty"));
            }
            return Ok(Credentials::Command(command.get_ref().clone()));
        }
        Ok(Credentials::Secret(
            std::env::var("RELAY_JWT_SECRET").unwrap_or_default(),
        ))
    }

    /// `[target] ca_file`, `insecure`, `headers` and `namespace`.
    fn reach(&self, t: RawTarget) -> Result<Reach, ScenarioError> {
        let mut reach = Reach {
            namespace: "/".to_owned(),
            ..Reach::default()
        };
        if let Some(ns) = &t.namespace {
            let name = ns.get_ref();
            let ok = name.starts_with('/')
                && name.len() < 256
                && !name.contains([',', '?', '#', ' ', '"', '\\'])
                && name.chars().all(|c| !c.is_control());
            if !ok {
                return Err(self.err(
                    ns.span(),
                    "target.namespace",
                    "is a Socket.IO namespace like \"/support\": a slash, then no comma, \
                     space, quote or ?",
                ));
            }
            reach.namespace.clone_from(name);
        }
        if let Some(ca) = &t.ca_file {
            reach.trust = wire::tls::Trust::CaFile(self.existing_file(ca, "ca_file")?);
        }
        if let Some(i) = &t.insecure
            && *i.get_ref()
        {
            if t.ca_file.is_some() {
                return Err(self.err(
                    i.span(),
                    "target.insecure",
                    "trusts any certificate, so it cannot be combined with target.ca_file",
                ));
            }
            reach.trust = wire::tls::Trust::Insecure;
        }
        for (name, value) in t.headers {
            let bad_name = name.is_empty()
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
            if bad_name {
                return Err(self.err(
                    value.span(),
                    format!("target.headers.{name}"),
                    "is not an HTTP header name",
                ));
            }
            let lower = name.to_ascii_lowercase();
            if CLIENT_HEADERS.contains(&lower.as_str()) || lower.starts_with("sec-websocket-") {
                return Err(self.err(
                    value.span(),
                    format!("target.headers.{name}"),
                    "is set by the client itself for each request",
                ));
            }
            if value.get_ref().bytes().any(|b| b == b'\r' || b == b'\n') {
                return Err(self.err(
                    value.span(),
                    format!("target.headers.{name}"),
                    "a header value cannot hold a line break",
                ));
            }
            reach.headers.push((name, value.into_inner()));
        }
        Ok(reach)
    }
}

#[cfg(test)]
#[path = "target_tests.rs"]
mod tests;
