//! Feeds arbitrary bytes to the Postgres proxy's startup-phase parsers in `lakelet::proxy`.
//!
//! Nothing here may panic on any input: these run on bytes from unauthenticated clients. The
//! input goes, as a stream, to `decode_first` (packets are decoded until it needs more bytes or
//! refuses), and must hold:
//!
//! - `Ok(Some(_))` consumes exactly the packet its length field announces, and nothing after;
//!   `Ok(None)` consumes nothing, and only when the length or the packet is incomplete;
//! - for every `First::Startup`, `route(&params, "main")` does not panic and, when it is `Ok`,
//!   forwards no `_pq_.` key and no `options` token starting with `branch=`.
//!
//! The input is also framed as the parameter list of a protocol 3.0 StartupMessage, so
//! `route` sees fuzzer-chosen parameters on every run, not only when the fuzzer has found the
//! packet layout. And it goes to the auth-phase parsers: as a stream to `decode_auth_message`
//! (each body to `parse_sasl_initial` and `parse_password`), lossy UTF-8 to `Verifier::parse`
//! (whose `Ok` must survive `encode`), and split in halves to `Scram::start` and
//! `Scram::finish`, which must never accept a proof: the verifier's keys belong to no password.
//! In the client-final half, `r=*` and `c=*` are replaced by the server's nonce and the
//! expected channel binding, so the proof checks are reached without guessing random nonces.

#![no_main]

use std::collections::BTreeMap;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use bytes::BytesMut;
use lakelet::proxy::auth::{parse_password, parse_sasl_initial, Scram, Verifier};
use lakelet::proxy::startup::{
    decode_auth_message, decode_first, route, split_options, First, MAX_STARTUP_PACKET,
};
use libfuzzer_sys::fuzz_target;

const CERT_HASH: &[u8] = b"fuzz certificate hash";

fn length_field(b: &[u8], at: usize) -> Option<usize> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().unwrap()) as usize)
}

fn check_route(params: &BTreeMap<String, String>) {
    let Ok(r) = route(params, "main") else {
        return;
    };
    assert!(!r.branch.is_empty(), "empty branch for {params:?}");
    assert!(!r.user.is_empty(), "empty user for {params:?}");
    assert_eq!(r.forward.get("database"), Some(&r.database));
    assert!(
        !r.forward.keys().any(|k| k.starts_with("_pq_.")),
        "forwards a _pq_. key: {r:?}"
    );
    if let Some(o) = r.forward.get("options") {
        assert!(
            !split_options(o).iter().any(|t| t.starts_with("branch=")),
            "forwards a branch= option: {r:?}"
        );
    }
}

/// Decodes `data` as a stream of startup-phase packets.
fn first_stream(data: &[u8]) {
    let mut buf = BytesMut::from(data);
    loop {
        let before = buf.clone();
        match decode_first(&mut buf) {
            Ok(Some(first)) => {
                let len = length_field(&before, 0).expect("decoded a packet without a length");
                assert!((8..=MAX_STARTUP_PACKET).contains(&len));
                assert_eq!(&buf[..], &before[len..], "consumed other than the packet");
                match first {
                    First::Startup { params, .. } => check_route(&params),
                    First::Cancel { secret, .. } => {
                        assert_eq!(secret.len(), len - 12);
                        assert!((4..=256).contains(&secret.len()));
                    }
                    First::SslRequest | First::GssEncRequest => assert_eq!(len, 8),
                }
            }
            Ok(None) => {
                assert_eq!(buf, before, "Ok(None) consumed bytes");
                let incomplete = length_field(&before, 0).is_none_or(|len| before.len() < len);
                assert!(incomplete, "Ok(None) on a complete packet");
                return;
            }
            Err(_) => return,
        }
    }
}

/// `data` as the parameter list of a StartupMessage (3.0), terminated, within the size limit.
fn framed_startup(data: &[u8]) {
    let body = &data[..data.len().min(MAX_STARTUP_PACKET - 9)];
    let mut p = Vec::with_capacity(body.len() + 9);
    p.extend_from_slice(&(body.len() as u32 + 9).to_be_bytes());
    p.extend_from_slice(&0x0003_0000u32.to_be_bytes());
    p.extend_from_slice(body);
    p.push(0);
    let mut buf = BytesMut::from(&p[..]);
    if let Ok(Some(First::Startup { params, .. })) = decode_first(&mut buf) {
        assert!(buf.is_empty());
        check_route(&params);
    }
}

fn auth_stream(data: &[u8]) {
    let mut buf = BytesMut::from(data);
    loop {
        let before = buf.clone();
        match decode_auth_message(&mut buf) {
            Ok(Some(body)) => {
                let len = length_field(&before, 1).expect("decoded a message without a length");
                assert_eq!(before[0], b'p');
                assert_eq!(&body[..], &before[5..1 + len]);
                assert_eq!(
                    &buf[..],
                    &before[1 + len..],
                    "consumed other than the message"
                );
                auth_body(&body);
            }
            Ok(None) => {
                assert_eq!(buf, before, "Ok(None) consumed bytes");
                let incomplete = length_field(&before, 1).is_none_or(|len| before.len() < 1 + len);
                assert!(incomplete, "Ok(None) on a complete message");
                return;
            }
            Err(_) => return,
        }
    }
}

fn auth_body(body: &[u8]) {
    if let Ok((mech, data)) = parse_sasl_initial(body) {
        assert!(body.ends_with(&data));
        let _ = Scram::start(vec![verifier()], &mech, &data, Some(CERT_HASH));
    }
    if let Ok(pw) = parse_password(body) {
        assert_eq!(pw.len() + 1, body.len());
    }
}

/// A verifier no password matches (its keys are not derived from one).
fn verifier() -> Verifier {
    Verifier {
        iterations: 4096,
        salt: b"fuzz salt".to_vec(),
        stored_key: [0x5a; 32],
        server_key: [0xa5; 32],
    }
}

fn replace(hay: &[u8], pat: &[u8], with: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(hay.len());
    let mut i = 0;
    while i < hay.len() {
        if hay[i..].starts_with(pat) {
            out.extend_from_slice(with);
            i += pat.len();
        } else {
            out.push(hay[i]);
            i += 1;
        }
    }
    out
}

fn scram(data: &[u8]) {
    let (client_first, client_final) = data.split_at(data.len() / 2);
    for (mech, cert) in [
        ("SCRAM-SHA-256", None),
        ("SCRAM-SHA-256", Some(CERT_HASH)),
        ("SCRAM-SHA-256-PLUS", Some(CERT_HASH)),
    ] {
        let Ok((s, server_first)) = Scram::start(vec![verifier()], mech, client_first, cert) else {
            continue;
        };
        // Accepted: UTF-8 with a GS2 header, and a client nonce the server's begins with.
        let first = std::str::from_utf8(client_first).unwrap();
        let header_len = first.match_indices(',').nth(1).unwrap().0 + 1;
        let client_nonce = first[header_len..]
            .split(',')
            .filter_map(|a| a.strip_prefix("r="))
            .next_back()
            .unwrap();
        let nonce = server_first
            .strip_prefix("r=")
            .and_then(|r| r.split(',').next())
            .expect("server-first does not start with r=");
        assert!(nonce.starts_with(client_nonce) && nonce.len() > client_nonce.len());

        let mut cbind = first.as_bytes()[..header_len].to_vec();
        if mech.ends_with("-PLUS") {
            cbind.extend_from_slice(CERT_HASH);
        }
        let fin = replace(client_final, b"r=*", format!("r={nonce}").as_bytes());
        let fin = replace(&fin, b"c=*", format!("c={}", B64.encode(&cbind)).as_bytes());
        let r = s.finish(&fin);
        assert!(
            r.is_err(),
            "accepted a proof for a verifier with no password: {r:?}"
        );
    }
}

fuzz_target!(|data: &[u8]| {
    first_stream(data);
    framed_startup(data);
    auth_stream(data);
    auth_body(data);
    if let Ok(v) = Verifier::parse(&String::from_utf8_lossy(data)) {
        assert_eq!(Verifier::parse(&v.encode()).unwrap(), v);
    }
    scram(data);
});
