//! The relay for a session the daemon copies (every TLS session; a plain one the kernel relay
//! did not take): one thread of its own, poll(2) on the two sockets, rustls driven by hand.
//!
//! Why not the runtime: through tokio each small round trip costs a reactor wake-up, a task
//! poll and a read that ends in EAGAIN on each side. A thread blocked in poll(2) on exactly
//! its two sockets wakes once per arriving buffer and does only the reads, the crypto and the
//! writes. Both sockets stay non-blocking and nothing is read from a side whose destination
//! is still full, so a client and a backend that both write at once (pipelining, COPY with
//! notices) never deadlock the relay.

use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;

use tokio_rustls::rustls::ServerConnection;

/// Reads from a side stop while this much is waiting for the other side.
const HIGH_WATER: usize = 64 * 1024;
const CHUNK: usize = 32 * 1024;

/// Bytes each way: (from the client, from the backend).
pub type Moved = (u64, u64);

/// Relays a TLS session until either side ends. `tcp` and `be` must be non-blocking.
pub fn tls(
    mut tcp: std::net::TcpStream,
    mut conn: ServerConnection,
    mut be: UnixStream,
) -> io::Result<Moved> {
    let mut to_backend: Vec<u8> = Vec::with_capacity(CHUNK);
    let mut buf = vec![0u8; CHUNK];
    let mut moved: Moved = (0, 0);
    let mut client_eof = false;
    loop {
        // Plaintext rustls holds for the backend, up to the high-water mark.
        while to_backend.len() < HIGH_WATER {
            match conn.reader().read(&mut buf) {
                Ok(0) => {
                    client_eof = true; // close_notify
                    break;
                }
                Ok(n) => {
                    moved.0 += n as u64;
                    to_backend.extend_from_slice(&buf[..n]);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(e),
            }
        }
        flush_plain(&mut be, &mut to_backend)?;
        flush_tls(&mut conn, &mut tcp)?;
        if client_eof && to_backend.is_empty() {
            return Ok(moved);
        }
        let tls_pending = conn.wants_write();
        let mut fds = [
            pollfd(
                &tcp,
                to_backend.len() < HIGH_WATER && !client_eof,
                tls_pending,
            ),
            pollfd(&be, !tls_pending, !to_backend.is_empty()),
        ];
        if !wait(&mut fds)? {
            return Ok(moved);
        }
        if readable(&fds[0]) {
            match conn.read_tls(&mut tcp) {
                Ok(0) => client_eof = true,
                Ok(_) => {
                    if let Err(e) = conn.process_new_packets() {
                        // Tell the client why (an alert), as a TLS server would.
                        let _ = flush_tls(&mut conn, &mut tcp);
                        return Err(io::Error::new(io::ErrorKind::InvalidData, e));
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        }
        if readable(&fds[1]) {
            match be.read(&mut buf) {
                Ok(0) => {
                    // The backend ended the session: its last words, then close_notify.
                    conn.send_close_notify();
                    finish_tls(&mut conn, &mut tcp);
                    return Ok(moved);
                }
                Ok(n) => {
                    moved.1 += n as u64;
                    conn.writer().write_all(&buf[..n])?;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        }
    }
}

/// Relays a plain session until either side ends. `tcp` and `be` must be non-blocking.
pub fn plain(mut tcp: std::net::TcpStream, mut be: UnixStream) -> io::Result<Moved> {
    let mut up: Vec<u8> = Vec::with_capacity(CHUNK); // client → backend
    let mut down: Vec<u8> = Vec::with_capacity(CHUNK); // backend → client
    let mut buf = vec![0u8; CHUNK];
    let mut moved: Moved = (0, 0);
    let (mut client_eof, mut backend_eof) = (false, false);
    loop {
        flush_plain(&mut be, &mut up)?;
        flush_plain(&mut tcp, &mut down)?;
        if (client_eof && up.is_empty()) || (backend_eof && down.is_empty()) {
            return Ok(moved);
        }
        let mut fds = [
            pollfd(&tcp, up.len() < HIGH_WATER && !client_eof, !down.is_empty()),
            pollfd(&be, down.len() < HIGH_WATER && !backend_eof, !up.is_empty()),
        ];
        if !wait(&mut fds)? {
            return Ok(moved);
        }
        if readable(&fds[0]) {
            client_eof = pull(&mut tcp, &mut buf, &mut up, &mut moved.0)?;
        }
        if readable(&fds[1]) {
            backend_eof = pull(&mut be, &mut buf, &mut down, &mut moved.1)?;
        }
    }
}

/// One read from `from` onto the end of `into`, counted; whether `from` has ended.
fn pull(
    from: &mut impl Read,
    buf: &mut [u8],
    into: &mut Vec<u8>,
    count: &mut u64,
) -> io::Result<bool> {
    match from.read(buf) {
        Ok(0) => Ok(true),
        Ok(n) => {
            *count += n as u64;
            into.extend_from_slice(&buf[..n]);
            Ok(false)
        }
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(false),
        Err(e) => Err(e),
    }
}

/// What to wait for on one socket.
fn pollfd(s: &impl AsRawFd, read: bool, write: bool) -> libc::pollfd {
    libc::pollfd {
        fd: s.as_raw_fd(),
        events: (if read { libc::POLLIN } else { 0 }) | if write { libc::POLLOUT } else { 0 },
        revents: 0,
    }
}

/// poll(2) without a timeout. `false`: a side not being read has hung up (its destination is
/// full), so nothing more will move — end rather than spin.
fn wait(fds: &mut [libc::pollfd; 2]) -> io::Result<bool> {
    loop {
        // SAFETY: poll on two pollfds we own, no timeout.
        if unsafe { libc::poll(fds.as_mut_ptr(), 2, -1) } >= 0 {
            break;
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
    Ok(!fds
        .iter()
        .any(|p| p.events & libc::POLLIN == 0 && p.revents & (libc::POLLHUP | libc::POLLERR) != 0))
}

/// Whether a read on this side is due: asked for and ready (data, end or error).
fn readable(p: &libc::pollfd) -> bool {
    p.events & libc::POLLIN != 0 && p.revents & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) != 0
}

/// Writes what it can of `pending`; keeps the rest.
fn flush_plain(to: &mut impl Write, pending: &mut Vec<u8>) -> io::Result<()> {
    while !pending.is_empty() {
        match to.write(pending) {
            Ok(n) => {
                pending.drain(..n);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Writes what it can of rustls's records to the client.
fn flush_tls(conn: &mut ServerConnection, tcp: &mut std::net::TcpStream) -> io::Result<()> {
    while conn.wants_write() {
        match conn.write_tls(tcp) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Sends the last records, waiting for room (at most 5 s, as a backend's last words are
/// small) so that a FATAL reaches the client before the close.
fn finish_tls(conn: &mut ServerConnection, tcp: &mut std::net::TcpStream) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while conn.wants_write() && std::time::Instant::now() < deadline {
        if flush_tls(conn, tcp).is_err() {
            return;
        }
        if conn.wants_write() {
            let mut p = libc::pollfd {
                fd: tcp.as_raw_fd(),
                events: libc::POLLOUT,
                revents: 0,
            };
            // SAFETY: poll on one pollfd we own, bounded wait.
            unsafe { libc::poll(&mut p, 1, 100) };
        }
    }
}
