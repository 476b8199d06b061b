//! The relay in the kernel: once a plain (non-TLS) session has started, its bytes can move
//! between the client's TCP socket and the compute's unix socket without waking the daemon.
//!
//! Both sockets go into one SOCKHASH whose sk_skb verdict program redirects every arriving
//! buffer to the other socket's send path. The program keys on the socket cookie of the
//! buffer's owner: for TCP that is the proxy's own client socket; for a unix stream socket it
//! is the *sender's* socket, the backend's end, whose cookie the daemon reads with sock_diag
//! (UNIX_DIAG_PEER, then the peer's `udiag_cookie`). So the map holds, per session:
//! `cookie(client TCP) → our unix socket` and `cookie(backend's unix socket) → client TCP`.
//!
//! Everything here is optional: `Sockmap::new` fails without CAP_BPF/CAP_NET_ADMIN, on a
//! kernel without sockmap for unix sockets (< 5.15) or without sock_diag, and the proxy then
//! copies in user space as before. The program is eleven instructions written out below
//! (no compiler, no object file), so nothing in the build depends on clang or libbpf.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

const BPF_MAP_CREATE: libc::c_long = 0;
const BPF_MAP_UPDATE_ELEM: libc::c_long = 2;
const BPF_MAP_DELETE_ELEM: libc::c_long = 3;
const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_ATTACH: libc::c_long = 8;
const BPF_MAP_TYPE_SOCKHASH: u32 = 18;
const BPF_PROG_TYPE_SK_SKB: u32 = 14;
const BPF_SK_SKB_VERDICT: u32 = 38;
const HELPER_GET_SOCKET_COOKIE: i32 = 46;
const HELPER_SK_REDIRECT_HASH: i32 = 72;
/// Sessions at once in the kernel relay; later ones are copied in user space.
const MAX_ENTRIES: u32 = 2 * 4096;

#[repr(C)]
struct MapCreate {
    map_type: u32,
    key_size: u32,
    value_size: u32,
    max_entries: u32,
    map_flags: u32,
}

#[repr(C)]
struct MapElem {
    map_fd: u32,
    _pad: u32,
    key: u64,
    value: u64,
    flags: u64,
}

#[repr(C)]
struct ProgLoad {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
}

#[repr(C)]
struct ProgAttach {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
}

fn bpf<T>(cmd: libc::c_long, attr: &mut T) -> io::Result<libc::c_long> {
    // SAFETY: `attr` is a repr(C) prefix of `union bpf_attr`; the kernel reads (and for some
    // commands writes) at most `size_of::<T>()` bytes of it.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr as *mut T as *mut libc::c_void,
            std::mem::size_of::<T>() as libc::c_uint,
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// One eBPF instruction: opcode, dst/src registers, offset, immediate.
fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> u64 {
    (code as u64)
        | ((dst as u64 | (src as u64) << 4) << 8)
        | ((off as u16 as u64) << 16)
        | ((imm as u32 as u64) << 32)
}

/// `return bpf_sk_redirect_hash(skb, &map, &(u64){bpf_get_socket_cookie(skb)}, 0);`
/// Flags 0: the buffer is sent out of the target socket, to its peer.
fn program(map_fd: RawFd) -> [u64; 11] {
    [
        insn(0xbf, 6, 1, 0, 0),                        // r6 = r1 (skb)
        insn(0x85, 0, 0, 0, HELPER_GET_SOCKET_COOKIE), // r0 = cookie(skb->sk)
        insn(0x7b, 10, 0, -8, 0),                      // *(u64 *)(r10 - 8) = r0
        insn(0xbf, 1, 6, 0, 0),                        // r1 = skb
        insn(0x18, 2, 1, 0, map_fd),                   // r2 = the map (two-slot load,
        insn(0x00, 0, 0, 0, 0),                        //      src 1 = a map fd)
        insn(0xbf, 3, 10, 0, 0),                       // r3 = r10
        insn(0x07, 3, 0, 0, -8),                       // r3 += -8 (&key)
        insn(0xb7, 4, 0, 0, 0),                        // r4 = 0 (flags)
        insn(0x85, 0, 0, 0, HELPER_SK_REDIRECT_HASH),  // r0 = redirect verdict
        insn(0x95, 0, 0, 0, 0),                        // exit
    ]
}

/// The map and its attached program, for the daemon's lifetime.
pub struct Sockmap {
    map: OwnedFd,
    _prog: OwnedFd,
}

impl Sockmap {
    /// Creates the SOCKHASH, loads the verdict program and attaches it to the map.
    pub fn new() -> io::Result<Sockmap> {
        let mut create = MapCreate {
            map_type: BPF_MAP_TYPE_SOCKHASH,
            key_size: 8,
            value_size: 4,
            max_entries: MAX_ENTRIES,
            map_flags: 0,
        };
        // SAFETY: BPF_MAP_CREATE returns a new file descriptor we own.
        let map = unsafe { OwnedFd::from_raw_fd(bpf(BPF_MAP_CREATE, &mut create)? as RawFd) };
        let insns = program(map.as_raw_fd());
        let license = b"GPL\0";
        let mut log = vec![0u8; 4096];
        let mut name = [0u8; 16];
        name[..13].copy_from_slice(b"lakelet_relay");
        let mut load = ProgLoad {
            prog_type: BPF_PROG_TYPE_SK_SKB,
            insn_cnt: insns.len() as u32,
            insns: insns.as_ptr() as u64,
            license: license.as_ptr() as u64,
            log_level: 1,
            log_size: log.len() as u32,
            log_buf: log.as_mut_ptr() as u64,
            kern_version: 0,
            prog_flags: 0,
            prog_name: name,
            prog_ifindex: 0,
            expected_attach_type: BPF_SK_SKB_VERDICT,
        };
        let prog = match bpf(BPF_PROG_LOAD, &mut load) {
            // SAFETY: BPF_PROG_LOAD returns a new file descriptor we own.
            Ok(fd) => unsafe { OwnedFd::from_raw_fd(fd as RawFd) },
            Err(e) => {
                let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
                let verifier = String::from_utf8_lossy(&log[..end]);
                return Err(io::Error::new(
                    e.kind(),
                    format!("loading the relay program: {e}; verifier: {verifier}"),
                ));
            }
        };
        let mut attach = ProgAttach {
            target_fd: map.as_raw_fd() as u32,
            attach_bpf_fd: prog.as_raw_fd() as u32,
            attach_type: BPF_SK_SKB_VERDICT,
            attach_flags: 0,
        };
        bpf(BPF_PROG_ATTACH, &mut attach)?;
        Ok(Sockmap { map, _prog: prog })
    }

    fn update(&self, key: u64, fd: RawFd) -> io::Result<()> {
        let value = fd as u32;
        let mut e = MapElem {
            map_fd: self.map.as_raw_fd() as u32,
            _pad: 0,
            key: &key as *const u64 as u64,
            value: &value as *const u32 as u64,
            flags: 1, // BPF_NOEXIST: a cookie is never reused, so a hit is a bug
        };
        bpf(BPF_MAP_UPDATE_ELEM, &mut e).map(|_| ())
    }

    fn delete(&self, key: u64) {
        let mut e = MapElem {
            map_fd: self.map.as_raw_fd() as u32,
            _pad: 0,
            key: &key as *const u64 as u64,
            value: 0,
            flags: 0,
        };
        let _ = bpf(BPF_MAP_DELETE_ELEM, &mut e);
    }

    /// Joins a session's client TCP socket and the proxy's unix socket to its backend. From
    /// the return on, bytes arriving on either go straight to the other; the daemon must not
    /// read them. Dropping the `Joined` takes both out of the map.
    pub fn join(&self, client: RawFd, backend: RawFd) -> io::Result<Joined<'_>> {
        let client_key = socket_cookie(client)?;
        let backend_key = unix_peer_cookie(backend)?;
        self.update(client_key, backend)?;
        let mut joined = Joined {
            map: self,
            keys: vec![client_key],
        };
        self.update(backend_key, client)?;
        joined.keys.push(backend_key);
        Ok(joined)
    }
}

/// A session in the kernel relay; taken out of the map on drop.
pub struct Joined<'a> {
    map: &'a Sockmap,
    keys: Vec<u64>,
}

impl Drop for Joined<'_> {
    fn drop(&mut self) {
        for k in &self.keys {
            self.map.delete(*k);
        }
    }
}

fn socket_cookie(fd: RawFd) -> io::Result<u64> {
    let mut cookie = 0u64;
    let mut len = 8 as libc::socklen_t;
    // SAFETY: SO_COOKIE writes a u64 into `cookie`, at most `len` bytes.
    let r = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_COOKIE,
            &mut cookie as *mut u64 as *mut libc::c_void,
            &mut len,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(cookie)
}

/// The socket cookie of the other end of a connected unix stream socket, from sock_diag:
/// our socket's inode → its peer's inode → the peer's cookie.
fn unix_peer_cookie(fd: RawFd) -> io::Result<u64> {
    // SAFETY: fstat on a descriptor we hold, into a zeroed stat.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstat(fd, &mut st) } < 0 {
        return Err(io::Error::last_os_error());
    }
    let diag = Diag::open()?;
    let (_, attrs) = diag.unix_exact(st.st_ino as u32, UDIAG_SHOW_PEER)?;
    let peer = attr(&attrs, UNIX_DIAG_PEER)
        .filter(|a| a.len() >= 4)
        .map(|a| u32::from_ne_bytes(a[..4].try_into().unwrap()))
        .ok_or_else(|| io::Error::other("sock_diag gave no peer for the compute's socket"))?;
    let (cookie, _) = diag.unix_exact(peer, 0)?;
    Ok(cookie)
}

const NETLINK_SOCK_DIAG: libc::c_int = 4;
const SOCK_DIAG_BY_FAMILY: u16 = 20;
const UDIAG_SHOW_PEER: u32 = 0x4;
const UNIX_DIAG_PEER: u16 = 2;

struct Diag(OwnedFd);

impl Diag {
    fn open() -> io::Result<Diag> {
        // SAFETY: a new socket we own.
        let fd = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
                NETLINK_SOCK_DIAG,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: just created.
        Ok(Diag(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    /// One unix socket by inode: its cookie and its attributes (rtattr stream).
    fn unix_exact(&self, ino: u32, show: u32) -> io::Result<(u64, Vec<u8>)> {
        let mut req = Vec::with_capacity(40);
        req.extend_from_slice(&40u32.to_ne_bytes()); // nlmsg_len
        req.extend_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
        req.extend_from_slice(&(libc::NLM_F_REQUEST as u16).to_ne_bytes());
        req.extend_from_slice(&1u32.to_ne_bytes()); // seq
        req.extend_from_slice(&0u32.to_ne_bytes()); // pid
        req.push(libc::AF_UNIX as u8); // sdiag_family
        req.push(0); // sdiag_protocol
        req.extend_from_slice(&0u16.to_ne_bytes());
        req.extend_from_slice(&u32::MAX.to_ne_bytes()); // every state
        req.extend_from_slice(&ino.to_ne_bytes());
        req.extend_from_slice(&show.to_ne_bytes());
        req.extend_from_slice(&u32::MAX.to_ne_bytes()); // no cookie to check
        req.extend_from_slice(&u32::MAX.to_ne_bytes());
        let fd = self.0.as_raw_fd();
        // SAFETY: plain send/recv on a socket we own, buffers sized by their lengths.
        if unsafe { libc::send(fd, req.as_ptr() as *const libc::c_void, req.len(), 0) } < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut buf = vec![0u8; 8192];
        let n = unsafe { libc::recv(fd, buf.as_mut_ptr() as *mut libc::c_void, buf.len(), 0) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let msg = &buf[..n as usize];
        if msg.len() < 16 {
            return Err(io::Error::other("short sock_diag answer"));
        }
        let ty = u16::from_ne_bytes(msg[4..6].try_into().unwrap());
        if ty == libc::NLMSG_ERROR as u16 {
            let errno = i32::from_ne_bytes(msg[16..20].try_into().unwrap());
            return Err(io::Error::from_raw_os_error(-errno));
        }
        let len = (u32::from_ne_bytes(msg[..4].try_into().unwrap()) as usize).min(msg.len());
        // unix_diag_msg: family, type, state, pad, ino (u32), cookie (2 × u32).
        let body = &msg[16..len];
        if body.len() < 16 {
            return Err(io::Error::other("short unix_diag_msg"));
        }
        let lo = u32::from_ne_bytes(body[8..12].try_into().unwrap()) as u64;
        let hi = u32::from_ne_bytes(body[12..16].try_into().unwrap()) as u64;
        Ok((lo | hi << 32, body[16..].to_vec()))
    }
}

/// The payload of the first attribute of type `ty` in an rtattr stream.
fn attr(mut attrs: &[u8], ty: u16) -> Option<&[u8]> {
    while attrs.len() >= 4 {
        let len = u16::from_ne_bytes(attrs[..2].try_into().unwrap()) as usize;
        let t = u16::from_ne_bytes(attrs[2..4].try_into().unwrap());
        if len < 4 || len > attrs.len() {
            return None;
        }
        if t == ty {
            return Some(&attrs[4..len]);
        }
        attrs = attrs.get((len + 3) & !3..).unwrap_or(&[]);
    }
    None
}

/// Waits until either socket of a joined session hangs up, without waking on its data: an
/// epoll of its own watching only EPOLLRDHUP (EPOLLHUP and EPOLLERR always count), itself
/// watched by the runtime. The sockets' data-ready wake-ups carry EPOLLIN, which this epoll
/// does not ask for, so they stop in the kernel.
pub struct Hangup(tokio::io::unix::AsyncFd<OwnedFd>);

impl Hangup {
    pub fn new(fds: &[RawFd]) -> io::Result<Hangup> {
        // SAFETY: a new epoll descriptor we own.
        let ep = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if ep < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: just created.
        let ep = unsafe { OwnedFd::from_raw_fd(ep) };
        for &fd in fds {
            let mut ev = libc::epoll_event {
                events: libc::EPOLLRDHUP as u32,
                u64: fd as u64,
            };
            // SAFETY: registers a descriptor we hold with our epoll.
            if unsafe { libc::epoll_ctl(ep.as_raw_fd(), libc::EPOLL_CTL_ADD, fd, &mut ev) } < 0 {
                return Err(io::Error::last_os_error());
            }
        }
        // SAFETY: the AsyncFd owns `ep`, an OwnedFd, so the descriptor stays open and the same
        // until the AsyncFd is dropped.
        let fd = unsafe {
            tokio::io::unix::AsyncFd::register_with_interest(ep, tokio::io::Interest::READABLE)
        };
        Ok(Hangup(fd?))
    }

    /// Returns once a socket has hung up (or failed): the ones that did.
    pub async fn wait(&self) -> io::Result<Vec<RawFd>> {
        loop {
            let mut guard = self.0.readable().await?;
            let mut ev = [libc::epoll_event { events: 0, u64: 0 }; 2];
            // SAFETY: epoll_wait with a zero timeout into a buffer of two events.
            let n = unsafe { libc::epoll_wait(self.0.as_raw_fd(), ev.as_mut_ptr(), 2, 0) };
            if n > 0 {
                return Ok(ev[..n as usize].iter().map(|e| e.u64 as RawFd).collect());
            }
            guard.clear_ready();
        }
    }

    /// Stops watching `fd` (it has hung up; waiting on it again would return at once).
    pub fn forget(&self, fd: RawFd) {
        // SAFETY: removes a descriptor from our epoll; a null event is allowed for DEL.
        unsafe {
            libc::epoll_ctl(
                self.0.as_raw_fd(),
                libc::EPOLL_CTL_DEL,
                fd,
                std::ptr::null_mut(),
            )
        };
    }
}

fn tcp_info(fd: RawFd) -> io::Result<libc::tcp_info> {
    // SAFETY: TCP_INFO fills at most `len` bytes of a zeroed tcp_info.
    let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    let r = unsafe {
        libc::getsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            &mut info as *mut libc::tcp_info as *mut libc::c_void,
            &mut len,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(info)
}

/// Bytes a TCP socket has received and sent, as the kernel counts them: the daemon no longer
/// sees a joined session's bytes.
pub fn tcp_bytes(fd: RawFd) -> io::Result<(u64, u64)> {
    let i = tcp_info(fd)?;
    Ok((i.tcpi_bytes_received, i.tcpi_bytes_sent))
}

/// Waits (at least 4 ms, at most 200 ms) until the client socket's send counter has stopped
/// moving and all of it is acknowledged: what the kernel still had queued for it has gone out.
pub async fn drain(client: RawFd) {
    let mut last = None;
    for _ in 0..100 {
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        let Ok(i) = tcp_info(client) else { return };
        let now = (i.tcpi_bytes_sent, i.tcpi_unacked, i.tcpi_notsent_bytes);
        if last == Some(now) && now.1 == 0 && now.2 == 0 {
            return;
        }
        last = Some(now);
    }
}
