//! The long-polling transport: one HTTP/1.1 connection keeps a `GET` waiting for the
//! server's packets, another carries `POST`s of the client's, as browsers do.
//!
//! Packets in one payload are separated by `0x1e`. The `GET` side answers the server's
//! pings itself (by `POST`ing a pong) and stops when an upgrade to WebSocket releases it
//! with a noop packet.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::{BufMut, Bytes, BytesMut};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tungstenite::Utf8Bytes;

use crate::WireError;
use crate::dial::Dialer;
use crate::locals::Leg;
use crate::packet::{Open, SEPARATOR, clip};

/// One keep-alive HTTP/1.1 connection, opened again when the server closed it while idle
/// (Node's HTTP server does after 5 s).
struct Http {
    send: SendRequest<Full<Bytes>>,
    driver: JoinHandle<()>,
    dialer: Dialer,
    /// Which leg of the connection it is.
    leg: Leg,
}

/// A request that never reached the server: safe to send again.
struct Unsent;

impl Http {
    async fn open(dialer: &Dialer, leg: Leg) -> Result<Self, WireError> {
        let (send, driver) = Self::connect(dialer, leg).await?;
        Ok(Self {
            send,
            driver,
            dialer: dialer.clone(),
            leg,
        })
    }

    async fn connect(
        dialer: &Dialer,
        leg: Leg,
    ) -> Result<(SendRequest<Full<Bytes>>, JoinHandle<()>), WireError> {
        let stream = dialer.dial(leg).await?;
        let (send, conn) = http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| WireError::Io(e.to_string()))?;
        let driver = tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok((send, driver))
    }

    async fn reconnect(&mut self) -> Result<(), WireError> {
        let (send, driver) = Self::connect(&self.dialer, self.leg).await?;
        self.driver.abort();
        self.send = send;
        self.driver = driver;
        Ok(())
    }

    /// The body of a successful request; any other status is an error. A request that
    /// never left because the idle connection had been closed goes out on a new one.
    async fn request(
        &mut self,
        method: Method,
        target: &str,
        body: Bytes,
    ) -> Result<Bytes, WireError> {
        if self.send.is_closed() {
            self.reconnect().await?;
        }
        match self
            .request_once(method.clone(), target, body.clone())
            .await
        {
            Ok(result) => result,
            Err(Unsent) => {
                self.reconnect().await?;
                self.request_once(method, target, body)
                    .await
                    .unwrap_or_else(|Unsent| {
                        Err(WireError::Io("the HTTP connection closed".into()))
                    })
            }
        }
    }

    async fn request_once(
        &mut self,
        method: Method,
        target: &str,
        body: Bytes,
    ) -> Result<Result<Bytes, WireError>, Unsent> {
        let mut req = Request::builder()
            .method(method)
            .uri(target)
            .header(hyper::header::HOST, &self.dialer.endpoint.host);
        for (name, value) in self.dialer.headers(target) {
            req = req.header(name, value);
        }
        if !body.is_empty() {
            req = req.header(hyper::header::CONTENT_TYPE, "text/plain;charset=UTF-8");
        }
        let req = match req.body(Full::new(body)) {
            Ok(r) => r,
            Err(e) => return Ok(Err(WireError::Protocol(e.to_string()))),
        };
        if self.send.ready().await.is_err() {
            return Err(Unsent);
        }
        let response = match self.send.send_request(req).await {
            Ok(r) => r,
            Err(e) if e.is_canceled() => return Err(Unsent),
            Err(e) => return Ok(Err(WireError::Io(e.to_string()))),
        };
        self.dialer.keep_cookies(
            target,
            response
                .headers()
                .get_all(hyper::header::SET_COOKIE)
                .iter()
                .map(hyper::header::HeaderValue::as_bytes),
        );
        let status = response.status().as_u16();
        let bytes = match response.into_body().collect().await {
            Ok(b) => b.to_bytes(),
            Err(e) => return Ok(Err(WireError::Io(e.to_string()))),
        };
        if status != 200 {
            return Ok(Err(WireError::Http {
                status,
                body: clip(&String::from_utf8_lossy(&bytes)).to_owned(),
            }));
        }
        Ok(Ok(bytes))
    }
}

impl Drop for Http {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

/// The packets of one polling payload, as text.
fn split(body: &Bytes) -> Result<Vec<Utf8Bytes>, WireError> {
    body.split(|b| *b == SEPARATOR)
        .filter(|p| !p.is_empty())
        .map(|p| {
            Utf8Bytes::try_from(body.slice_ref(p))
                .map_err(|_| WireError::Protocol("polling payload is not UTF-8".into()))
        })
        .collect()
}

/// An open long-polling session, before its loops run.
pub(crate) struct Handshake {
    /// The open packet.
    pub open: Open,
    getter: Http,
    poster: Http,
    target: String,
}

impl Handshake {
    /// Opens the Engine.IO session.
    pub(crate) async fn open(dialer: &Dialer) -> Result<Self, WireError> {
        let endpoint = &dialer.endpoint;
        let mut getter = Http::open(dialer, Leg::Stream).await?;
        let body = getter
            .request(
                Method::GET,
                &endpoint.target("EIO=4&transport=polling"),
                Bytes::new(),
            )
            .await?;
        let first = split(&body)?
            .into_iter()
            .next()
            .ok_or_else(|| WireError::Protocol("empty open payload".into()))?;
        let open = Open::parse(first.as_str()).map_err(WireError::Protocol)?;
        let target = endpoint.target(&format!("EIO=4&transport=polling&sid={}", open.sid));
        let poster = Http::open(dialer, Leg::Post).await?;
        Ok(Self {
            open,
            getter,
            poster,
            target,
        })
    }

    /// `POST`s `packet` and waits for it to be taken.
    pub(crate) async fn post(&mut self, packet: &str) -> Result<(), WireError> {
        self.poster
            .request(
                Method::POST,
                &self.target,
                Bytes::copy_from_slice(packet.as_bytes()),
            )
            .await
            .map(|_| ())
    }

    /// The packets of the next `GET`.
    pub(crate) async fn poll(&mut self) -> Result<Vec<Utf8Bytes>, WireError> {
        let body = self
            .getter
            .request(Method::GET, &self.target, Bytes::new())
            .await?;
        split(&body)
    }

    /// Starts the `GET` and `POST` loops.
    pub(crate) fn start(self) -> Session {
        let (packets_tx, packets) = mpsc::unbounded_channel();
        let (out, out_rx) = mpsc::unbounded_channel();
        let (pause, pause_rx) = oneshot::channel();
        let upgrading = Arc::new(AtomicBool::new(false));
        let getter = tokio::spawn(get_loop(
            self.getter,
            self.target.clone(),
            packets_tx.clone(),
            out.clone(),
            upgrading.clone(),
        ));
        let posting = Posting::default();
        let poster = tokio::spawn(post_loop(
            self.poster,
            self.target,
            out_rx,
            pause_rx,
            packets_tx.clone(),
            posting.clone(),
        ));
        Session {
            packets,
            out,
            getter,
            poster,
            pause: Some(pause),
            upgrading,
            posting,
        }
    }
}

/// A running long-polling session.
pub(crate) struct Session {
    /// Packets from the server, in order; an error ends them.
    pub packets: mpsc::UnboundedReceiver<Result<Utf8Bytes, WireError>>,
    /// Payloads for the server (packets already joined by `0x1e`).
    pub out: mpsc::UnboundedSender<Bytes>,
    getter: JoinHandle<()>,
    poster: JoinHandle<()>,
    pause: Option<oneshot::Sender<()>>,
    upgrading: Arc<AtomicBool>,
    posting: Posting,
}

/// When the `POST` that failed began: what it carried may never have reached the server.
#[derive(Debug, Clone, Default)]
struct Posting(Arc<std::sync::Mutex<Option<tokio::time::Instant>>>);

impl Posting {
    fn set(&self, at: Option<tokio::time::Instant>) {
        *self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = at;
    }

    fn get(&self) -> Option<tokio::time::Instant> {
        *self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Session {
    /// Since when what was sent may not have reached the server: the start of the `POST`
    /// that failed, if one did.
    pub(crate) fn unconfirmed_since(&self) -> Option<tokio::time::Instant> {
        self.posting.get()
    }

    /// From now on a noop packet ends the `GET` loop.
    pub(crate) fn start_upgrade(&self) {
        self.upgrading.store(true, Ordering::Release);
    }

    /// Waits for the `GET` loop to be released and the `POST` loop to send what it holds;
    /// returns the packets that arrived in the meantime.
    pub(crate) async fn finish(mut self) -> Result<Vec<Utf8Bytes>, WireError> {
        (&mut self.getter)
            .await
            .map_err(|e| WireError::Io(e.to_string()))?;
        if let Some(p) = self.pause.take() {
            let _ = p.send(());
        }
        (&mut self.poster)
            .await
            .map_err(|e| WireError::Io(e.to_string()))?;
        let mut left = Vec::new();
        while let Ok(p) = self.packets.try_recv() {
            left.push(p?);
        }
        Ok(left)
    }

    /// Sends `packets` and ends the session (best effort, without waiting long).
    pub(crate) async fn close(mut self, packets: &[&str]) {
        let _ = self.out.send(join(packets));
        if let Some(p) = self.pause.take() {
            let _ = p.send(());
        }
        let _ = tokio::time::timeout(std::time::Duration::from_secs(2), &mut self.poster).await;
    }
}

/// The `GET` loop stops with the session; the `POST` loop sends what is queued and stops
/// when the last [`crate::Sender`] is gone.
impl Drop for Session {
    fn drop(&mut self) {
        self.getter.abort();
    }
}

/// `packets` as one payload.
pub(crate) fn join(packets: &[&str]) -> Bytes {
    let mut out = BytesMut::with_capacity(packets.iter().map(|p| p.len() + 1).sum());
    for (i, p) in packets.iter().enumerate() {
        if i > 0 {
            out.put_u8(SEPARATOR);
        }
        out.extend_from_slice(p.as_bytes());
    }
    out.freeze()
}

async fn get_loop(
    mut http: Http,
    target: String,
    packets: mpsc::UnboundedSender<Result<Utf8Bytes, WireError>>,
    out: mpsc::UnboundedSender<Bytes>,
    upgrading: Arc<AtomicBool>,
) {
    loop {
        let body = match http.request(Method::GET, &target, Bytes::new()).await {
            Ok(b) => b,
            Err(e) => {
                let _ = packets.send(Err(e));
                return;
            }
        };
        let list = match split(&body) {
            Ok(l) => l,
            Err(e) => {
                let _ = packets.send(Err(e));
                return;
            }
        };
        let mut released = false;
        for p in list {
            match p.as_str() {
                "2" => {
                    let _ = out.send(Bytes::from_static(b"3"));
                }
                "6" => released = upgrading.load(Ordering::Acquire),
                s => {
                    let close = s == "1";
                    if packets.send(Ok(p)).is_err() || close {
                        return;
                    }
                }
            }
        }
        if released {
            return;
        }
    }
}

async fn post_loop(
    mut http: Http,
    target: String,
    mut rx: mpsc::UnboundedReceiver<Bytes>,
    pause: oneshot::Receiver<()>,
    packets: mpsc::UnboundedSender<Result<Utf8Bytes, WireError>>,
    posting: Posting,
) {
    // a dropped session is no pause: what its senders still send must go out
    let mut pause = Some(pause);
    loop {
        let paused = async {
            match pause.as_mut() {
                Some(p) => p.await.is_ok(),
                None => std::future::pending().await,
            }
        };
        let first = tokio::select! {
            biased;
            p = rx.recv() => match p {
                Some(p) => p,
                None => return,
            },
            asked = paused => {
                if !asked {
                    pause = None;
                    continue;
                }
                // send what is already queued, then stop
                let mut rest = Vec::new();
                while let Ok(p) = rx.try_recv() {
                    rest.push(p);
                }
                if !rest.is_empty() {
                    let _ = http.request(Method::POST, &target, concat(rest)).await;
                }
                return;
            }
        };
        let mut batch = vec![first];
        while let Ok(p) = rx.try_recv() {
            batch.push(p);
        }
        let began = tokio::time::Instant::now();
        if let Err(e) = http.request(Method::POST, &target, concat(batch)).await {
            // what it carried may be lost with it: from when it began
            posting.set(Some(began));
            // the session is broken: its reader ends at once instead of at a ping timeout
            let _ = packets.send(Err(e));
            return;
        }
    }
}

fn concat(parts: Vec<Bytes>) -> Bytes {
    if parts.len() == 1 {
        return parts.into_iter().next().unwrap_or_default();
    }
    let mut out = BytesMut::new();
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            out.put_u8(SEPARATOR);
        }
        out.extend_from_slice(p);
    }
    out.freeze()
}

#[cfg(test)]
mod tests;
