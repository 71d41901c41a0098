//! The team's own tokens: a relay that trusts an identity provider's RS256 public key or
//! ES256 JWKS accepts the tokens the simulator signs with the matching private key, and
//! refuses the adversary's bad tokens; tokens issued beforehand (a file, a command) stand in
//! for a key; a key the target does not trust stops the run at the preflight, named.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use relay::auth::{Claims, OperatorIdentity, sign_hs256};
use sim::run::{RunError, RunOptions, run};

/// Operators, visitors and the adversary's token attacks (`attacks`), over quickly.
fn scenario(dir: &Path, target: &str, attacks: &[&str]) -> PathBuf {
    let attacks: Vec<String> = attacks.iter().map(|a| format!("{a:?}")).collect();
    let text = format!(
        r#"{target}
[scenario]
name = "tokens"
duration = "7s"   # room for the witness and every attack on a loaded machine
drain = "2s"

[[bots]]
role = "operator"
count = 3
messages_per_minute = 30

[[bots]]
role = "client"
count = 8
messages_per_minute = 20

[[bots]]
role = "adversary"
count = 1
attacks = [{}]

[thresholds]
attacks.succeeded = 0
attacks.not_judged = 0
violations = 0
"#,
        attacks.join(", ")
    );
    let path = dir.join("tokens.toml");
    std::fs::write(&path, text).expect("write scenario");
    path
}

const TOKEN_ATTACKS: [&str; 4] = [
    "forged_token",
    "expired_token",
    "alg_none_token",
    "wrong_secret_token",
];

/// An in-process relay whose operators' tokens are checked as `keys` says.
async fn relay_trusting(
    keys: impl FnOnce(&mut relay::Config),
) -> (String, tokio::sync::oneshot::Sender<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let mut config = relay::Config::with_secret(common::SECRET);
    config.rate_limit_per_minute = 600;
    keys(&mut config);
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(relay::serve(listener, config, async move {
        let _ = rx.await;
    }));
    (format!("http://{addr}/chat"), tx)
}

/// An RSA key pair made by `openssl`: (private, public) PEM files.
fn rsa_key(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let (private, public) = (
        dir.join(format!("{name}.pem")),
        dir.join(format!("{name}.pub.pem")),
    );
    let ok = Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
        ])
        .arg(&private)
        .status()
        .is_ok_and(|s| s.success())
        && Command::new("openssl")
            .args(["pkey", "-pubout", "-in"])
            .arg(&private)
            .arg("-out")
            .arg(&public)
            .status()
            .is_ok_and(|s| s.success());
    assert!(ok, "openssl makes an RSA key");
    (private, public)
}

/// Runs `target` with `attacks` into `dir/out`: it passes, and every attack was blocked.
async fn passes_with_attacks_blocked(dir: &Path, target: &str, attacks: &[&str], out: &str) {
    let r = run(RunOptions::new(
        scenario(dir, target, attacks),
        dir.join(out),
    ))
    .await
    .expect("the run happens")
    .result;
    assert_passed_with_attacks_blocked(&r, attacks);
}

/// An HS256 token for operator `id` called `name`, signed with the test relays' secret.
fn issued(id: u64, name: &str) -> String {
    let who = OperatorIdentity {
        operator_id: id,
        name: name.to_owned(),
    };
    sign_hs256(common::SECRET.as_bytes(), &Claims::new(&who, 3600))
}

fn assert_passed_with_attacks_blocked(r: &reports::model::RunResult, attacks: &[&str]) {
    let failed: Vec<_> = r.thresholds.iter().filter(|t| !t.passed).collect();
    assert!(
        r.passed,
        "failed: {failed:?}\nexamples: {:?}\nattacks: {:?}",
        r.examples, r.attacks
    );
    assert!(r.counters["delivered"] >= 20, "{:?}", r.counters);
    for a in attacks {
        let report = r
            .attacks
            .iter()
            .find(|x| x.name == *a)
            .unwrap_or_else(|| panic!("{a} reported"));
        assert!(report.blocked > 0 && report.succeeded == 0, "{report:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_teams_rs256_key_signs_tokens_the_relay_accepts_and_bad_tokens_stay_out() {
    let dir = common::temp_dir("tokens-rs256");
    let (private, public) = rsa_key(&dir, "idp");
    let (url, _stop) = relay_trusting(|c| {
        c.jwt_secret = None;
        c.jwt_public_key = Some(public);
    })
    .await;
    let path = scenario(&dir, &format!("[target]\nurl = {url:?}"), &TOKEN_ATTACKS);
    let mut opts = RunOptions::new(&path, dir.join("out"));
    opts.overrides.jwt_private_key = Some(private);
    let r = run(opts).await.expect("the run happens").result;
    assert_passed_with_attacks_blocked(&r, &TOKEN_ATTACKS);

    // a key the relay does not trust: said once, before any bot starts
    let (stranger, _) = rsa_key(&dir, "stranger");
    let mut opts = RunOptions::new(&path, dir.join("stranger"));
    opts.overrides.jwt_private_key = Some(stranger);
    match run(opts).await {
        Err(RunError::Preflight { reason, .. }) => {
            assert!(reason.contains("refused our operator"), "{reason}");
            assert!(reason.contains("--jwt-private-key"), "{reason}");
            assert!(reason.contains("jwt_private_key_file"), "{reason}");
        }
        other => panic!("an untrusted key was not named: {:?}", other.err()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn es256_tokens_pass_a_relay_that_reads_the_identity_providers_jwks() {
    let dir = common::temp_dir("tokens-es256");
    let key = rcgen::KeyPair::generate().expect("P-256 key");
    let private = dir.join("es256.pem");
    std::fs::write(&private, key.serialize_pem()).expect("write key");
    let point = key.public_key_raw();
    let (x, y) = (&point[1..33], &point[33..65]);
    let (_, other_public) = rsa_key(&dir, "other");
    let other_der = std::fs::read_to_string(&other_public).expect("pem");
    assert!(other_der.contains("PUBLIC KEY"));
    // the set an identity provider publishes: our EC key beside an RSA key of someone else's
    let modulus = Command::new("openssl")
        .args(["rsa", "-pubin", "-modulus", "-noout", "-in"])
        .arg(&other_public)
        .output()
        .expect("openssl");
    let hex = String::from_utf8_lossy(&modulus.stdout);
    let hex = hex.trim().trim_start_matches("Modulus=");
    let n: Vec<u8> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"))
        .collect();
    let jwks = serde_json::json!({"keys": [
        {"kty": "RSA", "kid": "other", "use": "sig", "alg": "RS256",
         "n": URL_SAFE_NO_PAD.encode(n), "e": "AQAB"},
        {"kty": "EC", "kid": "ours", "use": "sig", "alg": "ES256", "crv": "P-256",
         "x": URL_SAFE_NO_PAD.encode(x), "y": URL_SAFE_NO_PAD.encode(y)},
    ]});
    let jwks_file = dir.join("jwks.json");
    std::fs::write(&jwks_file, jwks.to_string()).expect("write jwks");
    let (url, _stop) = relay_trusting(|c| {
        c.jwt_secret = None;
        c.jwks_file = Some(jwks_file);
    })
    .await;
    let target = format!("[target]\nurl = {url:?}\njwt_private_key_file = \"es256.pem\"");
    passes_with_attacks_blocked(&dir, &target, &TOKEN_ATTACKS, "out").await;
}

/// Tokens issued beforehand, from a file and from a command: operators take the identities
/// the tokens carry, the adversary its spare ones; an expired token cannot be made without
/// the key, so that attack is left out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_issued_in_a_file_or_by_a_command_stand_in_for_a_key() {
    let dir = common::temp_dir("tokens-issued");
    let (url, _stop) = relay_trusting(|_| {}).await;
    let attacks = ["forged_token", "alg_none_token", "wrong_secret_token"];
    std::fs::create_dir_all(dir.join("idp")).expect("mkdir");
    let mut lines = String::from("# id,name,token\n");
    for id in 101..=105u64 {
        let name = format!("Agent {id}");
        lines.push_str(&format!("{id},{name},{}\n", issued(id, &name)));
    }
    std::fs::write(dir.join("tokens.csv"), &lines).expect("write tokens");
    let target = format!("[target]\nurl = {url:?}\ntokens_file = \"tokens.csv\"");
    passes_with_attacks_blocked(&dir, &target, &attacks, "file").await;

    for id in 1..=5u64 {
        let token = issued(id, &format!("Staff {id}"));
        std::fs::write(dir.join("idp").join(id.to_string()), token).expect("write token");
    }
    let command = format!("cat {}/idp/$SIM_OPERATOR_ID", dir.display());
    let target = format!("[target]\nurl = {url:?}\ntoken_command = {command:?}");
    passes_with_attacks_blocked(&dir, &target, &attacks, "command").await;

    // one token short of the adversary's two
    let short: String = lines.lines().take(5).map(|l| format!("{l}\n")).collect();
    std::fs::write(dir.join("tokens.csv"), short).expect("write tokens");
    let target = format!("[target]\nurl = {url:?}\ntokens_file = \"tokens.csv\"");
    match run(RunOptions::new(
        scenario(&dir, &target, &attacks),
        dir.join("short"),
    ))
    .await
    {
        Err(RunError::Preflight { reason, .. }) => {
            assert!(
                reason.contains("tokens_file has tokens for 4 operators"),
                "{reason}"
            );
        }
        other => panic!("too few tokens were not named: {:?}", other.err()),
    }
}
