//! The reference relay as a child process of the simulator (`[target] process = true`): the
//! parent re-runs its own binary as `sim relay`, which prints the address it listens on and
//! serves until its parent goes away.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, BufReader};
use tokio::process::{Child, Command};

/// How long the child gets to say where it listens.
const START_TIMEOUT: Duration = Duration::from_secs(15);

/// The first line the child prints: this, then the address.
const LISTENING: &str = "listening on ";

/// A relay running as a child process; killed when dropped.
pub struct RelayProcess {
    child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
}

/// The binary that runs `sim relay`: `SIM_RELAY_EXE`, else this one when it is `sim`.
fn executable() -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os("SIM_RELAY_EXE") {
        return Ok(PathBuf::from(p));
    }
    let me = std::env::current_exe().map_err(|e| format!("cannot find this program: {e}"))?;
    if me.file_stem().is_some_and(|s| s == "sim") {
        Ok(me)
    } else {
        Err(format!(
            "{} is not the sim binary, so it cannot start the relay process: set SIM_RELAY_EXE \
             to the sim binary",
            me.display()
        ))
    }
}

impl RelayProcess {
    /// Starts `sim relay` with `config` (its listening port is chosen by the child) and
    /// waits until it says where it listens.
    ///
    /// # Errors
    /// Why it did not start, in words.
    pub async fn start(config: &relay::Config) -> Result<Self, String> {
        let exe = executable()?;
        let mut cmd = Command::new(&exe);
        cmd.arg("relay")
            .args(["--host", &config.host.to_string(), "--port", "0"])
            .args(["--path", &config.path])
            .args([
                "--rate-limit-per-minute",
                &config.rate_limit_per_minute.to_string(),
            ])
            .args([
                "--typing-rate-limit-per-minute",
                &config.typing_rate_limit_per_minute.to_string(),
            ])
            .args(["--max-payload-bytes", &config.max_payload_bytes.to_string()])
            .args(["--max-image-bytes", &config.max_image_bytes.to_string()])
            .env(
                "RELAY_JWT_SECRET",
                config.jwt_secret.clone().unwrap_or_default(),
            )
            .env_remove("REDIS_URL")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            // Ctrl-C is for the simulator, which drains its run before it stops the relay
            .process_group(0)
            .kill_on_drop(true);
        if let Some(n) = config.worker_threads {
            cmd.args(["--worker-threads", &n.to_string()]);
        }
        if !config.cors_origin.is_empty() {
            cmd.args(["--cors-origin", &config.cors_origin.join(",")]);
        }
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", exe.display()))?;
        let stdout = child
            .stdout
            .take()
            .ok_or("the relay process has no stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let first = tokio::time::timeout(START_TIMEOUT, lines.next_line())
            .await
            .map_err(|_| format!("the relay process did not start within {START_TIMEOUT:?}"))?
            .map_err(|e| format!("the relay process: {e}"))?
            .ok_or("the relay process exited at start")?;
        let addr = first
            .strip_prefix(LISTENING)
            .and_then(|a| a.trim().parse().ok())
            .ok_or_else(|| format!("the relay process said {first:?}, not where it listens"))?;
        // keep reading so the child never blocks on a full pipe
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(Self { child, addr })
    }

    /// Stops it: closes its stdin (it shuts down gracefully), kills it after 5 s.
    pub async fn stop(mut self) {
        drop(self.child.stdin.take());
        if tokio::time::timeout(Duration::from_secs(5), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }
}

/// The child's side, `sim relay`: listens, prints `listening on ADDR`, serves until stdin
/// closes (its parent stopped or died).
///
/// # Errors
/// The relay could not listen or refused its configuration.
pub async fn serve(config: relay::Config) -> anyhow::Result<()> {
    use anyhow::Context as _;
    config.validate()?;
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    let addr = SocketAddr::new(config.host, config.port);
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    let local = listener.local_addr()?;
    println!("{LISTENING}{local}");
    let parent_gone = async {
        let mut stdin = tokio::io::stdin();
        let mut buf = [0u8; 64];
        while matches!(stdin.read(&mut buf).await, Ok(n) if n > 0) {}
    };
    relay::serve(listener, config, parent_gone).await?;
    Ok(())
}
