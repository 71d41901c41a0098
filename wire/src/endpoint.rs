//! Where a Socket.IO server listens: address, `Host` header, TLS server name, HTTP path and
//! extra query parameters, from a URL; and the namespace to connect to.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs as _};

/// A Socket.IO endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// Host and port.
    pub addr: SocketAddr,
    /// `Host` header value.
    pub host: String,
    /// HTTP path of the Socket.IO endpoint, without trailing slash (e.g. `/chat`).
    pub path: String,
    /// `https://` or `wss://`: every leg is TLS.
    pub tls: bool,
    /// The name the server's certificate must carry (the URL's host, without port).
    pub server_name: String,
    /// Query parameters every Engine.IO request carries besides its own (`a=1&b=2`), as
    /// socket.io-client's `query` option sends them.
    pub query: String,
    /// The Socket.IO namespace (`/` unless set; e.g. `/support`).
    pub namespace: String,
}

impl Endpoint {
    /// The plain endpoint at `path` on `addr`.
    pub fn new(addr: SocketAddr, path: &str) -> Self {
        Self {
            addr,
            host: addr.to_string(),
            path: format!("/{}", path.trim_matches('/')),
            tls: false,
            server_name: addr.ip().to_string(),
            query: String::new(),
            namespace: "/".to_owned(),
        }
    }

    /// Parses `http://host:port/path?query` (or `https://`, `ws://`, `wss://`). A host name
    /// is resolved once, here; `localhost` is 127.0.0.1.
    ///
    /// # Errors
    /// A sentence saying what is wrong with the URL.
    pub fn parse(url: &str) -> Result<Self, String> {
        let (tls, rest) = [
            ("http://", false),
            ("ws://", false),
            ("https://", true),
            ("wss://", true),
        ]
        .iter()
        .find_map(|(scheme, tls)| url.strip_prefix(scheme).map(|r| (*tls, r)))
        .ok_or_else(|| {
            format!("{url:?}: the URL must start with http://, https://, ws:// or wss://")
        })?;
        let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
        let (hostport, path) = rest.split_once('/').unwrap_or((rest, "socket.io"));
        if hostport.is_empty() {
            return Err(format!("{url:?}: no host"));
        }
        let default_port = if tls { 443 } else { 80 };
        let (host, port) = split_port(hostport).map_err(|why| format!("{url:?}: {why}"))?;
        let port = port.unwrap_or(default_port);
        let addr = if host.eq_ignore_ascii_case("localhost") {
            SocketAddr::new(IpAddr::from([127, 0, 0, 1]), port)
        } else if let Ok(ip) = host.parse::<IpAddr>() {
            SocketAddr::new(ip, port)
        } else {
            (host, port)
                .to_socket_addrs()
                .map_err(|e| format!("{url:?}: cannot resolve {host}: {e}"))?
                .next()
                .ok_or_else(|| format!("{url:?}: {host} has no address"))?
        };
        Ok(Self {
            addr,
            host: hostport.to_owned(),
            path: format!("/{}", path.trim_end_matches('/')),
            tls,
            server_name: host.to_owned(),
            query: query.to_owned(),
            namespace: "/".to_owned(),
        })
    }

    /// The URL it was parsed from, as `http(s)://host:port/path[?query]`.
    pub fn url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        let query = if self.query.is_empty() {
            String::new()
        } else {
            format!("?{}", self.query)
        };
        format!("{scheme}://{}{}{query}", self.host, self.path)
    }

    /// Request target of an Engine.IO request with `query` (`EIO=4&...`), the endpoint's
    /// own query parameters after it.
    pub(crate) fn target(&self, query: &str) -> String {
        if self.query.is_empty() {
            format!("{}/?{query}", self.path)
        } else {
            format!("{}/?{query}&{}", self.path, self.query)
        }
    }
}

/// `host[:port]`, `[v6][:port]`, or a bare IPv6 address.
fn split_port(hostport: &str) -> Result<(&str, Option<u16>), String> {
    let port = |p: &str| {
        p.parse::<u16>()
            .map_err(|_| format!("port {p:?} is not a number from 0 to 65535"))
    };
    if let Some(rest) = hostport.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .ok_or("an IPv6 address without its closing bracket")?;
        return match after.strip_prefix(':') {
            Some(p) => Ok((host, Some(port(p)?))),
            None if after.is_empty() => Ok((host, None)),
            None => Err(format!("unexpected {after:?} after the address")),
        };
    }
    if hostport.parse::<IpAddr>().is_ok() {
        return Ok((hostport, None)); // a bare IPv6 address
    }
    match hostport.rsplit_once(':') {
        Some((host, p)) => Ok((host, Some(port(p)?))),
        None => Ok((hostport, None)),
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
        assert!(Endpoint::parse("ftp://127.0.0.1/chat").is_err());
        assert!(Endpoint::parse("http://127.0.0.1:99999/chat").is_err());
        assert!(Endpoint::parse("http:///chat").is_err());
        assert!(Endpoint::parse("http://no-such-host.invalid/chat").is_err());
        let e = Endpoint::parse("wss://localhost/chat?tenant=7&x=1").expect("ok");
        assert!(e.tls);
        assert_eq!(e.addr.port(), 443);
        assert_eq!(e.server_name, "localhost");
        assert_eq!(e.target("EIO=4"), "/chat/?EIO=4&tenant=7&x=1");
        let e = Endpoint::parse("https://[::1]:8443/chat").expect("ok");
        assert_eq!((e.server_name.as_str(), e.addr.port()), ("::1", 8443));
        assert_eq!(
            Endpoint::new("127.0.0.1:1".parse().expect("addr"), "chat/").path,
            "/chat"
        );
    }
}
