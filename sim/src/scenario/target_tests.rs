//! `[target]`: credentials, TLS trust and headers, each error naming its field.

use std::path::Path;

use super::super::resolve::resolve;
use crate::scenario::{Credentials, Overrides, Target};

const GOOD: &str = r#"
[scenario]
name = "t"
duration = "5s"

[[bots]]
role = "operator"
count = 2
"#;

/// `target` (the `[target]` section) before the rest of a valid scenario.
fn with(target: &str) -> String {
    format!("{target}\n{GOOD}")
}

fn plan(src: &str) -> crate::scenario::Plan {
    resolve(Path::new("s.toml"), src, &Overrides::default()).expect("valid")
}

fn credentials(p: &crate::scenario::Plan) -> Credentials {
    match &p.target {
        Target::External { credentials, .. } => credentials.clone(),
        other => panic!("not external: {other:?}"),
    }
}

/// A key or tokens file is relative to the scenario and must exist; a command must not be
/// empty; only one way at a time; `--jwt-private-key` over the file.
#[test]
fn operator_credentials_of_an_external_target() {
    let dir = std::env::temp_dir().join(format!("sim-target-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::write(dir.join("key.pem"), "k").expect("write");
    let scenario = dir.join("s.toml");
    let load = |target: &str, o: &Overrides| resolve(&scenario, &with(target), o);
    let base = "[target]\nurl = \"http://127.0.0.1:9/chat\"\n";
    let p = load(
        &format!("{base}jwt_private_key_file = \"key.pem\""),
        &Overrides::default(),
    )
    .expect("valid");
    assert_eq!(
        credentials(&p),
        Credentials::PrivateKey(dir.join("key.pem"))
    );
    let p = load(
        &format!("{base}tokens_file = \"key.pem\""),
        &Overrides::default(),
    )
    .expect("ok");
    assert_eq!(
        credentials(&p),
        Credentials::TokensFile(dir.join("key.pem"))
    );
    let p = plan(&with(&format!(
        "{base}token_command = \"idp-token $SIM_OPERATOR_ID\""
    )));
    assert_eq!(
        credentials(&p),
        Credentials::Command("idp-token $SIM_OPERATOR_ID".into())
    );
    let flag = Overrides {
        jwt_private_key: Some(dir.join("key.pem")),
        ..Overrides::default()
    };
    let p = load(&format!("{base}jwt_secret = \"s\""), &flag).expect("valid");
    assert_eq!(
        credentials(&p),
        Credentials::PrivateKey(dir.join("key.pem"))
    );
    for (extra, field, says) in [
        (
            "jwt_private_key_file = \"nope.pem\"",
            "target.jwt_private_key_file",
            "no such file",
        ),
        (
            "tokens_file = \"nope.csv\"",
            "target.tokens_file",
            "no such file",
        ),
        ("token_command = \" \"", "target.token_command", "is empty"),
        (
            "jwt_secret = \"s\"\ntokens_file = \"key.pem\"",
            "target.tokens_file",
            "choose one way",
        ),
    ] {
        let e = load(&format!("{base}{extra}"), &Overrides::default())
            .expect_err(field)
            .to_string();
        assert!(e.contains(field) && e.contains(says), "{extra}: {e}");
    }
    let missing = Overrides {
        jwt_private_key: Some(dir.join("nope.pem")),
        ..Overrides::default()
    };
    let e = load(base, &missing).expect_err("no key").to_string();
    assert!(
        e.contains("--jwt-private-key") && e.contains("no such file"),
        "{e}"
    );
    let e = resolve(&scenario, GOOD, &flag)
        .expect_err("embedded")
        .to_string();
    assert!(e.contains("external target"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// `[target] ca_file`, `insecure` and `headers`: checked at load, each error naming its
/// field; `--insecure` over the file.
#[test]
fn tls_trust_and_headers_of_an_external_target() {
    let base = "[target]\nurl = \"https://localhost:8443/chat\"\njwt_secret = \"x\"\n";
    let p = plan(&with(&format!(
        "{base}insecure = true\n[target.headers]\nAuthorization = \"Bearer abc\"\n"
    )));
    let Target::External { reach, .. } = p.target else {
        panic!("external")
    };
    assert_eq!(reach.trust, wire::tls::Trust::Insecure);
    assert_eq!(
        reach.headers,
        vec![("Authorization".into(), "Bearer abc".into())]
    );
    for (extra, field, says) in [
        (
            "ca_file = \"no/such.pem\"\n",
            "target.ca_file",
            "no such file",
        ),
        (
            "[target.headers]\n\"Bad Name\" = \"x\"\n",
            "target.headers.Bad Name",
            "not an HTTP header name",
        ),
        (
            "[target.headers]\nHost = \"x\"\n",
            "target.headers.Host",
            "set by the client",
        ),
    ] {
        let e = resolve(
            Path::new("s.toml"),
            &with(&format!("{base}{extra}")),
            &Overrides::default(),
        )
        .expect_err(field)
        .to_string();
        assert!(e.contains(field) && e.contains(says), "{e}");
    }
    let o = Overrides {
        insecure: true,
        ..Overrides::default()
    };
    let p = resolve(Path::new("s.toml"), &with(base), &o).expect("valid");
    assert!(
        matches!(p.target, Target::External { ref reach, .. } if reach.trust == wire::tls::Trust::Insecure)
    );
}
