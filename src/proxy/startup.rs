//! The startup phase on the wire: the first packets a client sends (decoded with pgwire), and the
//! route they ask for (branch, database, the rest of `options`).
//!
//! Everything here is a pure function of bytes, so the fuzz target and the property tests drive
//! it without sockets. The limits are Postgres's own: a startup-phase packet is at least 8 and at
//! most 10,000 bytes, and a length outside that is refused before any more bytes are awaited, so
//! a client cannot make the proxy buffer a gigabyte it announced.

use std::collections::BTreeMap;

use bytes::{Buf, BytesMut};
use pgwire::messages::startup::{SecretKey, Startup};
use pgwire::messages::{DecodeContext, PgWireFrontendMessage, ProtocolVersion};

/// The largest packet accepted before authentication (Postgres: MAX_STARTUP_PACKET_LENGTH).
pub const MAX_STARTUP_PACKET: usize = 10_000;

const SSL_REQUEST: u32 = 80_877_103;
const GSSENC_REQUEST: u32 = 80_877_104;
const CANCEL_REQUEST: u32 = 80_877_102;

/// A packet of the startup phase.
#[derive(Debug, PartialEq, Eq)]
pub enum First {
    SslRequest,
    GssEncRequest,
    /// A CancelRequest: the key the proxy handed out.
    Cancel {
        pid: i32,
        secret: Vec<u8>,
    },
    /// A StartupMessage for protocol 3.`minor`.
    Startup {
        minor: u16,
        params: BTreeMap<String, String>,
    },
}

/// Why a startup-phase packet was refused; the SQLSTATE is what a real server sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub code: &'static str,
    pub message: String,
}

fn invalid(code: &'static str, message: impl Into<String>) -> Invalid {
    Invalid {
        code,
        message: message.into(),
    }
}

/// Decodes one startup-phase packet from the front of `buf`, consuming it. `Ok(None)` means
/// more bytes are needed; an error means the connection must be closed.
pub fn decode_first(buf: &mut BytesMut) -> Result<Option<First>, Invalid> {
    if buf.len() < 4 {
        return Ok(None);
    }
    let len = u32::from_be_bytes(buf[..4].try_into().unwrap()) as usize;
    if !(8..=MAX_STARTUP_PACKET).contains(&len) {
        return Err(invalid(
            "08P01",
            format!("invalid length of startup packet: {len}"),
        ));
    }
    if buf.len() < len {
        return Ok(None);
    }
    let code = u32::from_be_bytes(buf[4..8].try_into().unwrap());
    match code {
        SSL_REQUEST | GSSENC_REQUEST => {
            if len != 8 {
                return Err(invalid("08P01", "invalid length of SSL/GSS request packet"));
            }
            buf.advance(8);
            Ok(Some(if code == SSL_REQUEST {
                First::SslRequest
            } else {
                First::GssEncRequest
            }))
        }
        CANCEL_REQUEST => {
            // Protocol 3.0 keys are 4 bytes; 3.2 allows up to 256.
            if !(16..=8 + 4 + 256).contains(&len) {
                return Err(invalid("08P01", "invalid length of cancel request packet"));
            }
            let mut ctx = DecodeContext::new(ProtocolVersion::default());
            ctx.awaiting_frontend_ssl = false;
            match PgWireFrontendMessage::decode(buf, &ctx) {
                Ok(Some(PgWireFrontendMessage::CancelRequest(c))) => Ok(Some(First::Cancel {
                    pid: c.pid,
                    secret: match c.secret_key {
                        SecretKey::I32(k) => k.to_be_bytes().to_vec(),
                        SecretKey::Bytes(b) => b.to_vec(),
                    },
                })),
                other => Err(invalid(
                    "08P01",
                    format!("malformed cancel request: {}", describe(other)),
                )),
            }
        }
        _ => {
            let (major, minor) = ((code >> 16) as u16, (code & 0xffff) as u16);
            if major != 3 {
                return Err(invalid(
                    "0A000",
                    format!(
                        "unsupported frontend protocol {major}.{minor}: server supports 3.0 to 3.0"
                    ),
                ));
            }
            // The packet must end in the terminating NUL of the parameter list.
            if buf[len - 1] != 0 {
                return Err(invalid(
                    "08P01",
                    "invalid startup packet layout: expected terminator as last byte",
                ));
            }
            let mut ctx = DecodeContext::new(ProtocolVersion::default());
            ctx.awaiting_frontend_ssl = false;
            let mut packet = buf.split_to(len);
            match PgWireFrontendMessage::decode(&mut packet, &ctx) {
                Ok(Some(PgWireFrontendMessage::Startup(Startup { parameters, .. }))) => {
                    Ok(Some(First::Startup {
                        minor,
                        params: parameters,
                    }))
                }
                other => Err(invalid(
                    "08P01",
                    format!("invalid startup packet: {}", describe(other)),
                )),
            }
        }
    }
}

fn describe<T: std::fmt::Debug, E: std::fmt::Display>(r: Result<Option<T>, E>) -> String {
    match r {
        Ok(Some(m)) => format!("unexpected {m:?}"),
        Ok(None) => "truncated".into(),
        Err(e) => e.to_string(),
    }
}

/// Where a startup packet goes: which branch, and what the compute is asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub branch: String,
    pub user: String,
    pub database: String,
    /// The parameters to forward to the compute: `options` without the `branch=` switch,
    /// `database` without a fallback `@branch`, and no `_pq_.` protocol extensions.
    pub forward: BTreeMap<String, String>,
    /// `_pq_.` protocol options the client asked for (reported as unsupported).
    pub unsupported: Vec<String>,
}

/// Picks the branch for a startup packet.
///
/// The branch comes from `options` (`branch=NAME`, one token of the space-separated, backslash-
/// escaped list libpq sends). For clients that can set only host, port, user, password and
/// database, the fallback is the database name: `DB@BRANCH` (split at the last `@`; branch names
/// never contain one). Neither given: `default_branch`.
pub fn route(params: &BTreeMap<String, String>, default_branch: &str) -> Result<Route, Invalid> {
    let user = match params.get("user") {
        Some(u) if !u.is_empty() => u.clone(),
        _ => {
            return Err(invalid(
                "28000",
                "no PostgreSQL user name specified in startup packet",
            ))
        }
    };
    let mut database = params
        .get("database")
        .filter(|d| !d.is_empty())
        .cloned()
        .unwrap_or_else(|| user.clone());
    let mut branch = None;
    let mut rest = Vec::new();
    for tok in split_options(params.get("options").map(String::as_str).unwrap_or("")) {
        match tok.strip_prefix("branch=") {
            Some(b) => {
                if b.is_empty() {
                    return Err(invalid("22023", "empty branch name in options (branch=)"));
                }
                if branch.as_ref().is_some_and(|prev: &String| prev != b) {
                    return Err(invalid(
                        "22023",
                        format!(
                            "options name two branches ({} and {b}); give one",
                            branch.unwrap()
                        ),
                    ));
                }
                branch = Some(b.to_string());
            }
            None => rest.push(tok),
        }
    }
    if branch.is_none() {
        if let Some((db, b)) = database.rsplit_once('@') {
            if db.is_empty() || b.is_empty() {
                return Err(invalid(
                    "3D000",
                    format!("database \"{database}\": expected DATABASE@BRANCH"),
                ));
            }
            branch = Some(b.to_string());
            database = db.to_string();
        }
    }
    let mut forward = BTreeMap::new();
    let mut unsupported = Vec::new();
    for (k, v) in params {
        if k.starts_with("_pq_.") {
            unsupported.push(k.clone());
        } else if k != "options" && k != "database" {
            forward.insert(k.clone(), v.clone());
        }
    }
    forward.insert("database".into(), database.clone());
    if !rest.is_empty() {
        forward.insert("options".into(), join_options(&rest));
    }
    Ok(Route {
        branch: branch.unwrap_or_else(|| default_branch.to_string()),
        user,
        database,
        forward,
        unsupported,
    })
}

/// Whitespace as pg_split_opts sees it: C's isspace(), which, unlike
/// `char::is_ascii_whitespace`, includes the vertical tab. Splitting on less than the server
/// would let `-c\x0bbranch=x` through as one token that the compute then splits in two.
fn is_pg_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\x0b' | '\x0c' | '\r')
}

/// Splits `options` the way the server does (pg_split_opts): runs of whitespace separate
/// arguments, a backslash makes the next character literal.
pub fn split_options(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_tok = false;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if is_pg_space(c) {
            if in_tok {
                out.push(std::mem::take(&mut cur));
                in_tok = false;
            }
            continue;
        }
        in_tok = true;
        if c == '\\' {
            if let Some(n) = chars.next() {
                cur.push(n);
            }
        } else {
            cur.push(c);
        }
    }
    if in_tok {
        out.push(cur);
    }
    out
}

/// The inverse of [`split_options`].
pub fn join_options(toks: &[String]) -> String {
    let mut out = String::new();
    for (i, t) in toks.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        for c in t.chars() {
            if c == '\\' || is_pg_space(c) {
                out.push('\\');
            }
            out.push(c);
        }
    }
    out
}

/// The type byte and body of a message after the startup packet, or `None` if incomplete.
/// Before authentication only `p` (password / SASL) messages are legal, and they are small.
pub fn decode_auth_message(buf: &mut BytesMut) -> Result<Option<BytesMut>, Invalid> {
    if buf.is_empty() {
        return Ok(None);
    }
    if buf[0] != b'p' {
        return Err(invalid(
            "08P01",
            format!(
                "expected a password response, got message type {:?}",
                buf[0] as char
            ),
        ));
    }
    if buf.len() < 5 {
        return Ok(None);
    }
    let len = u32::from_be_bytes(buf[1..5].try_into().unwrap()) as usize;
    if !(4..=MAX_STARTUP_PACKET).contains(&len) {
        return Err(invalid(
            "08P01",
            format!("invalid password packet length {len}"),
        ));
    }
    if buf.len() < 1 + len {
        return Ok(None);
    }
    let mut msg = buf.split_to(1 + len);
    msg.advance(5);
    Ok(Some(msg))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BufMut;

    fn startup(params: &[(&str, &str)]) -> BytesMut {
        let mut body = BytesMut::new();
        body.put_u32(196608);
        for (k, v) in params {
            body.put_slice(k.as_bytes());
            body.put_u8(0);
            body.put_slice(v.as_bytes());
            body.put_u8(0);
        }
        body.put_u8(0);
        let mut b = BytesMut::new();
        b.put_u32(body.len() as u32 + 4);
        b.put_slice(&body);
        b
    }

    fn params(p: &[(&str, &str)]) -> BTreeMap<String, String> {
        p.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn startup_decodes_and_incomplete_waits() {
        let full = startup(&[("user", "postgres"), ("options", "branch=x")]);
        for cut in 0..full.len() {
            let mut b = BytesMut::from(&full[..cut]);
            assert_eq!(decode_first(&mut b), Ok(None), "cut at {cut}");
        }
        let mut b = full.clone();
        b.put_slice(b"extra");
        let m = decode_first(&mut b).unwrap().unwrap();
        assert_eq!(
            m,
            First::Startup {
                minor: 0,
                params: params(&[("user", "postgres"), ("options", "branch=x")])
            }
        );
        assert_eq!(&b[..], b"extra", "only the packet is consumed");
    }

    #[test]
    fn lengths_out_of_range_are_refused_at_once() {
        for len in [0u32, 7, 10_001, u32::MAX] {
            let mut b = BytesMut::new();
            b.put_u32(len);
            assert!(decode_first(&mut b).is_err(), "{len}");
        }
        let mut b = BytesMut::new();
        b.put_u32(8);
        b.put_u32(2 << 16);
        assert_eq!(decode_first(&mut b).unwrap_err().code, "0A000");
    }

    #[test]
    fn ssl_gss_and_cancel() {
        let mut b = BytesMut::new();
        b.put_u32(8);
        b.put_u32(SSL_REQUEST);
        b.put_u32(8);
        b.put_u32(GSSENC_REQUEST);
        b.put_u32(16);
        b.put_u32(CANCEL_REQUEST);
        b.put_i32(42);
        b.put_i32(-7);
        assert_eq!(decode_first(&mut b), Ok(Some(First::SslRequest)));
        assert_eq!(decode_first(&mut b), Ok(Some(First::GssEncRequest)));
        assert_eq!(
            decode_first(&mut b),
            Ok(Some(First::Cancel {
                pid: 42,
                secret: (-7i32).to_be_bytes().to_vec()
            }))
        );
        assert!(b.is_empty());
    }

    #[test]
    fn branch_from_options_database_or_default() {
        let r = route(&params(&[("user", "u")]), "main").unwrap();
        assert_eq!((r.branch.as_str(), r.database.as_str()), ("main", "u"));
        assert!(!r.forward.contains_key("options"));

        let r = route(
            &params(&[
                ("user", "u"),
                ("database", "app"),
                ("options", "-c search_path=a\\ b branch=feat-1  -c x=y"),
            ]),
            "main",
        )
        .unwrap();
        assert_eq!(r.branch, "feat-1");
        assert_eq!(r.forward["database"], "app");
        assert_eq!(r.forward["options"], "-c search_path=a\\ b -c x=y");

        let r = route(&params(&[("user", "u"), ("database", "a@b@feat")]), "main").unwrap();
        assert_eq!((r.branch.as_str(), r.database.as_str()), ("feat", "a@b"));

        // options win over the database fallback
        let r = route(
            &params(&[("user", "u"), ("database", "db@x"), ("options", "branch=y")]),
            "main",
        )
        .unwrap();
        assert_eq!((r.branch.as_str(), r.database.as_str()), ("y", "db@x"));

        assert_eq!(route(&params(&[]), "main").unwrap_err().code, "28000");
        let e = route(
            &params(&[("user", "u"), ("options", "branch=a branch=b")]),
            "main",
        )
        .unwrap_err();
        assert!(e.message.contains("two branches"), "{e:?}");
    }

    #[test]
    fn options_split_and_join_round_trip() {
        for s in ["", "a", "a b", "a\\ b c", "\\\\x", "  -c  x=1  "] {
            let toks = split_options(s);
            assert_eq!(split_options(&join_options(&toks)), toks, "{s:?}");
        }
    }
}
