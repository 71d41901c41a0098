//! One direction of a proxied connection: read, apply the toxics in force, write. Reading
//! and writing run apart so a latency toxic delays bytes without holding up the reader.

use std::time::Duration;

use bytes::Bytes;
use rand::RngExt;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::tcp::{ReadHalf, WriteHalf};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::{Control, Cut};
use crate::scenario::ToxicKind;

/// Bytes read at once.
const CHUNK: usize = 16 * 1024;

/// Forwards `from` to `to` until either ends; `Some` when a toxic cut the connection.
pub(super) async fn run(
    mut from: ReadHalf<'_>,
    mut to: WriteHalf<'_>,
    control: &Control,
    id: u64,
    opened: Instant,
    upstream: bool,
) -> Option<Cut> {
    let (tx, mut rx) = mpsc::unbounded_channel::<(Instant, Option<Bytes>)>();
    let read = async move {
        let mut buf = vec![0u8; CHUNK];
        let mut forwarded = 0u64;
        let mut last = Instant::now();
        let mut blackholed = false;
        loop {
            let read = if blackholed {
                // a half-open spell that ends leaves a stream missing bytes: close it then
                tokio::select! {
                    r = from.read(&mut buf) => r,
                    () = lapsed(control, id, opened, upstream) => return Some(Cut::Close),
                }
            } else {
                from.read(&mut buf).await
            };
            let n = match read {
                Ok(0) | Err(_) => {
                    let _ = tx.send((last, None));
                    return None;
                }
                Ok(n) => n,
            };
            let now = Instant::now();
            let toxics = control.on(id, opened, upstream);
            let held = toxics
                .iter()
                .any(|(k, _)| matches!(k, ToxicKind::Timeout { .. }));
            if blackholed && !held {
                // the spell is over, but bytes went missing: nothing more may pass
                return Some(Cut::Close);
            }
            if held {
                // half-open: nothing goes through, nothing is closed
                if !blackholed {
                    blackholed = true;
                    control.note_cut(id);
                }
                continue;
            }
            let mut chunk = &buf[..n];
            let mut cut = None;
            let mut delay = Duration::ZERO;
            for (kind, _) in &toxics {
                match *kind {
                    ToxicKind::LimitData { bytes } => {
                        let room = bytes.saturating_sub(forwarded);
                        if (chunk.len() as u64) >= room {
                            chunk = &chunk[..usize::try_from(room).unwrap_or(chunk.len())];
                            cut = Some(Cut::Close);
                        }
                    }
                    ToxicKind::Latency { latency, jitter } => {
                        let spread = jitter.as_secs_f64() * rand::rng().random_range(-1.0..1.0);
                        delay += Duration::from_secs_f64((latency.as_secs_f64() + spread).max(0.0));
                    }
                    _ => {}
                }
            }
            forwarded += chunk.len() as u64;
            last = (now + delay).max(last);
            if !chunk.is_empty()
                && tx
                    .send((last, Some(Bytes::copy_from_slice(chunk))))
                    .is_err()
            {
                return None; // the writer failed: this direction is over
            }
            if cut.is_some() {
                control.note_cut(id);
                return cut; // the writer sends what was let through, then the channel ends
            }
        }
    };
    let write = async {
        while let Some((at, data)) = rx.recv().await {
            tokio::time::sleep_until(at).await;
            let toxics = control.on(id, opened, upstream);
            let Some(bytes) = data else {
                for (kind, _) in &toxics {
                    if let ToxicKind::SlowClose { delay } = kind {
                        tokio::time::sleep(*delay).await;
                    }
                }
                let _ = to.shutdown().await;
                return;
            };
            if write(&mut to, &bytes, &toxics).await.is_err() {
                return;
            }
        }
    };
    let (cut, ()) = tokio::join!(read, write);
    cut
}

/// Writes `bytes`, sliced and paced as the toxics say.
async fn write(
    to: &mut WriteHalf<'_>,
    bytes: &[u8],
    toxics: &[(ToxicKind, Instant)],
) -> std::io::Result<()> {
    let mut slicer = None;
    let mut rate = None;
    for (kind, _) in toxics {
        match *kind {
            ToxicKind::Slicer {
                average_size,
                size_variation,
                delay,
            } => slicer = Some((average_size, size_variation, delay)),
            ToxicKind::Bandwidth { bytes_per_s } => rate = Some(bytes_per_s),
            _ => {}
        }
    }
    let mut rest = bytes;
    while !rest.is_empty() {
        let mut size = match slicer {
            Some((average, variation, _)) => {
                let low = average - variation;
                let high = average + variation;
                rand::rng().random_range(low..=high).max(1)
            }
            None => rest.len(),
        };
        if let Some(rate) = rate {
            // 50 ms worth at a time, each waiting its share before it leaves
            size = size.min(usize::try_from(rate / 20).unwrap_or(usize::MAX).max(1));
        }
        let (piece, tail) = rest.split_at(size.min(rest.len()));
        if let Some(rate) = rate {
            tokio::time::sleep(Duration::from_secs_f64(piece.len() as f64 / rate as f64)).await;
        }
        to.write_all(piece).await?;
        rest = tail;
        if let (Some((_, _, delay)), false) = (slicer, rest.is_empty()) {
            tokio::time::sleep(delay).await;
        }
    }
    Ok(())
}

/// Resolves once no timeout toxic holds connection `id` in direction `upstream` any more.
async fn lapsed(control: &Control, id: u64, opened: Instant, upstream: bool) {
    loop {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let held = control
            .on(id, opened, upstream)
            .iter()
            .any(|(k, _)| matches!(k, ToxicKind::Timeout { .. }));
        if !held {
            return;
        }
    }
}
