//! One client connection, from accept to close:
//! negotiate (TLS, GSS 'N', cancel) → startup packet → route → authenticate → compute →
//! backend startup (key swap) → copy both ways.

use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use bytes::{BufMut, BytesMut};
use pgwire::messages::response::ErrorResponse;
use pgwire::messages::startup::{Authentication, NegotiateProtocolVersion, Startup};
use pgwire::messages::Message;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, UnixStream};

use super::auth::{self, AuthError, AuthMode, Scram};
use super::startup::{self, First, Invalid, Route};
use super::thread_relay;
use super::CancelKey;
use super::Proxy;
use crate::policy::Permit;
use crate::storage;

trait Io: AsyncRead + AsyncWrite + Unpin + Send + std::any::Any {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Io for T {}
type Client = Box<dyn Io>;
/// A client after the TLS handshake.
type TlsClient = tokio_rustls::server::TlsStream<TcpStream>;

/// How a connection ends early.
pub(super) enum Fail {
    /// The client went away (or TLS failed); nothing to tell it.
    Gone(String),
    /// A FATAL error to send before closing.
    Fatal {
        code: &'static str,
        message: String,
        hint: Option<String>,
    },
    /// The compute already told the client (its ErrorResponse was relayed).
    Relayed,
}

/// What admission granted: the access, and the permit whose audit row the session's start (or
/// its failure) completes.
pub(super) struct Admitted {
    access: crate::policy::Access,
    permit: Option<Permit>,
}

/// How an audit row words a session that never started.
impl std::fmt::Display for Fail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Fail::Gone(why) => write!(f, "the client went away: {why}"),
            Fail::Fatal { code, message, .. } => write!(f, "{code}: {message}"),
            Fail::Relayed => write!(f, "the compute refused the session (its error was relayed)"),
        }
    }
}

pub(super) fn fatal(code: &'static str, message: impl Into<String>) -> Fail {
    Fail::Fatal {
        code,
        message: message.into(),
        hint: None,
    }
}

impl From<Invalid> for Fail {
    fn from(i: Invalid) -> Fail {
        fatal(i.code, i.message)
    }
}

impl From<std::io::Error> for Fail {
    fn from(e: std::io::Error) -> Fail {
        Fail::Gone(e.to_string())
    }
}

/// A FATAL ErrorResponse, as a server sends it during startup.
pub(super) fn error_response(code: &str, message: &str) -> BytesMut {
    error_with_hint(code, message, None)
}

fn error_with_hint(code: &str, message: &str, hint: Option<&str>) -> BytesMut {
    let mut fields = vec![
        (b'S', "FATAL".to_string()),
        (b'V', "FATAL".to_string()),
        (b'C', code.to_string()),
        (b'M', message.to_string()),
    ];
    if let Some(h) = hint {
        fields.push((b'H', h.to_string()));
    }
    let mut b = BytesMut::new();
    ErrorResponse::new(fields)
        .encode(&mut b)
        .expect("encoding an ErrorResponse");
    b
}

fn encode(m: &impl Message) -> BytesMut {
    let mut b = BytesMut::new();
    m.encode(&mut b).expect("encoding a backend message");
    b
}

/// A client after the startup packet: its stream, what it sent beyond the packet, and whether
/// the stream is TLS.
struct Started {
    io: Client,
    buf: BytesMut,
    tls: bool,
    minor: u16,
    params: std::collections::BTreeMap<String, String>,
}

impl Proxy {
    pub(super) async fn handle(self: Arc<Self>, tcp: TcpStream, peer: SocketAddr) {
        let deadline = tokio::time::Instant::now() + self.cfg.handshake_timeout;
        // Startup and authentication are bounded as a whole: a slowloris client gets the same
        // `handshake_timeout` as one that sends nothing.
        let started = match tokio::time::timeout_at(deadline, self.negotiate(tcp)).await {
            Ok(Ok(Some(s))) => s,
            Ok(Ok(None)) => return, // a cancel request, served
            Ok(Err((io, f))) => return self.fail_startup(io, f, peer).await,
            Err(_) => {
                self.metrics.bad_startups.fetch_add(1, Relaxed);
                tracing::debug!(%peer, "startup timed out");
                return;
            }
        };
        let Started {
            mut io,
            mut buf,
            tls,
            minor,
            params,
        } = started;
        if tls {
            self.metrics.tls_sessions.fetch_add(1, Relaxed);
        }
        let route = match startup::route(&params, &self.computes.settings().root_branch) {
            Ok(r) => r,
            Err(e) => return self.fail_startup(Some(io), e.into(), peer).await,
        };
        // Counters only for branches that exist: branch names from unauthenticated clients must
        // not grow the metrics map.
        let counters = self
            .computes
            .store()
            .branch(&route.branch)
            .is_ok()
            .then(|| self.metrics.branch(&route.branch));
        if minor > 0 || !route.unsupported.is_empty() {
            // The newest version we speak, as a full protocol number (what Postgres sends and
            // libpq 18 checks), not just the minor.
            let m = encode(&NegotiateProtocolVersion::new(
                Startup::PROTOCOL_VERSION_3_0,
                route.unsupported.clone(),
            ));
            if io.write_all(&m).await.is_err() {
                return;
            }
        }
        let authed =
            tokio::time::timeout_at(deadline, self.authenticate(&mut io, &mut buf, &route, tls))
                .await;
        let grant = match authed {
            Ok(Ok(g)) => g,
            Ok(Err(f)) => {
                if let (Fail::Fatal { code: "28P01", .. }, Some(c)) = (&f, &counters) {
                    c.auth_failed();
                }
                return self.fail_startup(Some(io), f, peer).await;
            }
            Err(_) => {
                tracing::debug!(%peer, "authentication timed out");
                let msg = error_response("08006", "authentication timed out");
                let _ = io.write_all(&msg).await;
                return;
            }
        };
        let (route, access, permit) = match self.govern(route, grant) {
            Ok(r) => r,
            Err(f) => return self.fail_startup(Some(io), f, peer).await,
        };
        let mut admitted = Admitted {
            access,
            permit: Some(permit),
        };
        match self
            .connect(io, buf, &route, &mut admitted, counters.as_ref(), peer)
            .await
        {
            Ok(()) => {}
            Err((io, f)) => {
                // Admitted, but the session never started: audited with why.
                if let Some(p) = admitted.permit.take() {
                    let _ = p.finish(Err::<(), _>(f.to_string()));
                }
                if let (false, Some(c)) = (matches!(f, Fail::Gone(_)), &counters) {
                    c.failed();
                }
                self.fail_startup(io, f, peer).await
            }
        }
    }

    async fn fail_startup(&self, io: Option<Client>, f: Fail, peer: SocketAddr) {
        match f {
            Fail::Gone(why) => {
                self.metrics.bad_startups.fetch_add(1, Relaxed);
                tracing::debug!(%peer, "client gone during startup: {why}");
            }
            Fail::Relayed => {}
            Fail::Fatal {
                code,
                message,
                hint,
            } => {
                if code == "08P01" || code == "0A000" {
                    self.metrics.bad_startups.fetch_add(1, Relaxed);
                }
                tracing::debug!(%peer, code, "refused: {message}");
                if let Some(mut io) = io {
                    let msg = error_with_hint(code, &message, hint.as_deref());
                    let _ = tokio::time::timeout(std::time::Duration::from_secs(2), async {
                        io.write_all(&msg).await?;
                        io.shutdown().await
                    })
                    .await;
                }
            }
        }
    }

    /// SSLRequest / direct TLS / GSSENCRequest, then the startup packet. `Ok(None)` when the
    /// connection was a CancelRequest.
    async fn negotiate(
        &self,
        mut tcp: TcpStream,
    ) -> Result<Option<Started>, (Option<Client>, Fail)> {
        let mut buf = BytesMut::with_capacity(512);
        // Direct TLS (Postgres 17 `sslnegotiation=direct`): a TLS ClientHello first.
        let mut first = [0u8; 1];
        match tcp.peek(&mut first).await {
            Ok(0) => return Err((None, Fail::Gone("closed before the startup packet".into()))),
            Ok(_) => {}
            Err(e) => return Err((None, e.into())),
        }
        if first[0] == 0x16 {
            let io = self.accept_tls(tcp).await.map_err(|f| (None, f))?;
            return self.startup_packet(io, buf, true).await;
        }
        let mut gss_refused = false;
        loop {
            match read_first(&mut tcp, &mut buf).await {
                Ok(First::SslRequest) => {
                    if let Err(e) = tcp.write_all(b"S").await {
                        return Err((None, e.into()));
                    }
                    if !buf.is_empty() {
                        // CVE-2021-23214: bytes sent before the handshake must not be read as
                        // if they came over TLS.
                        return Err((
                            None,
                            fatal("08P01", "received unencrypted data after SSL request"),
                        ));
                    }
                    let io = self.accept_tls(tcp).await.map_err(|f| (None, f))?;
                    return self.startup_packet(io, buf, true).await;
                }
                Ok(First::GssEncRequest) if !gss_refused => {
                    gss_refused = true;
                    if let Err(e) = tcp.write_all(b"N").await {
                        return Err((None, e.into()));
                    }
                }
                Ok(First::GssEncRequest) => {
                    return Err((
                        Some(Box::new(tcp)),
                        fatal("08P01", "a second GSSENCRequest"),
                    ))
                }
                Ok(f) => return self.finish_startup(Box::new(tcp), buf, false, f).await,
                Err(f) => return Err((Some(Box::new(tcp)), f)),
            }
        }
    }

    async fn accept_tls(&self, tcp: TcpStream) -> Result<Client, Fail> {
        let s = self
            .tls
            .acceptor
            .accept(tcp)
            .await
            .map_err(|e| Fail::Gone(format!("TLS handshake: {e}")))?;
        Ok(Box::new(s))
    }

    /// Reads the startup packet over an established stream (after TLS).
    async fn startup_packet(
        &self,
        mut io: Client,
        mut buf: BytesMut,
        tls: bool,
    ) -> Result<Option<Started>, (Option<Client>, Fail)> {
        match read_first(&mut io, &mut buf).await {
            Ok(f) => self.finish_startup(io, buf, tls, f).await,
            Err(f) => Err((Some(io), f)),
        }
    }

    async fn finish_startup(
        &self,
        io: Client,
        buf: BytesMut,
        tls: bool,
        first: First,
    ) -> Result<Option<Started>, (Option<Client>, Fail)> {
        match first {
            First::Startup { minor, params } => Ok(Some(Started {
                io,
                buf,
                tls,
                minor,
                params,
            })),
            First::Cancel { pid, secret } => {
                drop(io);
                self.cancel(pid, &secret).await;
                Ok(None)
            }
            First::SslRequest | First::GssEncRequest => Err((
                Some(io),
                fatal(
                    "08P01",
                    "an SSL or GSS request inside an encrypted connection",
                ),
            )),
        }
    }

    /// Runs the configured authentication for `route.user`. Leaves the client waiting for
    /// AuthenticationOk, which the compute's own startup reply provides.
    async fn authenticate(
        &self,
        io: &mut Client,
        buf: &mut BytesMut,
        route: &Route,
        tls: bool,
    ) -> Result<bool, Fail> {
        let user = route.user.as_str();
        let failed = || Fail::Fatal {
            code: "28P01",
            message: format!("password authentication failed for user \"{user}\""),
            hint: None,
        };
        let verifiers = if user == super::LOCAL_USER {
            self.creds.verifiers(user, &route.branch, None)
        } else {
            match self.principal_verifier(user) {
                Some(own) => self.creds.verifiers(user, &route.branch, Some(own)),
                None => vec![],
            }
        };
        let grants: Vec<bool> = verifiers.iter().map(|v| v.1).collect();
        let verifiers: Vec<_> = verifiers.into_iter().map(|v| v.0).collect();
        match self.cfg.auth {
            AuthMode::Trust => Ok(false),
            AuthMode::Password => {
                if !tls {
                    return Err(Fail::Fatal {
                        code: "28000",
                        message: "this lakelet proxy accepts passwords only over TLS".into(),
                        hint: Some("connect with sslmode=require".into()),
                    });
                }
                io.write_all(&encode(&Authentication::CleartextPassword))
                    .await?;
                let body = read_auth(io, buf).await?;
                let pw = auth::parse_password(&body).map_err(malformed)?;
                match verifiers.iter().position(|v| v.check_password(&pw)) {
                    Some(i) => Ok(grants[i]),
                    None => Err(failed()),
                }
            }
            AuthMode::Scram => {
                let cert_hash = if tls {
                    self.tls.cert_hash.as_deref()
                } else {
                    None
                };
                let mechs = auth::mechanisms(cert_hash.is_some());
                io.write_all(&encode(&Authentication::SASL(mechs))).await?;
                let body = read_auth(io, buf).await?;
                let (mech, first) = auth::parse_sasl_initial(&body).map_err(malformed)?;
                let v = if verifiers.is_empty() {
                    vec![self.creds.mock(user)]
                } else {
                    verifiers
                };
                let (scram, server_first) =
                    Scram::start(v, &mech, &first, cert_hash).map_err(malformed)?;
                io.write_all(&encode(&Authentication::SASLContinue(
                    server_first.into_bytes().into(),
                )))
                .await?;
                let body = read_auth(io, buf).await?;
                match scram.finish(&body) {
                    Ok((server_final, i)) => {
                        io.write_all(&encode(&Authentication::SASLFinal(
                            server_final.into_bytes().into(),
                        )))
                        .await?;
                        Ok(grants.get(i).copied().unwrap_or(false))
                    }
                    Err(AuthError::WrongPassword) => Err(failed()),
                    Err(e) => Err(malformed(e)),
                }
            }
        }
    }

    /// Starts the compute if needed, opens its socket, relays its startup reply (with our
    /// cancel key), then copies both ways until either side closes.
    async fn connect(
        &self,
        mut io: Client,
        buf: BytesMut,
        route: &Route,
        admitted: &mut Admitted,
        counters: Option<&Arc<super::metrics::BranchCounters>>,
        peer: SocketAddr,
    ) -> Result<(), (Option<Client>, Fail)> {
        let access = admitted.access;
        let branch = route.branch.as_str();
        let (ssl_version, ssl_cipher) = tls_names(&io);
        // The `lakelet` database is the system database's, whatever the branch.
        let system = route.database == crate::policy::system::DATABASE;
        let started = tokio::time::timeout(self.cfg.start_wait, async {
            if system {
                self.gov.system_endpoint(self.sessions()).await
            } else {
                self.computes.ensure_running(branch).await
            }
        })
        .await;
        let endpoint = match started {
            Ok(Ok(e)) => e,
            Ok(Err(e)) => return Err((Some(io), start_failure(branch, e))),
            Err(_) => {
                return Err((
                    Some(io),
                    Fail::Fatal {
                        code: "57P03",
                        message: format!(
                            "the compute of branch \"{branch}\" is still starting after {}s",
                            self.cfg.start_wait.as_secs()
                        ),
                        hint: Some("retry in a moment; `lakelet status` shows its state".into()),
                    },
                ))
            }
        };
        if access != crate::policy::Access::Superuser && !system {
            if let Err(e) = self.gov.ensure_roles(&endpoint, &route.database).await {
                return Err((
                    Some(io),
                    fatal(
                        "57P03",
                        format!("preparing the roles on branch \"{branch}\": {e:#}"),
                    ),
                ));
            }
        }
        // The branch exists now (it may have been created since the startup packet arrived).
        let counters = counters
            .cloned()
            .unwrap_or_else(|| self.metrics.branch(branch));
        if endpoint.cold {
            counters.cold_start();
        }
        let socket = endpoint
            .socket_dir
            .join(format!(".s.PGSQL.{}", endpoint.port));
        let mut be = match UnixStream::connect(&socket).await {
            Ok(s) => s,
            Err(e) => {
                return Err((
                    Some(io),
                    fatal(
                        "57P03",
                        format!(
                            "the compute of branch \"{branch}\" is not accepting connections: {e}"
                        ),
                    ),
                ))
            }
        };
        let mut startup = Startup::new();
        startup.parameters = route.forward.clone();
        let r = tokio::time::timeout(
            self.cfg.start_wait,
            self.relay_backend_startup(&mut io, &mut be, &startup, &socket, branch),
        )
        .await;
        let (cancel_pid, ready, leftover) = match r {
            Ok(Ok(x)) => x,
            Ok(Err(f)) => return Err((Some(io), f)),
            Err(_) => {
                return Err((
                    Some(io),
                    fatal(
                        "57P03",
                        format!("the compute of branch \"{branch}\" did not finish the startup"),
                    ),
                ))
            }
        };
        let _session = counters.session();
        tracing::debug!(branch, user = %route.user, "session started");
        if let Some(p) = admitted.permit.take() {
            let _ = p.finish(Ok::<_, std::convert::Infallible>(()));
        }
        self.describe(cancel_pid, |s| {
            *s = Some(super::Session {
                branch: branch.to_string(),
                usename: route.user.clone(),
                datname: route.database.clone(),
                client_addr: peer.ip().to_string(),
                client_port: peer.port(),
                ssl: ssl_version.is_some(),
                ssl_version,
                ssl_cipher,
                relay: Some("daemon"),
                backend_start: humantime::format_rfc3339_micros(std::time::SystemTime::now())
                    .to_string(),
            })
        });
        let r = self
            .relay(io, be, &ready, &leftover, &buf, cancel_pid)
            .await;
        self.unregister_cancel(cancel_pid);
        match r {
            // Counted whether the session ended cleanly or by a reset.
            Ok((from_client, from_backend)) => counters.transferred(from_client, from_backend),
            Err(e) => tracing::debug!(branch, "session ended: {e}"),
        }
        Ok(())
    }

    /// Relays a started session until it ends: in the kernel if it is plain, sent nothing
    /// early and the kernel relay takes it, else on a thread. `ready` is the startup answer
    /// still to send, `leftover` what the compute sent beyond it, `early` what the client sent
    /// beyond its startup packet. Returns the bytes from the client and from the backend.
    async fn relay(
        &self,
        mut io: Client,
        mut be: UnixStream,
        ready: &[u8],
        leftover: &[u8],
        early: &[u8],
        key: CancelKey,
    ) -> std::io::Result<(u64, u64)> {
        let plain = (&*io as &dyn std::any::Any).is::<TcpStream>();
        if let (true, Some(map), true, true) = (
            plain,
            self.sockmap.as_ref(),
            early.is_empty(),
            leftover.is_empty(),
        ) {
            match self.relay_in_kernel(map, io, be, ready, key).await? {
                Kernel::Done(from_client, from_backend) => return Ok((from_client, from_backend)),
                Kernel::Declined(i, b) => (io, be) = (i, b),
            }
        }
        io.write_all(ready).await?;
        let (from_client, from_backend) = self.relay_on_thread(io, be, leftover, early).await?;
        Ok((
            from_client + early.len() as u64,
            from_backend + leftover.len() as u64,
        ))
    }

    /// Relays a started session on a thread of its own (`thread_relay.rs`) until it ends,
    /// after the bytes each side sent early: the compute's beyond ReadyForQuery, the client's
    /// beyond its startup packet.
    async fn relay_on_thread(
        &self,
        mut io: Client,
        mut be: UnixStream,
        leftover: &[u8],
        early: &[u8],
    ) -> std::io::Result<thread_relay::Moved> {
        io.write_all(leftover).await?;
        be.write_all(early).await?;
        let any: Box<dyn std::any::Any + Send> = io;
        // Out of the runtime's epoll: the relay thread polls them itself.
        let be = be.into_std()?;
        let relay: Box<dyn FnOnce() -> std::io::Result<thread_relay::Moved> + Send> =
            match any.downcast::<TlsClient>() {
                Ok(tls) => {
                    let (tcp, conn) = tls.into_inner();
                    let tcp = tcp.into_std()?;
                    Box::new(move || thread_relay::tls(tcp, conn, be))
                }
                Err(any) => {
                    let tcp = any
                        .downcast::<TcpStream>()
                        .expect("a client is TCP, with TLS or without")
                        .into_std()?;
                    Box::new(move || thread_relay::plain(tcp, be))
                }
            };
        let (tx, rx) = tokio::sync::oneshot::channel();
        std::thread::Builder::new()
            .name("lakelet-relay".into())
            .stack_size(256 * 1024)
            .spawn(move || {
                let _ = tx.send(relay());
            })?;
        rx.await
            .unwrap_or_else(|_| Err(std::io::Error::other("a relay thread panicked")))
    }

    /// Hands a started plain session to the kernel relay (`sockmap.rs`) and waits for its end.
    /// `ready` (the startup answer up to ReadyForQuery) goes to the client only once both
    /// sockets are joined, so nothing the client sends in answer can arrive before the join.
    /// If the join fails, or either socket already holds unread bytes, the session is handed
    /// back undone (nothing redirected yet), `ready` unsent, to be copied in user space.
    async fn relay_in_kernel(
        &self,
        map: &super::sockmap::Sockmap,
        io: Client,
        be: UnixStream,
        ready: &[u8],
        key: CancelKey,
    ) -> std::io::Result<Kernel> {
        let any: Box<dyn std::any::Any + Send> = io;
        let mut tcp = *any
            .downcast::<TcpStream>()
            .expect("relay_in_kernel is given plain TCP clients only");
        let (client_fd, be_fd) = (tcp.as_raw_fd(), be.as_raw_fd());
        let joined = match map.join(client_fd, be_fd) {
            Ok(j) => j,
            Err(e) => {
                tracing::debug!("the kernel relay refused a session: {e}");
                return Ok(Kernel::Declined(Box::new(tcp), be));
            }
        };
        if unread(client_fd)? > 0 || unread(be_fd)? > 0 {
            drop(joined);
            return Ok(Kernel::Declined(Box::new(tcp), be));
        }
        let before = super::sockmap::tcp_bytes(client_fd)?;
        self.metrics.kernel_sessions.fetch_add(1, Relaxed);
        self.describe(key, |s| {
            if let Some(s) = s {
                s.relay = Some("kernel");
            }
        });
        tcp.write_all(ready).await?;
        // Out of the runtime's epoll: every buffer the kernel relays would wake it otherwise.
        let (tcp, be) = (tcp.into_std()?, be.into_std()?);
        let hangup = super::sockmap::Hangup::new(&[client_fd, be_fd])?;
        let gone = hangup.wait().await?;
        if gone.contains(&be_fd) {
            // The backend ended the session (a FATAL, then exit). The kernel sends what it
            // redirected from a work queue: let it send those last words before closing the
            // client's socket would drop them.
            super::sockmap::drain(client_fd).await;
        } else {
            // The client left (Terminate, then close). Give the backend the Terminate the
            // kernel is relaying and the time to exit, as it would with a direct client.
            hangup.forget(client_fd);
            let _ = tokio::time::timeout(std::time::Duration::from_secs(1), hangup.wait()).await;
        }
        let after = super::sockmap::tcp_bytes(client_fd)?;
        drop(joined);
        drop((tcp, be));
        Ok(Kernel::Done(
            after.0.saturating_sub(before.0),
            after.1.saturating_sub(before.1 + ready.len() as u64),
        ))
    }

    /// Sends the startup packet to the compute and relays its answer up to ReadyForQuery,
    /// swapping BackendKeyData's secret for a proxy one. Returns the client's key and any bytes the
    /// compute sent after ReadyForQuery.
    async fn relay_backend_startup(
        &self,
        io: &mut Client,
        be: &mut UnixStream,
        startup: &Startup,
        socket: &std::path::Path,
        branch: &str,
    ) -> Result<(CancelKey, BytesMut, BytesMut), Fail> {
        be.write_all(&encode(startup)).await.map_err(|e| {
            fatal(
                "57P03",
                format!("writing to the compute of \"{branch}\": {e}"),
            )
        })?;
        let mut rbuf = BytesMut::with_capacity(4096);
        let mut out = BytesMut::with_capacity(1024);
        let mut cancel_pid = None;
        loop {
            while rbuf.len() < 5 {
                let n = be.read_buf(&mut rbuf).await.map_err(|e| {
                    fatal(
                        "57P03",
                        format!("reading from the compute of \"{branch}\": {e}"),
                    )
                })?;
                if n == 0 {
                    return Err(fatal(
                        "57P03",
                        format!("the compute of branch \"{branch}\" closed the connection during startup"),
                    ));
                }
            }
            let ty = rbuf[0];
            let len = u32::from_be_bytes(rbuf[1..5].try_into().unwrap()) as usize;
            if !(4..=1 << 20).contains(&len) {
                return Err(fatal(
                    "08P01",
                    format!("the compute sent a message of length {len} during startup"),
                ));
            }
            while rbuf.len() < 1 + len {
                if be.read_buf(&mut rbuf).await.map_err(Fail::from)? == 0 {
                    return Err(fatal(
                        "57P03",
                        "the compute closed the connection during startup",
                    ));
                }
            }
            let msg = rbuf.split_to(1 + len);
            match ty {
                b'R' => {
                    let code = if len >= 8 {
                        i32::from_be_bytes(msg[5..9].try_into().unwrap())
                    } else {
                        -1
                    };
                    if code != 0 {
                        return Err(fatal(
                            "28000",
                            format!(
                                "the compute of branch \"{branch}\" asked for authentication (request {code}); \
                                 its pg_hba.conf must trust local connections, since the proxy authenticates"
                            ),
                        ));
                    }
                    out.put_slice(&msg);
                }
                b'K' if len >= 12 => {
                    let pid = i32::from_be_bytes(msg[5..9].try_into().unwrap());
                    let secret = msg[9..].to_vec();
                    let key = self.register_cancel(socket.to_path_buf(), pid, secret);
                    if let Some(old) = cancel_pid.replace(key) {
                        self.unregister_cancel(old);
                    }
                    out.put_u8(b'K');
                    out.put_u32(12);
                    out.put_i32(key.pid);
                    out.put_slice(&key.secret);
                }
                b'E' => {
                    out.put_slice(&msg);
                    if let Some(p) = cancel_pid {
                        self.unregister_cancel(p);
                    }
                    io.write_all(&out).await?;
                    return Err(Fail::Relayed);
                }
                b'Z' => {
                    out.put_slice(&msg);
                    let Some(p) = cancel_pid else {
                        return Err(fatal("08P01", "the compute sent no BackendKeyData"));
                    };
                    return Ok((p, out, rbuf));
                }
                _ => out.put_slice(&msg),
            }
        }
    }
}

/// What `pg_stat_ssl` would say of a client: its TLS version and cipher suite, with
/// OpenSSL's version names and the IANA suite names (what Postgres shows).
fn tls_names(io: &Client) -> (Option<String>, Option<String>) {
    let Some(t) = (&**io as &dyn std::any::Any).downcast_ref::<TlsClient>() else {
        return (None, None);
    };
    let c = t.get_ref().1;
    let version = c.protocol_version().map(|v| match v {
        tokio_rustls::rustls::ProtocolVersion::TLSv1_3 => "TLSv1.3".to_string(),
        tokio_rustls::rustls::ProtocolVersion::TLSv1_2 => "TLSv1.2".to_string(),
        other => format!("{other:?}"),
    });
    let cipher = c.negotiated_cipher_suite().map(|s| {
        let name = s
            .suite()
            .as_str()
            .map_or_else(|| format!("{:?}", s.suite()), str::to_string);
        name.replacen("TLS13_", "TLS_", 1)
    });
    (Some(version.unwrap_or_default()), cipher)
}

/// How a session offered to the kernel relay came back.
enum Kernel {
    /// It ran there and has ended: bytes from the client, bytes from the backend.
    Done(u64, u64),
    /// Not joined; nothing was redirected and ReadyForQuery is still to be sent.
    Declined(Client, UnixStream),
}

/// Bytes waiting to be read on a socket (FIONREAD).
fn unread(fd: RawFd) -> std::io::Result<i32> {
    let mut n: libc::c_int = 0;
    // SAFETY: FIONREAD writes one int.
    if unsafe { libc::ioctl(fd, libc::FIONREAD, &mut n) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(n)
}

/// Maps a failed `ensure_running` to what a client is told.
fn start_failure(branch: &str, e: anyhow::Error) -> Fail {
    if let Some(storage::Error::BranchNotFound(_)) = e.downcast_ref::<storage::Error>() {
        return Fail::Fatal {
            code: "3D000",
            message: format!("branch \"{branch}\" does not exist"),
            hint: Some("`lakelet branch list` shows the branches".into()),
        };
    }
    if let Some(r) = e.downcast_ref::<crate::compute::Refused>() {
        return fatal("55000", format!("branch \"{branch}\": {r}"));
    }
    Fail::Fatal {
        code: "57P03",
        message: format!("the compute of branch \"{branch}\" failed to start: {e:#}"),
        hint: Some("`lakelet status` and the compute's log show more".to_string()),
    }
}

fn malformed(e: AuthError) -> Fail {
    match e {
        AuthError::Malformed(m) => fatal("08P01", format!("malformed SCRAM message: {m}")),
        AuthError::WrongPassword => fatal("28P01", "password authentication failed"),
    }
}

/// Reads until one startup-phase packet is decoded.
async fn read_first<S: AsyncRead + Unpin + ?Sized>(
    s: &mut S,
    buf: &mut BytesMut,
) -> Result<First, Fail> {
    loop {
        if let Some(f) = startup::decode_first(buf)? {
            return Ok(f);
        }
        if s.read_buf(buf).await? == 0 {
            return Err(Fail::Gone("closed during the startup packet".into()));
        }
    }
}

/// Reads one password-family message body.
async fn read_auth(io: &mut Client, buf: &mut BytesMut) -> Result<BytesMut, Fail> {
    loop {
        if let Some(m) = startup::decode_auth_message(buf)? {
            return Ok(m);
        }
        if io.read_buf(buf).await? == 0 {
            return Err(Fail::Gone("closed during authentication".into()));
        }
    }
}
