//! Operator tokens of a run, however the target wants them: signed here (the embedded relay's
//! secret, the team's HS256 secret or RS256/ES256 private key), read from a file of tokens the
//! team's identity provider issued, or printed by the team's command for each operator before
//! the run starts. Each operator's token is made once and kept for its reconnections.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use relay::auth::{Claims, OperatorIdentity, Signer, claims_unverified};

use crate::scenario::Credentials;

/// How long a signed token is valid: longer than any run.
const TOKEN_TTL_SECS: u64 = 24 * 3600;

/// How long `token_command` may take for one operator.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(20);

/// How many `token_command`s run at once.
const COMMANDS_AT_ONCE: usize = 8;

/// Where tokens come from.
enum Source {
    Signer(Signer),
    /// Issued before the run (a file, a command), in order; operators take these identities.
    Issued(Vec<OperatorIdentity>),
}

/// The run's operator tokens.
pub struct Tokens {
    source: Source,
    /// What to check when the target refuses one.
    setting: &'static str,
    made: Mutex<HashMap<u64, String>>,
    /// The `token_command`, run again for tokens about to expire.
    command: Option<String>,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokens")
            .field("setting", &self.setting)
            .finish_non_exhaustive()
    }
}

impl Tokens {
    /// Tokens signed HS256 with `secret` (the embedded relay's).
    pub fn hs256(secret: &str) -> Self {
        Self {
            source: Source::Signer(Signer::hs256(secret.as_bytes())),
            setting: Credentials::Secret(String::new()).setting(),
            made: Mutex::default(),
            command: None,
        }
    }

    /// Tokens as `credentials` say for a run of `operators` operator identities: key and
    /// token files are read here, and a command is run for operators 1 to `operators`.
    ///
    /// # Errors
    /// What is wrong, naming the setting, the file and the line.
    pub async fn load(credentials: &Credentials, operators: usize) -> Result<Self, String> {
        let setting = credentials.setting();
        let mut made = HashMap::new();
        let source = match credentials {
            Credentials::Secret(s) if s.is_empty() => {
                return Err(format!(
                    "no secret to sign operator tokens with: set {setting}, or give the \
                     team's key (--jwt-private-key / [target] jwt_private_key_file), \
                     tokens (tokens_file) or token_command"
                ));
            }
            Credentials::Secret(s) => Source::Signer(Signer::hs256(s.as_bytes())),
            Credentials::PrivateKey(path) => Source::Signer(
                Signer::from_private_key_file(path).map_err(|e| format!("{setting}: {e}"))?,
            ),
            Credentials::TokensFile(path) => {
                let issued = read_tokens_file(path)?;
                let who = issued.iter().map(|(w, _)| w.clone()).collect();
                made.extend(issued.into_iter().map(|(w, t)| (w.operator_id, t)));
                Source::Issued(who)
            }
            Credentials::Command(c) => {
                let issued = run_commands(c, operators).await?;
                let who = issued.iter().map(|(w, _)| w.clone()).collect();
                made.extend(issued.into_iter().map(|(w, t)| (w.operator_id, t)));
                Source::Issued(who)
            }
        };
        Ok(Self {
            source,
            setting,
            made: Mutex::new(made),
            command: match credentials {
                Credentials::Command(c) => Some(c.clone()),
                _ => None,
            },
        })
    }

    /// For a `token_command`: runs it again every `period` for each operator whose token
    /// expires within `margin`, so reconnections late in a long run present a valid token.
    /// The task ends with the tokens; nothing to do for other sources.
    pub fn keep_fresh(self: &Arc<Self>, period: Duration, margin: Duration) {
        let Some(command) = self.command.clone() else {
            return;
        };
        let tokens = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(period).await;
                let Some(tokens) = tokens.upgrade() else {
                    return;
                };
                tokens.refresh(&command, margin).await;
            }
        });
    }

    async fn refresh(&self, command: &str, margin: Duration) {
        let soon = unix_now().saturating_add(margin.as_secs());
        let due: Vec<u64> = self
            .made
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter(|(_, t)| expires_at(t).is_some_and(|exp| exp <= soon))
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            match run_command(command, id).await {
                Ok((_, token)) => {
                    self.made
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .insert(id, token);
                }
                Err(why) => tracing::warn!(%why, "an expiring operator token could not be renewed"),
            }
        }
    }

    /// What to check when the target refuses a token.
    pub fn setting(&self) -> &'static str {
        self.setting
    }

    /// The identities of a tokens file, in its order: operators take them. `None` when any
    /// identity can have a token.
    pub fn identities(&self) -> Option<&[OperatorIdentity]> {
        match &self.source {
            Source::Issued(who) => Some(who),
            Source::Signer(_) => None,
        }
    }

    /// The identities of a tokens file left for the adversary once `operators` operators took
    /// theirs: its witness first, then the ones its attacks use in turn. `None` when any
    /// identity can have a token.
    ///
    /// # Errors
    /// The file has too few for the operators, or (with an `adversary`) for it too.
    pub fn spare(
        &self,
        operators: usize,
        adversary: bool,
    ) -> Result<Option<&[OperatorIdentity]>, String> {
        let Some(issued) = self.identities() else {
            return Ok(None);
        };
        let needed = operators + if adversary { 2 } else { 0 };
        if issued.len() < needed {
            return Err(format!(
                "{} has tokens for {} operators; the scenario needs {needed} ({operators} \
                 operators{})",
                self.setting,
                issued.len(),
                if adversary {
                    ", and 2 for the adversary: its witness and its insiders"
                } else {
                    ""
                }
            ));
        }
        Ok(Some(&issued[operators..]))
    }

    /// What signs tokens here, when something does (the adversary's expired tokens need it).
    pub fn signer(&self) -> Option<&Signer> {
        match &self.source {
            Source::Signer(s) => Some(s),
            Source::Issued(_) => None,
        }
    }

    /// `who`'s token: made once, then kept.
    ///
    /// # Errors
    /// No token was issued for `who`; in words naming the setting.
    pub fn token(&self, who: &OperatorIdentity) -> Result<String, String> {
        if let Some(t) = self
            .made
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&who.operator_id)
        {
            return Ok(t.clone());
        }
        let token = match &self.source {
            Source::Signer(s) => s.sign(&Claims::new(who, TOKEN_TTL_SECS)),
            Source::Issued(_) => {
                return Err(format!(
                    "{}: no token for operator {}",
                    self.setting, who.operator_id
                ));
            }
        };
        self.made
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(who.operator_id, token.clone());
        Ok(token)
    }
}

/// `id,name,token` lines (blank lines and `#` comments skipped); each token's `sub` and
/// `name` must be the line's.
fn read_tokens_file(path: &Path) -> Result<Vec<(OperatorIdentity, String)>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("[target] tokens_file {}: {e}", path.display()))?;
    let mut out: Vec<(OperatorIdentity, String)> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let at = || format!("{}:{}", path.display(), i + 1);
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut parts = line.splitn(3, ',').map(str::trim);
        let (Some(id), Some(name), Some(token)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(format!("{}: expected `id,name,token`", at()));
        };
        let operator_id = id
            .parse::<u64>()
            .map_err(|_| format!("{}: the id {id:?} is not a number", at()))?;
        if name.is_empty() || token.is_empty() {
            return Err(format!("{}: expected `id,name,token`", at()));
        }
        if out.iter().any(|(w, _)| w.operator_id == operator_id) {
            return Err(format!("{}: operator {operator_id} is listed twice", at()));
        }
        let who = OperatorIdentity {
            operator_id,
            name: name.to_owned(),
        };
        let claimed = claims_of(token).map_err(|why| format!("{}: {why}", at()))?;
        if claimed != who {
            return Err(format!(
                "{}: the token is for operator {} ({:?}), not {} ({:?})",
                at(),
                claimed.operator_id,
                claimed.name,
                who.operator_id,
                who.name
            ));
        }
        out.push((who, token.to_owned()));
    }
    if out.is_empty() {
        return Err(format!(
            "[target] tokens_file {}: no tokens in it",
            path.display()
        ));
    }
    Ok(out)
}

/// A token's `exp`, read without the key.
fn expires_at(token: &str) -> Option<u64> {
    use base64::Engine as _;
    let payload = token.split('.').nth(1)?;
    let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()?;
    serde_json::from_slice::<serde_json::Value>(&json)
        .ok()?
        .get("exp")?
        .as_u64()
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Who a token says it speaks for, as far as can be told without the key.
fn claims_of(token: &str) -> Result<OperatorIdentity, String> {
    claims_unverified(token).map_err(|e| format!("the token is unusable: {e}"))
}

/// Runs `command` for operators 1 to `operators`, a few at once.
async fn run_commands(
    command: &str,
    operators: usize,
) -> Result<Vec<(OperatorIdentity, String)>, String> {
    let ids: Vec<u64> = (1..=operators.max(1) as u64).collect();
    let mut out = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(COMMANDS_AT_ONCE) {
        let mut runs = tokio::task::JoinSet::new();
        for &id in chunk {
            let command = command.to_owned();
            runs.spawn(async move { run_command(&command, id).await });
        }
        while let Some(issued) = runs.join_next().await {
            out.push(issued.map_err(|e| format!("[target] token_command: {e}"))??);
        }
    }
    out.sort_by_key(|(who, _)| who.operator_id);
    Ok(out)
}

/// Runs `command` for operator `id`; its standard output, trimmed, is the token, whose `sub`
/// must be `id` and whose `name` the operator takes.
async fn run_command(command: &str, id: u64) -> Result<(OperatorIdentity, String), String> {
    let fail = |why: String| format!("[target] token_command for operator {id}: {why}");
    let child = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(command)
        .env("SIM_OPERATOR_ID", id.to_string())
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(COMMAND_TIMEOUT, child)
        .await
        .map_err(|_| fail(format!("no answer in {COMMAND_TIMEOUT:?}")))?
        .map_err(|e| fail(format!("cannot run sh: {e}")))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(fail(format!("{} {}", out.status, err.trim())));
    }
    let token = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    if token.is_empty() || token.contains(char::is_whitespace) {
        return Err(fail("it must print one token and nothing else".into()));
    }
    let who = claims_of(&token).map_err(fail)?;
    if who.operator_id != id {
        return Err(fail(format!(
            "the token is for operator {}",
            who.operator_id
        )));
    }
    Ok((who, token))
}

#[cfg(test)]
mod tests {
    use super::*;
    use relay::auth::sign_hs256;

    fn who(id: u64, name: &str) -> OperatorIdentity {
        OperatorIdentity {
            operator_id: id,
            name: name.into(),
        }
    }

    fn file(text: &str) -> (tempdir::Dir, std::path::PathBuf) {
        let dir = tempdir::Dir::new();
        let path = dir.path().join("tokens.csv");
        std::fs::write(&path, text).expect("write");
        (dir, path)
    }

    mod tempdir {
        /// A folder removed on drop.
        pub struct Dir(std::path::PathBuf);
        impl Dir {
            pub fn new() -> Self {
                let p = std::env::temp_dir().join(format!(
                    "sim-tokens-{}-{:x}",
                    std::process::id(),
                    rand::random::<u64>()
                ));
                std::fs::create_dir_all(&p).expect("mkdir");
                Self(p)
            }
            pub fn path(&self) -> &std::path::Path {
                &self.0
            }
        }
        impl Drop for Dir {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }
    }

    fn token(id: u64, name: &str) -> String {
        sign_hs256(b"k", &Claims::new(&who(id, name), 60))
    }

    #[tokio::test]
    async fn a_tokens_file_gives_its_identities_and_their_tokens() {
        let (a, b) = (token(7, "Ann"), token(9, "Bo Li"));
        let (_d, path) = file(&format!(
            "# issued by the IdP\n7,Ann,{a}\n\n9, Bo Li ,{b}\n"
        ));
        let tokens = Tokens::load(&Credentials::TokensFile(path), 1)
            .await
            .expect("loads");
        assert_eq!(
            tokens.identities(),
            Some(&[who(7, "Ann"), who(9, "Bo Li")][..])
        );
        assert_eq!(tokens.token(&who(9, "Bo Li")), Ok(b));
        let e = tokens.token(&who(8, "X")).expect_err("not issued");
        assert!(e.contains("tokens_file") && e.contains('8'), "{e}");
        assert_eq!(tokens.spare(1, false), Ok(Some(&[who(9, "Bo Li")][..])));
        let e = tokens
            .spare(1, true)
            .expect_err("too few for the adversary");
        assert!(
            e.contains("tokens for 2 operators; the scenario needs 3"),
            "{e}"
        );
    }

    #[tokio::test]
    async fn a_bad_tokens_file_is_refused_naming_the_line() {
        let ann = token(7, "Ann");
        for (text, says) in [
            ("7,Ann\n".to_owned(), ":1: expected `id,name,token`"),
            (format!("x,Ann,{ann}\n"), ":1: the id \"x\" is not a number"),
            (
                format!("7,Ann,{ann}\n7,Ann,{ann}\n"),
                ":2: operator 7 is listed twice",
            ),
            (
                format!("\n8,Ann,{ann}\n"),
                ":2: the token is for operator 7",
            ),
            ("7,Ann,not-a-jwt\n".to_owned(), ":1: the token is unusable"),
            ("# nothing\n".to_owned(), "no tokens in it"),
        ] {
            let (_d, path) = file(&text);
            let e = Tokens::load(&Credentials::TokensFile(path), 1)
                .await
                .expect_err(&text);
            assert!(e.contains(says), "{text:?}: {e}");
        }
    }

    /// The command runs once per operator, before the run; each operator takes the name its
    /// token carries.
    #[tokio::test]
    async fn a_command_prints_each_operators_token() {
        let (d, _) = file("");
        for (id, name) in [(1, "Cy"), (2, "Di Ng")] {
            std::fs::write(d.path().join(id.to_string()), token(id, name)).expect("write");
        }
        let command = format!("cat {}/$SIM_OPERATOR_ID", d.path().display());
        let tokens = Tokens::load(&Credentials::Command(command.clone()), 2)
            .await
            .expect("loads");
        assert_eq!(
            tokens.identities(),
            Some(&[who(1, "Cy"), who(2, "Di Ng")][..])
        );
        assert_eq!(tokens.token(&who(2, "Di Ng")), Ok(token(2, "Di Ng")));
        let e = Tokens::load(&Credentials::Command(command), 3)
            .await
            .expect_err("no file for 3");
        assert!(e.contains("token_command for operator 3"), "{e}");
        let e = Tokens::load(&Credentials::Command(format!("echo {}", token(5, "Ed"))), 1)
            .await
            .expect_err("someone else's");
        assert!(e.contains("is for operator 5"), "{e}");
    }

    /// A command's token about to expire is fetched again while the run goes on.
    #[tokio::test]
    async fn a_commands_expiring_token_is_renewed() {
        let (d, _) = file("");
        let path = d.path().join("1");
        let short = sign_hs256(b"k", &Claims::new(&who(1, "Cy"), 30));
        std::fs::write(&path, &short).expect("write");
        let command = format!("cat {}/$SIM_OPERATOR_ID", d.path().display());
        let tokens = Arc::new(
            Tokens::load(&Credentials::Command(command), 1)
                .await
                .expect("loads"),
        );
        let long = token(1, "Cy");
        std::fs::write(&path, &long).expect("write");
        tokens.keep_fresh(Duration::from_millis(20), Duration::from_secs(40));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while tokens.token(&who(1, "Cy")).as_deref() != Ok(long.as_str()) {
            assert!(tokio::time::Instant::now() < deadline, "not renewed");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(expires_at(&short).map(|e| e > 0), Some(true));
        assert_eq!(expires_at("not.a-token"), None);
    }

    #[tokio::test]
    async fn no_secret_and_a_bad_key_are_refused_naming_the_setting() {
        let e = Tokens::load(&Credentials::Secret(String::new()), 1)
            .await
            .expect_err("empty");
        assert!(
            e.contains("jwt_secret") && e.contains("jwt_private_key_file"),
            "{e}"
        );
        let (_d, path) = file("not a key");
        let e = Tokens::load(&Credentials::PrivateKey(path), 1)
            .await
            .expect_err("not a key");
        assert!(e.contains("--jwt-private-key"), "{e}");
    }
}
