//! The WebSocket upgrade of one leg (plain or TLS): the HTTP request with the client's
//! headers and cookies, the `101` answer checked, and the stream split into its two halves.

use std::sync::Arc;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tungstenite::handshake::client::generate_key;
use tungstenite::handshake::derive_accept_key;

use super::{Outbox, READ_BUFFER_BYTES, Reader};
use crate::WireError;
use crate::dial::{Dialer, Stream};
use crate::packet::clip;
use crate::tls::Records;

/// Upgrades `stream` to a WebSocket at `target` and splits it.
pub(crate) async fn open(
    mut stream: Stream,
    dialer: &Dialer,
    target: &str,
) -> Result<(Reader, Arc<Outbox>), WireError> {
    let key = generate_key();
    let mut request = format!(
        "GET {target} HTTP/1.1\r\nHost: {}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {key}\r\n",
        dialer.endpoint.host
    );
    for (name, value) in dialer.headers(target) {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).await?;
    stream.flush().await?;
    let mut buf = BytesMut::with_capacity(READ_BUFFER_BYTES);
    let head_len = loop {
        if stream.read_buf(&mut buf).await? == 0 {
            return Err(WireError::Io(
                "closed during the WebSocket handshake".into(),
            ));
        }
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut response = httparse::Response::new(&mut headers);
        match response.parse(&buf) {
            Ok(httparse::Status::Complete(len)) => {
                dialer.keep_cookies(
                    target,
                    response
                        .headers
                        .iter()
                        .filter(|h| h.name.eq_ignore_ascii_case("set-cookie"))
                        .map(|h| h.value),
                );
                let status = response.code.unwrap_or(0);
                if status != 101 {
                    let body = String::from_utf8_lossy(&buf[len..]);
                    return Err(WireError::Http {
                        status,
                        body: clip(&body).to_owned(),
                    });
                }
                let accept = response
                    .headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case("sec-websocket-accept"))
                    .map(|h| h.value);
                if accept != Some(derive_accept_key(key.as_bytes()).as_bytes()) {
                    return Err(WireError::Protocol("bad Sec-WebSocket-Accept".into()));
                }
                break len;
            }
            Ok(httparse::Status::Partial) if buf.len() < 16 * 1024 => {}
            Ok(httparse::Status::Partial) => {
                return Err(WireError::Protocol("handshake answer too long".into()));
            }
            Err(e) => return Err(WireError::Protocol(format!("handshake answer: {e}"))),
        }
    };
    // the server may have sent its first frames in the same segment as its answer
    buf.advance(head_len);
    let (tcp, tls) = match stream {
        Stream::Plain(tcp) => (tcp, None),
        Stream::Tls(tls) => {
            let (tcp, conn) = tls.into_inner();
            let records = Records::new(conn);
            // records already opened may hold frames the read above did not take
            records.open(&mut BytesMut::new(), &mut buf)?;
            (
                tcp,
                Some((records, BytesMut::with_capacity(READ_BUFFER_BYTES))),
            )
        }
    };
    let (read, write) = tcp.into_split();
    let outbox = Outbox::new(write, tls.as_ref().map(|(r, _)| r.clone()));
    Ok((
        Reader {
            half: read,
            buf,
            fragments: None,
            tls,
        },
        outbox,
    ))
}
