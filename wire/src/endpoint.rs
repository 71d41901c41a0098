//! Where a Socket.IO server listens: address, `Host` header and HTTP path, from a URL.

use std::net::{IpAddr, SocketAddr};

/// A Socket.IO endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// Host and port.
    pub addr: SocketAddr,
    /// `Host` header value.
    pub host: String,
    /// HTTP path of the Socket.IO endpoint, without trailing slash (e.g. `/chat`).
    pub path: String,
}

impl Endpoint {
    /// The endpoint at `path` on `addr`.
    pub fn new(addr: SocketAddr, path: &str) -> Self {
        Self {
            addr,
            host: addr.to_string(),
            path: format!("/{}", path.trim_matches('/')),
        }
    }

    /// Parses `http://host:port/path` (or `ws://`). Only literal IP addresses and
    /// `localhost` are accepted: load tests target known machines, not DNS names.
    ///
    /// # Errors
    /// A sentence saying what is wrong with the URL.
    pub fn parse(url: &str) -> Result<Self, String> {
        let rest = url
            .strip_prefix("http://")
            .or_else(|| url.strip_prefix("ws://"))
            .ok_or_else(|| format!("{url:?}: only http:// and ws:// URLs are supported"))?;
        let (hostport, path) = rest.split_once('/').unwrap_or((rest, "socket.io"));
        let resolved = hostport.replacen("localhost", "127.0.0.1", 1);
        let addr: SocketAddr = resolved
            .parse()
            .or_else(|_| format!("{resolved}:80").parse())
            .or_else(|_| {
                // a bare IPv6 address without brackets and port
                resolved.parse::<IpAddr>().map(|ip| SocketAddr::new(ip, 80))
            })
            .map_err(|_| {
                format!("{url:?}: host must be an IP address and port, like 127.0.0.1:3001")
            })?;
        Ok(Self {
            addr,
            host: hostport.to_owned(),
            path: format!("/{}", path.trim_end_matches('/')),
        })
    }

    /// Request target of an Engine.IO request with `query` (`EIO=4&...`).
    pub(crate) fn target(&self, query: &str) -> String {
        format!("{}/?{query}", self.path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_urls() {
        let e = Endpoint::parse("http://127.0.0.1:3001/chat").expect("ok");
        assert_eq!(e.addr.port(), 3001);
        assert_eq!(e.path, "/chat");
        assert_eq!(e.target("EIO=4"), "/chat/?EIO=4");
        let e = Endpoint::parse("http://localhost:9/chat/").expect("ok");
        assert_eq!(e.path, "/chat");
        assert_eq!(e.host, "localhost:9");
        let e = Endpoint::parse("ws://[::1]:7/x").expect("ok");
        assert!(e.addr.is_ipv6());
        assert_eq!(
            Endpoint::parse("http://127.0.0.1:5").expect("ok").path,
            "/socket.io"
        );
        assert!(Endpoint::parse("https://example.com/chat").is_err());
        assert!(Endpoint::parse("http://example.com:80/chat").is_err());
        assert_eq!(
            Endpoint::new("127.0.0.1:1".parse().expect("addr"), "chat/").path,
            "/chat"
        );
    }
}
