//! The relay serving TLS itself (`--tls-cert`, `--tls-key`), and the project's client over
//! `https://` on every transport: certificates made here with rcgen, trust from a CA file,
//! the insecure mode, session resumption and the handshake's own time.

mod common;

use std::path::PathBuf;

use common::{Client, SECRET, TestRelay, token};
use relay::protocol::event;
use serde_json::{Value, json};
use wire::tls::{Tls, Trust};
use wire::{Connection, Endpoint, Options, Transport};

/// A certificate for `localhost` and 127.0.0.1 and its key, as PEM files in a new folder.
fn certificate(name: &str) -> (PathBuf, PathBuf) {
    let dir = std::env::temp_dir().join(format!("relay-tls-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let made = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])
        .expect("certificate");
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert, made.cert.pem()).expect("write cert");
    std::fs::write(&key, made.signing_key.serialize_pem()).expect("write key");
    (cert, key)
}

async fn tls_relay(name: &str) -> (TestRelay, PathBuf) {
    let (cert, key) = certificate(name);
    let relay = TestRelay::start_with(|c| {
        c.tls_cert = Some(cert.clone());
        c.tls_key = Some(key);
    })
    .await;
    (relay, cert)
}

fn endpoint(relay: &TestRelay) -> Endpoint {
    Endpoint::parse(&format!("https://localhost:{}/chat", relay.addr.port())).expect("url")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_flows_over_tls_on_every_transport() {
    let (relay, cert) = tls_relay("chat").await;
    let tls = Tls::new(&Trust::CaFile(cert)).expect("trust the test CA");
    for (id, transport) in [Transport::Websocket, Transport::Polling, Transport::Upgrade]
        .into_iter()
        .enumerate()
    {
        let id = id as u64 + 1;
        let options = || Options {
            transport,
            tls: Some(tls.for_client()),
            ..Options::default()
        };
        let mut ann = Client::connect_to(&endpoint(&relay), options())
            .await
            .unwrap_or_else(|e| panic!("{transport:?}: operator connects: {e:?}"));
        ann.emit(
            event::JOIN,
            json!({"role": "operator", "token": token(id, "Ann"), "operatorId": id, "name": "Ann"}),
        );
        let _ = ann
            .emit_with_ack(event::GET_CONNECTED_OPERATORS, Value::Null)
            .await;
        ann.wait_for(event::CONNECTED_OPERATORS_LIST).await;
        let mut visitor = Client::connect_to(&endpoint(&relay), options())
            .await
            .unwrap_or_else(|e| panic!("{transport:?}: visitor connects: {e:?}"));
        let ack = visitor
            .emit_with_ack(event::JOIN, json!({"role": "client", "username": "V"}))
            .await;
        assert!(ack.get("error").is_none(), "{transport:?}: {ack}");
        visitor.emit(
            event::CLIENT_MESSAGE,
            json!({"type": "text", "message": format!("over {transport:?}")}),
        );
        let got = ann.wait_for(event::INCOMING_MESSAGE).await;
        assert_eq!(got["message"], format!("over {transport:?}"), "{got}");
        let ack = ann
            .emit_with_ack(
                event::OPERATOR_MESSAGE,
                json!({"to": visitor.sid, "type": "text", "message": "hello back"}),
            )
            .await;
        assert!(ack["messageId"].is_string(), "{transport:?}: {ack}");
        let back = visitor.wait_for(event::INCOMING_OPERATOR_MESSAGE).await;
        assert_eq!(back["message"], "hello back");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_resumes_its_tls_session_and_times_its_handshake() {
    let (relay, cert) = tls_relay("resume").await;
    let tls = Tls::new(&Trust::CaFile(cert)).expect("trust");
    let browser = tls.for_client();
    let connect = |config| {
        let e = endpoint(&relay);
        async move {
            let options = Options {
                tls: Some(config),
                ..Options::default()
            };
            Connection::connect(&e, options).await.expect("connects")
        }
    };
    let first = connect(browser.clone()).await;
    let hs = first
        .tls_handshake()
        .expect("a TLS connection has a handshake");
    assert!(!hs.resumed, "a first visit has nothing to resume");
    assert!(!hs.took.is_zero());
    first.close().await;
    let again = connect(browser).await;
    assert!(
        again.tls_handshake().expect("handshake").resumed,
        "the same client's next connection resumes its session"
    );
    let stranger = connect(tls.for_client()).await;
    assert!(
        !stranger.tls_handshake().expect("handshake").resumed,
        "another client does not share the first one's sessions"
    );
    let plain = TestRelay::start().await;
    let conn = Connection::connect(&Endpoint::new(plain.addr, "/chat"), Options::default())
        .await
        .expect("plain connects");
    assert_eq!(conn.tls_handshake(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_certificate_is_refused_unless_told_to_trust_any() {
    let (relay, _cert) = tls_relay("trust").await;
    let with = |trust: Trust| Options {
        tls: Some(Tls::new(&trust).expect("setup").for_client()),
        ..Options::default()
    };
    let refused = Connection::connect(&endpoint(&relay), with(Trust::System))
        .await
        .err()
        .expect("a self-signed certificate is not in the system's roots");
    let text = refused.to_string();
    assert!(text.contains("TLS handshake"), "{text}");
    assert!(text.to_lowercase().contains("certificate"), "{text}");
    Connection::connect(&endpoint(&relay), with(Trust::Insecure))
        .await
        .expect("insecure trusts any certificate");
    // a plain client speaking HTTP to a TLS port gets no Socket.IO session
    let plain = Endpoint::new(relay.addr, "/chat");
    assert!(
        Connection::connect(&plain, Options::default())
            .await
            .is_err()
    );
}

#[tokio::test]
async fn unusable_tls_files_are_named() {
    let (cert, key) = certificate("files");
    let mut config = relay::Config::with_secret(SECRET);
    config.tls_cert = Some(cert.clone());
    assert_eq!(config.validate(), Err(relay::ConfigError::HalfTls));
    config.tls_key = Some(cert.with_file_name("missing-key.pem"));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let e = relay::serve(listener, config.clone(), async {})
        .await
        .expect_err("no key");
    assert!(e.to_string().contains("missing-key.pem"), "{e}");
    config.tls_key = Some(cert.clone());
    config.tls_cert = Some(key);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let e = relay::serve(listener, config, async {})
        .await
        .expect_err("a key is no certificate");
    assert!(e.to_string().contains("key.pem"), "{e}");
}
