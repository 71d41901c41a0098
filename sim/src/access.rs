//! How bots reach the target beyond its URL: the TLS trust of an `https://` target, the
//! headers every request carries, and each bot's browser state (its TLS sessions and its
//! cookie jar), kept across its reconnections as a browser tab keeps them.

use std::net::IpAddr;
use std::sync::Arc;

use wire::tls::{Tls, TlsError, Trust};
use wire::{Cookies, Endpoint, Options, Transport};

use crate::scenario::Reach;

/// What every bot of a run shares to reach the target.
#[derive(Debug, Clone, Default)]
pub struct Access {
    /// Set when some endpoint is `https://`.
    tls: Option<Tls>,
    /// Every certificate is accepted (`--insecure`).
    pub insecure: bool,
    headers: Vec<(String, String)>,
}

impl Access {
    /// The access `reach` describes to `endpoints`.
    ///
    /// # Errors
    /// The CA file or the system's roots cannot be read.
    pub fn new(reach: &Reach, endpoints: &[Endpoint]) -> Result<Self, TlsError> {
        let tls = if endpoints.iter().any(|e| e.tls) {
            Some(Tls::new(&reach.trust)?)
        } else {
            None
        };
        Ok(Self {
            tls,
            insecure: reach.trust == Trust::Insecure,
            headers: reach.headers.clone(),
        })
    }

    /// A new browser: its own TLS session cache and cookie jar.
    pub fn browser(&self) -> Browser {
        Browser {
            tls: self.tls.as_ref().map(Tls::for_client),
            cookies: Cookies::new(),
            headers: self.headers.clone(),
        }
    }
}

/// One bot's browser state, for all its connections.
#[derive(Debug, Clone)]
pub struct Browser {
    tls: Option<Arc<wire::tls::ClientSettings>>,
    cookies: Cookies,
    headers: Vec<(String, String)>,
}

impl Browser {
    /// The options of one connection of this browser.
    pub fn options(
        &self,
        transport: Transport,
        auth: Option<String>,
        source: Option<IpAddr>,
    ) -> Options {
        Options {
            transport,
            auth,
            source,
            origin: None,
            headers: self.headers.clone(),
            cookies: Some(self.cookies.clone()),
            tls: self.tls.clone(),
            resume: None,
        }
    }
}
