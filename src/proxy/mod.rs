//! proxy: one Postgres address for every branch.
//!
//! A client connects to 127.0.0.1:5432 (by default) as it would to any Postgres server. The
//! proxy runs the startup phase itself: TLS (SSLRequest or direct), protocol version, the branch
//! from `options=branch=NAME` (or the `DB@BRANCH` fallback), authentication against lakelet's
//! own credentials. Then it starts the branch's compute if it is stopped, opens the compute's
//! private unix socket, replays the client's startup parameters to it, gives the client the
//! compute's real backend pid with a secret of its own, and from then on copies bytes both ways
//! without looking at them.
//!
//! Reading order: `startup.rs` (pure decoding, fuzzed), `auth.rs` (credentials, SCRAM),
//! `conn.rs` (one connection, start to end), `tls.rs`, `metrics.rs`, and `Proxy` below (the
//! listener, the cancel-key map).
//!
//! Invariants:
//! - No byte reaches a compute before the client has authenticated; computes listen on no TCP
//!   port, so the proxy is the only way in.
//! - A client sees its backend's real pid (`PQbackendPID() == pg_backend_pid()`), so
//!   `pg_terminate_backend`, LISTEN/NOTIFY's sender pid and `pg_stat_activity` agree with it.
//!   Only the secret is the proxy's: a cancel key handed out maps to exactly one live session's
//!   backend, and is removed when the session ends; a wrong secret cancels nothing.
//! - Every connection task is bounded in time before authentication (`handshake_timeout`) and
//!   in memory always (startup-phase packets ≤ 10,000 bytes); a bad client costs one task.

mod admit;
pub mod auth;
mod conn;
pub mod metrics;
mod sockmap;
pub mod startup;
mod thread_relay;
pub mod tls;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;

use crate::compute::Computes;
use crate::policy::Governor;
pub use auth::{AuthMode, LOCAL_USER};

pub use metrics::{ConnectionStats, ProxyStats};

/// How the proxy listens and whom it lets in.
#[derive(Debug, Clone)]
pub struct ProxyConfig {
    pub listen: SocketAddr,
    pub auth: AuthMode,
    /// A configured certificate and key (PEM); `None` generates a self-signed pair.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// From accept to authenticated (Postgres: authentication_timeout).
    pub handshake_timeout: Duration,
    /// How long a connecting client waits for its branch's compute to start.
    pub start_wait: Duration,
    /// Client connections at once; more are refused with 53300.
    pub max_connections: usize,
    /// Where plain sessions' bytes are copied.
    pub relay: Relay,
}

/// Where the proxy copies a started plain session's bytes (TLS sessions: always the daemon).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Relay {
    /// In the kernel (`sockmap.rs`) when it can be set up, else in the daemon.
    Auto,
    /// In the daemon.
    User,
}

impl ProxyConfig {
    pub fn local(port: u16) -> ProxyConfig {
        ProxyConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], port)),
            auth: AuthMode::Scram,
            tls: None,
            handshake_timeout: Duration::from_secs(60),
            start_wait: Duration::from_secs(120),
            max_connections: 1000,
            relay: Relay::Auto,
        }
    }
}

/// The cancel key a client is given: its backend's real pid and a secret of the proxy's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct CancelKey {
    pid: i32,
    secret: [u8; 4],
}

/// Where a proxy cancel key leads, and what the `lakelet` database's `sessions` shows of it.
struct CancelTarget {
    secret: [u8; 4],
    socket: PathBuf,
    backend_pid: i32,
    backend_secret: Vec<u8>,
    session: Option<Session>,
}

/// A live session as a `sessions` row shows it: what the compute cannot see.
#[derive(Debug, Clone, serde::Serialize)]
struct Session {
    branch: String,
    usename: String,
    datname: String,
    client_addr: String,
    client_port: u16,
    ssl: bool,
    ssl_version: Option<String>,
    ssl_cipher: Option<String>,
    /// `kernel` (sockmap), `daemon` (copied by the daemon); set once the session is relayed.
    relay: Option<&'static str>,
    backend_start: String,
}

pub struct Proxy {
    computes: Arc<Computes>,
    gov: Arc<Governor>,
    creds: auth::Credentials,
    tls: tls::Tls,
    cfg: ProxyConfig,
    pub metrics: metrics::Metrics,
    cancels: Mutex<HashMap<i32, CancelTarget>>,
    slots: Arc<tokio::sync::Semaphore>,
    /// The kernel relay for plain sessions, where the kernel and privileges allow it.
    sockmap: Option<sockmap::Sockmap>,
}

impl Proxy {
    /// Loads (or creates) the credentials and the TLS certificate under `data_dir`.
    pub fn new(
        data_dir: &Path,
        computes: Arc<Computes>,
        gov: Arc<Governor>,
        cfg: ProxyConfig,
    ) -> Result<Arc<Proxy>> {
        let creds = auth::Credentials::load_or_init(data_dir)?;
        let tls = tls::load_or_generate(data_dir, cfg.tls.clone())?;
        if cfg.auth == AuthMode::Trust {
            tracing::warn!("the proxy runs with --auth trust: anyone who can reach it gets in");
        }
        let sockmap = if cfg.relay == Relay::User {
            None
        } else {
            match sockmap::Sockmap::new() {
                Ok(m) => {
                    tracing::info!("plain sessions are relayed in the kernel (sockmap)");
                    Some(m)
                }
                Err(e) => {
                    tracing::info!("the kernel relay is unavailable ({e}); copying in user space");
                    None
                }
            }
        };
        let metrics = metrics::Metrics::default();
        metrics.kernel_relay.store(sockmap.is_some(), Relaxed);
        Ok(Arc::new(Proxy {
            sockmap,
            computes,
            gov,
            creds,
            tls,
            slots: Arc::new(tokio::sync::Semaphore::new(cfg.max_connections)),
            cfg,
            metrics,
            cancels: Mutex::new(HashMap::new()),
        }))
    }

    pub fn config(&self) -> &ProxyConfig {
        &self.cfg
    }

    /// Issues a short-lived password for `user` (the local user or a principal) on `branch`:
    /// the API's credentials, and promotion grants (`grant`: write access to `branch`).
    pub fn issue_token(
        &self,
        user: &str,
        branch: &str,
        expires: std::time::SystemTime,
        grant: bool,
    ) -> Result<String> {
        self.creds
            .issue_token(user, self.principal_verifier(user), branch, expires, grant)
    }

    /// A principal's own SCRAM verifier; `None` for the local user (the credentials file's).
    fn principal_verifier(&self, user: &str) -> Option<auth::Verifier> {
        if user == LOCAL_USER {
            return None;
        }
        let e = self.gov.principals.get(user)?;
        match auth::Verifier::parse(&e.verifier) {
            Ok(v) => Some(v),
            Err(err) => {
                tracing::error!(user, "unreadable verifier in principals.json: {err:#}");
                None
            }
        }
    }

    pub fn cert_path(&self) -> &Path {
        &self.tls.cert_path
    }

    pub async fn bind(&self) -> Result<TcpListener> {
        TcpListener::bind(self.cfg.listen).await.with_context(|| {
            format!(
                "binding the Postgres proxy to {} (is another server on that port? pass \
                 --proxy-port to pick another)",
                self.cfg.listen
            )
        })
    }

    /// Accepts connections until `stop` resolves. Sessions already running are left to end
    /// when their compute stops.
    pub async fn serve(self: Arc<Self>, listener: TcpListener, stop: impl std::future::Future) {
        tokio::pin!(stop);
        loop {
            let (tcp, peer) = tokio::select! {
                _ = &mut stop => return,
                r = listener.accept() => match r {
                    Ok(x) => x,
                    Err(e) => {
                        // EMFILE and friends: back off instead of spinning.
                        tracing::warn!("proxy accept: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            self.metrics.accepted.fetch_add(1, Relaxed);
            let _ = tcp.set_nodelay(true);
            let me = self.clone();
            match self.slots.clone().try_acquire_owned() {
                Ok(permit) => {
                    tokio::spawn(async move {
                        me.handle(tcp, peer).await;
                        drop(permit);
                    });
                }
                Err(_) => {
                    tokio::spawn(async move {
                        let mut tcp = tcp;
                        let msg = conn::error_response("53300", "sorry, too many clients already");
                        let _ =
                            tokio::time::timeout(Duration::from_secs(1), tcp.write_all(&msg)).await;
                    });
                }
            }
        }
    }

    /// Registers a session's backend key and returns the key the client is given: the same pid,
    /// a new secret (the compute's never leaves the proxy).
    ///
    /// Keyed by pid alone, as Postgres does: every compute is the daemon's child in the
    /// daemon's pid namespace, so two live backends never share a pid, and an entry already
    /// there belongs to a session whose backend has exited (its pid reused) and that has not
    /// unregistered yet. It is replaced; its late `unregister_cancel` then finds another secret
    /// and leaves the new entry alone.
    fn register_cancel(
        &self,
        socket: PathBuf,
        backend_pid: i32,
        backend_secret: Vec<u8>,
    ) -> CancelKey {
        let secret = auth::random_bytes::<4>();
        let stale = self.cancels.lock().unwrap().insert(
            backend_pid,
            CancelTarget {
                secret,
                socket,
                backend_pid,
                backend_secret,
                session: None,
            },
        );
        if stale.is_some() {
            tracing::debug!(
                pid = backend_pid,
                "replaced the cancel key of an ended session"
            );
        }
        CancelKey {
            pid: backend_pid,
            secret,
        }
    }

    /// Records what `sessions` shows of a registered session (or updates it).
    fn describe(&self, key: CancelKey, f: impl FnOnce(&mut Option<Session>)) {
        let mut map = self.cancels.lock().unwrap();
        if let Some(t) = map.get_mut(&key.pid).filter(|t| t.secret == key.secret) {
            f(&mut t.session);
        }
    }

    /// The live sessions, as rows of the `lakelet` database's `sessions` table.
    fn sessions(&self) -> serde_json::Value {
        let map = self.cancels.lock().unwrap();
        let rows = map
            .values()
            .filter_map(|t| {
                let mut row = serde_json::to_value(t.session.as_ref()?).ok()?;
                row["pid"] = t.backend_pid.into();
                Some(row)
            })
            .collect();
        serde_json::Value::Array(rows)
    }

    fn unregister_cancel(&self, key: CancelKey) {
        let mut map = self.cancels.lock().unwrap();
        if map.get(&key.pid).is_some_and(|t| t.secret == key.secret) {
            map.remove(&key.pid);
        }
    }

    /// Forwards a CancelRequest to the compute that runs the session, if the key is right.
    /// Like Postgres, the client is told nothing either way.
    async fn cancel(&self, pid: i32, secret: &[u8]) {
        self.metrics.cancel_requests.fetch_add(1, Relaxed);
        let target = {
            let map = self.cancels.lock().unwrap();
            match map.get(&pid) {
                Some(t) if secret.len() == 4 && auth::ct_eq(&t.secret, secret) => {
                    Some((t.socket.clone(), t.backend_pid, t.backend_secret.clone()))
                }
                _ => None,
            }
        };
        let Some((socket, bpid, bsecret)) = target else {
            tracing::debug!(pid, "cancel request with an unknown key");
            return;
        };
        let mut pkt = Vec::with_capacity(12 + bsecret.len());
        pkt.extend_from_slice(&((12 + bsecret.len()) as u32).to_be_bytes());
        pkt.extend_from_slice(&80_877_102u32.to_be_bytes());
        pkt.extend_from_slice(&bpid.to_be_bytes());
        pkt.extend_from_slice(&bsecret);
        let r = tokio::time::timeout(Duration::from_secs(5), async {
            let mut s = tokio::net::UnixStream::connect(&socket).await?;
            s.write_all(&pkt).await?;
            // Postgres closes the connection once it has signalled the backend.
            let mut sink = [0u8; 1];
            let _ = tokio::io::AsyncReadExt::read(&mut s, &mut sink).await;
            std::io::Result::Ok(())
        })
        .await;
        match r {
            Ok(Ok(())) => tracing::debug!(backend = bpid, "forwarded a cancel request"),
            Ok(Err(e)) => tracing::warn!(backend = bpid, "forwarding a cancel request: {e}"),
            Err(_) => tracing::warn!(backend = bpid, "forwarding a cancel request timed out"),
        }
    }
}
