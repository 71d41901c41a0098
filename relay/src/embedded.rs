//! Relays and a Redis that a process runs for itself: a relay node on its own runtime thread
//! that can stop gracefully or die abruptly, and a throwaway `redis-server` on a free
//! loopback port (the simulator's embedded cluster, and the cluster tests).

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener as StdListener, TcpStream as StdStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use crate::config::Config;
use crate::server::{ServeError, serve};

/// How long a node or Redis gets to come up.
const START_TIMEOUT: Duration = Duration::from_secs(15);

/// Why an embedded part could not start.
#[derive(Debug, thiserror::Error)]
pub enum EmbeddedError {
    /// `redis-server` is not installed.
    #[error(
        "redis-server is not installed; install it (Debian/Ubuntu: `sudo apt-get install redis-server`) \
         or set REDIS_URL to a running Redis 7"
    )]
    RedisMissing,
    /// The relay or Redis failed to start or to answer.
    #[error("{0}")]
    Start(String),
    /// The relay refused its configuration or its cluster.
    #[error(transparent)]
    Serve(#[from] ServeError),
    /// Binding or spawning failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// A relay node running on a thread of its own.
pub struct Node {
    addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    kill: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<Result<(), ServeError>>>,
}

impl Node {
    /// Starts a relay with `config` on `ip:0` and waits until `/health` answers.
    ///
    /// # Errors
    /// The relay refused its configuration, could not reach Redis, or did not answer.
    pub fn start(config: Config, ip: std::net::IpAddr) -> Result<Self, EmbeddedError> {
        Self::start_on(config, SocketAddr::new(ip, 0))
    }

    /// Starts a relay listening on `addr` (a killed node's address, to bring it back).
    ///
    /// # Errors
    /// As [`Node::start`]; also when `addr` is taken.
    pub fn start_on(config: Config, addr: SocketAddr) -> Result<Self, EmbeddedError> {
        let listener = StdListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let (shutdown_tx, shutdown_rx) = oneshot::channel::<()>();
        let (kill_tx, kill_rx) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name(format!("relay-{}", addr.port()))
            .spawn(move || -> Result<(), ServeError> {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(1)
                    .enable_all()
                    .build()?;
                let result = rt.block_on(async move {
                    let listener = tokio::net::TcpListener::from_std(listener)?;
                    let stop = async move {
                        let _ = shutdown_rx.await;
                    };
                    tokio::select! {
                        r = serve(listener, config, stop) => r,
                        _ = kill_rx => Ok(()),
                    }
                });
                // a kill drops every task at once: no goodbye reaches a socket or Redis
                rt.shutdown_background();
                result
            })?;
        let mut node = Self {
            addr,
            shutdown: Some(shutdown_tx),
            kill: Some(kill_tx),
            thread: Some(thread),
        };
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if node.thread.as_ref().is_some_and(JoinHandle::is_finished) {
                return match node.join() {
                    Err(e) => Err(e),
                    Ok(()) => Err(EmbeddedError::Start("the relay stopped at start".into())),
                };
            }
            if health(addr).is_some() {
                return Ok(node);
            }
            if Instant::now() > deadline {
                return Err(EmbeddedError::Start(format!(
                    "the relay on {addr} did not answer /health within {START_TIMEOUT:?}"
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Dies at once, as `kill -9` would: sockets and the Redis link close without a word,
    /// so the rest of the cluster must notice by itself.
    pub fn kill(&mut self) {
        if let Some(kill) = self.kill.take() {
            let _ = kill.send(());
        }
        let _ = self.join();
    }

    /// Disconnects every socket, leaves the cluster and returns.
    ///
    /// # Errors
    /// What `serve` returned.
    pub fn stop(&mut self) -> Result<(), EmbeddedError> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        self.join()
    }

    fn join(&mut self) -> Result<(), EmbeddedError> {
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(result)) => Ok(result?),
            Some(Err(_)) => Err(EmbeddedError::Start("the relay thread panicked".into())),
            None => Ok(()),
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

/// The body of the relay's `GET /health` when it answers 200 within a second.
pub fn health(addr: SocketAddr) -> Option<String> {
    let mut tcp = StdStream::connect_timeout(&addr, Duration::from_millis(200)).ok()?;
    tcp.set_read_timeout(Some(Duration::from_millis(1000)))
        .ok()?;
    let request = format!("GET /health HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    tcp.write_all(request.as_bytes()).ok()?;
    let mut raw = String::new();
    tcp.read_to_string(&mut raw).ok()?;
    let (head, body) = raw.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.1 200").then(|| body.to_owned())
}

/// A `redis-server` on a free loopback port, with nothing saved to disk; killed when dropped.
pub struct RedisServer {
    port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts one and waits until it answers PING.
    ///
    /// # Errors
    /// `redis-server` is missing or did not come up.
    pub fn start() -> Result<Self, EmbeddedError> {
        let port = StdListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let dir = std::env::temp_dir().join(format!("relay-redis-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let mut server = Self {
            port,
            dir,
            child: None,
        };
        server.spawn()?;
        Ok(server)
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills it (SIGKILL) and starts a fresh, empty one on the same port.
    ///
    /// # Errors
    /// It did not come back.
    pub fn restart(&mut self) -> Result<(), EmbeddedError> {
        self.kill();
        self.spawn()
    }

    /// Kills it (SIGKILL).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn spawn(&mut self) -> Result<(), EmbeddedError> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let child = Command::new("redis-server")
                .args(["--bind", "127.0.0.1", "--port", &self.port.to_string()])
                .args(["--save", "", "--appendonly", "no", "--protected-mode", "no"])
                .arg("--dir")
                .arg(&self.dir)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn();
            let mut child = match child {
                Ok(c) => c,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Err(EmbeddedError::RedisMissing);
                }
                Err(e) => return Err(e.into()),
            };
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break; // port still held by the old one, most likely: try again
                }
                if ping(self.port) {
                    self.child = Some(child);
                    return Ok(());
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
            if Instant::now() >= deadline {
                return Err(EmbeddedError::Start(format!(
                    "redis-server on port {} did not answer PING within {START_TIMEOUT:?}",
                    self.port
                )));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn ping(port: u16) -> bool {
    let Ok(mut tcp) = StdStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = tcp.set_read_timeout(Some(Duration::from_millis(500)));
    let mut answer = [0u8; 7];
    tcp.write_all(b"PING\r\n").is_ok()
        && tcp.read_exact(&mut answer).is_ok()
        && &answer == b"+PONG\r\n"
}
