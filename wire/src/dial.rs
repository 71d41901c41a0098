//! Opening one leg of a connection: TCP from the chosen source address, TLS when the
//! endpoint asks for it, and what every request carries (headers, cookies, `Origin`).

use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::task::{Context, Poll};
use std::time::Instant;

use rustls::ClientConfig;
use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpSocket, TcpStream};
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::WireError;
use crate::connection::Options;
use crate::cookies::path_of;
use crate::endpoint::Endpoint;
use crate::locals::{Leg, Locals};
use crate::tls::{Handshake, Tls, Trust};

/// A leg's byte stream: plain TCP, or TLS over it.
pub(crate) enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// The TLS setup of an `https://` endpoint given no [`Options::tls`]: the system's roots.
fn default_tls() -> Result<Arc<ClientConfig>, WireError> {
    static SYSTEM: OnceLock<Result<Tls, String>> = OnceLock::new();
    SYSTEM
        .get_or_init(|| Tls::new(&Trust::System).map_err(|e| e.to_string()))
        .as_ref()
        .map(Tls::for_client)
        .map_err(|e| WireError::Io(e.clone()))
}

/// Opens the legs of one connection, all alike.
#[derive(Clone)]
pub(crate) struct Dialer {
    pub(crate) endpoint: Endpoint,
    options: Options,
    tls: Option<(TlsConnector, ServerName<'static>)>,
    pub(crate) locals: Locals,
    /// The first TLS handshake's figures.
    handshake: Arc<Mutex<Option<Handshake>>>,
}

impl Dialer {
    pub(crate) fn new(endpoint: &Endpoint, options: &Options) -> Result<Self, WireError> {
        let tls = if endpoint.tls {
            let config = match &options.tls {
                Some(c) => c.clone(),
                None => default_tls()?,
            };
            let name = ServerName::try_from(endpoint.server_name.clone())
                .map_err(|e| WireError::Io(format!("TLS server name: {e}")))?;
            Some((TlsConnector::from(config), name))
        } else {
            None
        };
        Ok(Self {
            endpoint: endpoint.clone(),
            options: options.clone(),
            tls,
            locals: Locals::default(),
            handshake: Arc::default(),
        })
    }

    /// The first TLS handshake's figures; `None` for a plain connection.
    pub(crate) fn handshake(&self) -> Option<Handshake> {
        *self
            .handshake
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Opens `leg`: TCP with Nagle off, then TLS when the endpoint is `https://`.
    pub(crate) async fn dial(&self, leg: Leg) -> Result<Stream, WireError> {
        let tcp = tcp(&self.endpoint, self.options.source, (&self.locals, leg)).await?;
        let Some((connector, name)) = &self.tls else {
            return Ok(Stream::Plain(tcp));
        };
        let began = Instant::now();
        let tls = connector
            .connect(name.clone(), tcp)
            .await
            .map_err(|e| WireError::Io(format!("TLS handshake: {e}")))?;
        let resumed = tls.get_ref().1.handshake_kind() == Some(rustls::HandshakeKind::Resumed);
        let mut first = self
            .handshake
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        first.get_or_insert(Handshake {
            took: began.elapsed(),
            resumed,
        });
        Ok(Stream::Tls(Box::new(tls)))
    }

    /// The headers every request to `target` carries beyond its own: `Origin`, the
    /// configured extra headers, and the jar's cookies.
    pub(crate) fn headers(&self, target: &str) -> Vec<(String, String)> {
        let mut out = Vec::new(); // no allocation for a request with nothing to add
        if let Some(o) = &self.options.origin {
            out.push(("Origin".to_owned(), o.clone()));
        }
        out.extend(self.options.headers.iter().cloned());
        if let Some(c) = self
            .options
            .cookies
            .as_ref()
            .and_then(|j| j.header(path_of(target)))
        {
            // a configured Cookie header and the jar's cookies go out as one header
            match out
                .iter_mut()
                .find(|(n, _)| n.eq_ignore_ascii_case("cookie"))
            {
                Some((_, v)) => {
                    v.push_str("; ");
                    v.push_str(&c);
                }
                None => out.push(("Cookie".to_owned(), c)),
            }
        }
        out
    }

    /// Keeps the cookies a response to `target` set.
    pub(crate) fn keep_cookies<'a>(&self, target: &str, set: impl Iterator<Item = &'a [u8]>) {
        let Some(jar) = &self.options.cookies else {
            return;
        };
        for value in set {
            if let Ok(text) = std::str::from_utf8(value) {
                jar.store(text, path_of(target));
            }
        }
    }
}

/// Opens a TCP connection from `source` (when given) with Nagle off, noting its local end
/// in `locals` as `leg`.
pub(crate) async fn tcp(
    endpoint: &Endpoint,
    source: Option<IpAddr>,
    (locals, leg): (&Locals, Leg),
) -> Result<TcpStream, WireError> {
    let socket = if endpoint.addr.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }?;
    if let Some(src) = source {
        socket.bind(SocketAddr::new(src, 0))?;
    }
    let tcp = socket.connect(endpoint.addr).await?;
    tcp.set_nodelay(true)?;
    if let Ok(local) = tcp.local_addr() {
        locals.note(leg, local);
    }
    Ok(tcp)
}
