//! TLS for `https://` and `wss://` endpoints (rustls on ring): which certificates a client
//! trusts, one session cache per client so that its reconnects resume as a browser's do,
//! and the record layer of a WebSocket whose frames leave with one non-blocking write.

use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use bytes::BytesMut;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{ClientConfig, Resumption};
use rustls::crypto::CryptoProvider;
use rustls::{ClientConnection, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

use crate::WireError;

pub use rustls::ClientConfig as ClientSettings;

/// Sessions a client keeps to resume: a browser's per host; a bot talks to one or a few.
const SESSIONS_PER_CLIENT: usize = 8;

/// Which server certificates are trusted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Trust {
    /// The system's root certificates (`/etc/ssl/certs` on Debian).
    #[default]
    System,
    /// The certificates in a PEM file: a private CA, or a staging server's own certificate.
    CaFile(PathBuf),
    /// Any certificate, unchecked: a self-signed staging server. Nothing is authenticated.
    Insecure,
}

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The CA file could not be read or holds no certificate.
    #[error("{path}: {why}")]
    CaFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        why: String,
    },
    /// The system has no usable root certificate.
    #[error("no system root certificates could be loaded ({0}); give a CA file")]
    NoSystemRoots(String),
    /// rustls refused the configuration.
    #[error("TLS: {0}")]
    Rustls(#[from] rustls::Error),
}

/// A client TLS setup shared by every connection of a run; [`Self::for_client`] gives each
/// simulated browser its own session cache.
#[derive(Debug, Clone)]
pub struct Tls {
    base: Arc<ClientConfig>,
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

impl Tls {
    /// A setup trusting `trust`.
    ///
    /// # Errors
    /// [`TlsError`] when the CA file or the system's roots cannot be read.
    pub fn new(trust: &Trust) -> Result<Self, TlsError> {
        let builder = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?;
        let mut config = match trust {
            Trust::Insecure => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AcceptAny(provider())))
                .with_no_client_auth(),
            Trust::System => builder
                .with_root_certificates(system_roots()?)
                .with_no_client_auth(),
            Trust::CaFile(path) => builder
                .with_root_certificates(roots_from(path)?)
                .with_no_client_auth(),
        };
        // a WebSocket upgrade is HTTP/1.1; say so, as browsers do
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Self {
            base: Arc::new(config),
        })
    }

    /// The configuration for one client (a simulated browser): the same trust, its own
    /// session cache, so that its next connections resume the TLS session.
    pub fn for_client(&self) -> Arc<ClientConfig> {
        let mut config = (*self.base).clone();
        config.resumption = Resumption::in_memory_sessions(SESSIONS_PER_CLIENT);
        Arc::new(config)
    }
}

fn system_roots() -> Result<RootCertStore, TlsError> {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = RootCertStore::empty();
    let (added, _) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        let why = found
            .errors
            .first()
            .map_or_else(|| "none found".to_owned(), ToString::to_string);
        return Err(TlsError::NoSystemRoots(why));
    }
    Ok(roots)
}

fn roots_from(path: &Path) -> Result<RootCertStore, TlsError> {
    let err = |why: String| TlsError::CaFile {
        path: path.to_owned(),
        why,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| err(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| err(e.to_string()))?;
    if certs.is_empty() {
        return Err(err("holds no PEM certificate".into()));
    }
    let mut roots = RootCertStore::empty();
    for c in certs {
        roots
            .add(c)
            .map_err(|e| err(format!("a certificate rustls cannot use: {e}")))?;
    }
    Ok(roots)
}

/// `--insecure`: every certificate passes; signatures are still checked so that the
/// handshake itself is sound.
#[derive(Debug)]
struct AcceptAny(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// The TLS record layer of one WebSocket, shared by its reader and its writer. Writers seal
/// under their outbox's lock, so records leave in the order they were made; the reader
/// only opens records, and asks the outbox to send what the session must answer.
#[derive(Clone)]
pub(crate) struct Records(Arc<Mutex<ClientConnection>>);

fn tls_error(e: &rustls::Error) -> WireError {
    WireError::Io(format!("TLS: {e}"))
}

impl Records {
    pub(crate) fn new(conn: ClientConnection) -> Self {
        Self(Arc::new(Mutex::new(conn)))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ClientConnection> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// `plain` as TLS records, with anything else the session had to send before them.
    pub(crate) fn seal(&self, plain: &[u8]) -> Result<Vec<u8>, WireError> {
        let mut conn = self.lock();
        if !plain.is_empty() {
            conn.writer().write_all(plain)?;
        }
        let mut out = Vec::with_capacity(plain.len() + 64);
        while conn.wants_write() {
            conn.write_tls(&mut out)?;
        }
        Ok(out)
    }

    /// Opens the records in `raw` (consumed) into `plain`. Returns whether the session has
    /// something to send (a key update's answer), and whether the server closed it.
    pub(crate) fn open(
        &self,
        raw: &mut BytesMut,
        plain: &mut BytesMut,
    ) -> Result<(bool, bool), WireError> {
        let mut conn = self.lock();
        let mut closed = false;
        loop {
            if !raw.is_empty() {
                let mut rest: &[u8] = raw;
                let n = conn.read_tls(&mut rest)?;
                let _ = raw.split_to(n);
            }
            let state = conn.process_new_packets().map_err(|e| tls_error(&e))?;
            let ready = state.plaintext_bytes_to_read();
            if ready > 0 {
                let start = plain.len();
                plain.resize(start + ready, 0);
                conn.reader().read_exact(&mut plain[start..])?;
            }
            closed |= state.peer_has_closed();
            if raw.is_empty() || closed {
                return Ok((conn.wants_write(), closed));
            }
        }
    }
}

/// What the first TLS handshake of a connection took, and whether it resumed a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Handshake {
    /// From the TCP connection being open to the session being ready.
    pub took: std::time::Duration,
    /// An earlier session of the same client was resumed (no certificate exchanged).
    pub resumed: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ca_file_without_certificates_is_named() {
        let dir = std::env::temp_dir().join(format!("wire-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").expect("write");
        let e = Tls::new(&Trust::CaFile(empty.clone())).expect_err("refused");
        assert!(e.to_string().contains("empty.pem"), "{e}");
        assert!(e.to_string().contains("no PEM certificate"), "{e}");
        let missing = dir.join("missing.pem");
        let e = Tls::new(&Trust::CaFile(missing)).expect_err("refused");
        assert!(e.to_string().contains("missing.pem"), "{e}");
    }
}
