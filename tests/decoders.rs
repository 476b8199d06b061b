//! Every decoder of on-disk records returns `Ok` or `Err` on any input, never panics; and every
//! encoder's output decodes back to what was encoded.
//!
//! This is the CI-sized counterpart of the cargo-fuzz target in `fuzz/` (see fuzz/README.md).
//! `mod proxy_startup` at the end does the same for the Postgres proxy's startup-phase parsers.
//! A panic inside a proptest body fails the property, so "no panic" needs no assertion.

use lakelet::storage::codec::{
    decode_attr, decode_dirent, decode_marker_key, decode_u64s, dirent_key, encode_attr,
    encode_dirent, encode_u64s, marker_key, seal, split_dirent_key, unseal, BranchRec, ObjKey,
    ObjKind, PageRec, TimelineRec,
};
use lakelet::storage::{Attr, FileKind, TimelineId, PAGE_SIZE};
use proptest::prelude::*;

const CASES: u32 = 2000;

/// Runs every body decoder on `body`.
fn decode_body(body: &[u8]) {
    let _ = PageRec::decode(body);
    let _ = decode_attr(body);
    let _ = decode_dirent(body);
    let _ = TimelineRec::decode(body);
    let _ = BranchRec::decode(body);
    let _ = decode_u64s::<1>(body, "u64x1");
    let _ = decode_u64s::<2>(body, "u64x2");
}

/// Runs every key decoder on `key`.
fn decode_key(key: &[u8]) {
    let _ = decode_marker_key(key);
    let _ = split_dirent_key(key);
}

fn what() -> String {
    "test record".to_string()
}

/// Unseals a value that must be valid.
fn body<'a>(key: &[u8], value: &'a [u8]) -> &'a [u8] {
    unseal(key, value, what).expect("freshly sealed value does not unseal")
}

fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..max)
}

fn tl() -> impl Strategy<Value = TimelineId> {
    any::<u128>().prop_map(TimelineId)
}

fn file_kind() -> impl Strategy<Value = FileKind> {
    prop_oneof![
        Just(FileKind::File),
        Just(FileKind::Dir),
        Just(FileKind::Symlink)
    ]
}

fn attr() -> impl Strategy<Value = Attr> {
    (
        file_kind(),
        (any::<u32>(), any::<u32>(), any::<u32>()),
        (any::<u64>(), any::<i64>(), any::<i64>(), any::<u64>()),
        bytes(64),
    )
        .prop_map(
            |(kind, (mode, uid, gid), (size, mtime, ctime, did), target)| Attr {
                kind,
                mode,
                uid,
                gid,
                size,
                mtime,
                ctime,
                did,
                target,
            },
        )
}

/// A page: all zeros, or a short arbitrary pattern repeated from an arbitrary offset (cheaper to
/// generate than 8 KiB of independent bytes, and still different at every position).
fn page() -> impl Strategy<Value = Box<[u8; PAGE_SIZE]>> {
    prop_oneof![
        1 => Just(Box::new([0u8; PAGE_SIZE])),
        4 => (prop::collection::vec(any::<u8>(), 1..64), 0..PAGE_SIZE).prop_map(|(pat, off)| {
            let mut p = Box::new([0u8; PAGE_SIZE]);
            for (i, b) in p.iter_mut().enumerate() {
                *b = pat[(i + off) % pat.len()];
            }
            p
        }),
    ]
}

fn timeline_rec() -> impl Strategy<Value = TimelineRec> {
    (
        prop::option::of((tl(), any::<u64>())),
        any::<u64>(),
        any::<i64>(),
    )
        .prop_map(|(branch_point, start_lsn, created_at)| TimelineRec {
            branch_point,
            start_lsn,
            created_at,
        })
}

fn branch_rec() -> impl Strategy<Value = BranchRec> {
    (
        tl(),
        prop::option::of(any::<String>()),
        any::<i64>(),
        any::<bool>(),
        any::<String>(),
    )
        .prop_map(
            |(timeline, parent, created_at, snapshot, annotations)| BranchRec {
                timeline,
                parent,
                created_at,
                snapshot,
                annotations,
            },
        )
}

fn obj_key() -> impl Strategy<Value = ObjKey> {
    (
        prop_oneof![Just(ObjKind::Page), Just(ObjKind::Attr), Just(ObjKind::Dir)],
        any::<u64>(),
        any::<u32>(),
    )
        .prop_map(|(kind, id, sub)| ObjKey { kind, id, sub })
}

/// The body of a valid record of some type (unsealed), for mutation below. Random bytes rarely
/// get past a decoder's first tag byte; damaged valid records reach every field.
fn valid_body() -> impl Strategy<Value = Vec<u8>> {
    let k = b"k";
    prop_oneof![
        page().prop_map(move |p| body(k, &PageRec::Data(p).encode(k)).to_vec()),
        Just(body(k, &PageRec::Zero.encode(k)).to_vec()),
        prop::option::of(attr()).prop_map(move |a| body(k, &encode_attr(k, a.as_ref())).to_vec()),
        any::<u64>().prop_map(move |i| body(k, &encode_dirent(k, i)).to_vec()),
        timeline_rec().prop_map(move |t| body(k, &t.encode(k)).to_vec()),
        branch_rec().prop_map(move |b| body(k, &b.encode(k)).to_vec()),
        prop::collection::vec(any::<u64>(), 0..4)
            .prop_map(move |v| body(k, &encode_u64s(k, &v)).to_vec()),
        (obj_key(), tl()).prop_map(|(o, t)| marker_key(o, t)),
        (tl(), any::<u64>(), bytes(32), any::<u64>())
            .prop_map(|(t, d, n, l)| dirent_key(t, d, &n, l)),
    ]
}

/// Damage to a record: truncate it, flip one byte, or append bytes.
#[derive(Debug, Clone)]
enum Damage {
    Truncate(prop::sample::Index),
    Flip(prop::sample::Index, u8),
    Append(Vec<u8>),
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        any::<prop::sample::Index>().prop_map(Damage::Truncate),
        (any::<prop::sample::Index>(), 1..=255u8).prop_map(|(i, x)| Damage::Flip(i, x)),
        bytes(16).prop_map(Damage::Append),
    ]
}

fn apply(mut v: Vec<u8>, d: &Damage) -> Vec<u8> {
    match d {
        Damage::Truncate(i) => v.truncate(i.index(v.len() + 1)),
        Damage::Flip(i, x) if !v.is_empty() => {
            let i = i.index(v.len());
            v[i] ^= x;
        }
        Damage::Flip(..) => {}
        Damage::Append(b) => v.extend_from_slice(b),
    }
    v
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES))]

    // --- No decoder panics ---------------------------------------------------------------------

    #[test]
    fn decoders_never_panic_on_arbitrary_bytes(data in bytes(128)) {
        decode_body(&data);
        decode_key(&data);
    }

    #[test]
    fn decoders_never_panic_on_damaged_records(v in valid_body(), d in damage()) {
        let v = apply(v, &d);
        decode_body(&v);
        decode_key(&v);
    }

    #[test]
    fn unseal_never_panics(key in bytes(48), value in bytes(64)) {
        if let Ok(b) = unseal(&key, &value, what) {
            decode_body(b);
        }
        // A value with a valid format byte and checksum, whose body is arbitrary.
        let sealed = seal(&key, &value);
        decode_body(body(&key, &sealed));
    }

    #[test]
    fn unseal_never_panics_on_damaged_seals(key in bytes(48), value in bytes(64), d in damage()) {
        let sealed = apply(seal(&key, &value), &d);
        if let Ok(b) = unseal(&key, &sealed, what) {
            decode_body(b);
        }
    }

    // --- Round trips --------------------------------------------------------------------------

    #[test]
    fn seal_round_trips(key in bytes(48), b in bytes(64)) {
        let sealed = seal(&key, &b);
        prop_assert_eq!(body(&key, &sealed), &b[..]);
    }

    #[test]
    fn page_rec_round_trips(key in bytes(48), p in page()) {
        let data = PageRec::Data(p.clone());
        prop_assert_eq!(PageRec::decode(body(&key, &data.encode(&key))).unwrap(), data);
        let zero = PageRec::Zero;
        prop_assert_eq!(PageRec::decode(body(&key, &zero.encode(&key))).unwrap(), zero);
        // `from_page` stores an all-zero page without payload; either way it reads back the same.
        let rec = PageRec::from_page(&p);
        let back = PageRec::decode(body(&key, &rec.encode(&key))).unwrap();
        match back {
            PageRec::Data(q) => prop_assert_eq!(&q[..], &p[..]),
            PageRec::Zero => prop_assert!(p.iter().all(|&b| b == 0)),
        }
    }

    #[test]
    fn attr_round_trips(key in bytes(48), a in prop::option::of(attr())) {
        let v = encode_attr(&key, a.as_ref());
        prop_assert_eq!(decode_attr(body(&key, &v)).unwrap(), a);
    }

    #[test]
    fn dirent_round_trips(key in bytes(48), ino in any::<u64>()) {
        prop_assert_eq!(decode_dirent(body(&key, &encode_dirent(&key, ino))).unwrap(), ino);
    }

    #[test]
    fn timeline_rec_round_trips(key in bytes(48), t in timeline_rec()) {
        prop_assert_eq!(TimelineRec::decode(body(&key, &t.encode(&key))).unwrap(), t);
    }

    #[test]
    fn branch_rec_round_trips(key in bytes(48), b in branch_rec()) {
        prop_assert_eq!(BranchRec::decode(body(&key, &b.encode(&key))).unwrap(), b);
    }

    #[test]
    fn u64s_round_trip(key in bytes(48), a in any::<u64>(), b in any::<u64>()) {
        let v1 = encode_u64s(&key, &[a]);
        prop_assert_eq!(decode_u64s::<1>(body(&key, &v1), "u64x1").unwrap(), [a]);
        let v2 = encode_u64s(&key, &[a, b]);
        prop_assert_eq!(decode_u64s::<2>(body(&key, &v2), "u64x2").unwrap(), [a, b]);
        // The field count is checked: a record of the other arity is an error, not a misread.
        prop_assert!(decode_u64s::<2>(body(&key, &v1), "u64x2").is_err());
        prop_assert!(decode_u64s::<1>(body(&key, &v2), "u64x1").is_err());
    }

    #[test]
    fn marker_key_round_trips(o in obj_key(), t in tl()) {
        prop_assert_eq!(decode_marker_key(&marker_key(o, t)).unwrap(), (o, t));
    }

    #[test]
    fn dirent_key_round_trips(t in tl(), dir in any::<u64>(), name in bytes(64), lsn in any::<u64>()) {
        let key = dirent_key(t, dir, &name, lsn);
        prop_assert_eq!(split_dirent_key(&key).unwrap(), (&name[..], lsn));
    }
}

/// The proxy's startup phase (`lakelet::proxy::startup` and `lakelet::proxy::auth`): the parsers
/// of bytes from unauthenticated clients never panic, consume exactly one packet or nothing, and
/// decode what a client encodes. The CI-sized counterpart of `fuzz/fuzz_targets/startup.rs`.
mod proxy_startup {
    use std::collections::BTreeMap;

    use base64::engine::general_purpose::STANDARD as B64;
    use base64::Engine;
    use bytes::{BufMut, BytesMut};
    use lakelet::proxy::auth::{parse_password, parse_sasl_initial, AuthError, Scram, Verifier};
    use lakelet::proxy::startup::{
        decode_auth_message, decode_first, join_options, route, split_options, First,
        MAX_STARTUP_PACKET,
    };
    use proptest::prelude::*;

    use super::bytes;

    const CASES: u32 = 256;
    const SSL_REQUEST: u32 = 80_877_103;
    const GSSENC_REQUEST: u32 = 80_877_104;
    const CANCEL_REQUEST: u32 = 80_877_102;
    const PROTOCOL_3_0: u32 = 3 << 16;
    const CERT_HASH: &[u8] = b"test certificate hash";

    fn length_field(b: &[u8], at: usize) -> Option<usize> {
        Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().unwrap()) as usize)
    }

    /// `route` never forwards what it consumed or refuses to pass on.
    fn check_route(params: &BTreeMap<String, String>) {
        let Ok(r) = route(params, "main") else {
            return;
        };
        assert!(!r.branch.is_empty() && !r.user.is_empty(), "{r:?}");
        assert_eq!(r.forward.get("database"), Some(&r.database));
        assert!(!r.forward.keys().any(|k| k.starts_with("_pq_.")), "{r:?}");
        if let Some(o) = r.forward.get("options") {
            assert!(
                !split_options(o).iter().any(|t| t.starts_with("branch=")),
                "{r:?}"
            );
            assert!(
                !pg_split_opts(o).iter().any(|t| t.starts_with("branch=")),
                "{r:?}"
            );
        }
    }

    /// Decodes `data` as a stream of startup-phase packets, checking what each call consumed.
    fn first_stream(data: &[u8]) {
        let mut buf = BytesMut::from(data);
        loop {
            let before = buf.clone();
            match decode_first(&mut buf) {
                Ok(Some(first)) => {
                    let len = length_field(&before, 0).unwrap();
                    assert!((8..=MAX_STARTUP_PACKET).contains(&len));
                    assert_eq!(&buf[..], &before[len..], "consumed other than the packet");
                    match first {
                        First::Startup { params, .. } => check_route(&params),
                        First::Cancel { secret, .. } => assert_eq!(secret.len(), len - 12),
                        First::SslRequest | First::GssEncRequest => assert_eq!(len, 8),
                    }
                }
                Ok(None) => {
                    assert_eq!(buf, before, "Ok(None) consumed bytes");
                    assert!(length_field(&before, 0).is_none_or(|len| before.len() < len));
                    return;
                }
                Err(_) => return,
            }
        }
    }

    /// Decodes `data` as a stream of password-family messages, and each body as both kinds.
    fn auth_stream(data: &[u8]) {
        let mut buf = BytesMut::from(data);
        loop {
            let before = buf.clone();
            match decode_auth_message(&mut buf) {
                Ok(Some(body)) => {
                    let len = length_field(&before, 1).unwrap();
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
                    assert!(length_field(&before, 1).is_none_or(|len| before.len() < 1 + len));
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

    /// A verifier no password matches: its keys are not derived from one.
    fn verifier() -> Verifier {
        Verifier {
            iterations: 4096,
            salt: b"test salt".to_vec(),
            stored_key: [0x5a; 32],
            server_key: [0xa5; 32],
        }
    }

    /// Runs a SCRAM exchange with `client_first` under every mechanism, and, if it starts, ends
    /// it with `client_final` in which `r=*` and `c=*` stand for the right nonce and binding.
    /// Returns the results of `finish`.
    fn scram(client_first: &[u8], client_final: &[u8]) -> Vec<Result<String, AuthError>> {
        let mut results = vec![];
        for (mech, cert) in [
            ("SCRAM-SHA-256", None),
            ("SCRAM-SHA-256", Some(CERT_HASH)),
            ("SCRAM-SHA-256-PLUS", Some(CERT_HASH)),
        ] {
            let Ok((s, server_first)) = Scram::start(vec![verifier()], mech, client_first, cert)
            else {
                continue;
            };
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
                .unwrap();
            assert!(nonce.starts_with(client_nonce) && nonce.len() > client_nonce.len());
            let mut cbind = first.as_bytes()[..header_len].to_vec();
            if mech.ends_with("-PLUS") {
                cbind.extend_from_slice(CERT_HASH);
            }
            let fin = String::from_utf8_lossy(client_final)
                .replace("r=*", &format!("r={nonce}"))
                .replace("c=*", &format!("c={}", B64.encode(&cbind)));
            results.push(s.finish(fin.as_bytes()).map(|(m, _)| m));
        }
        results
    }

    /// Postgres's pg_split_opts (src/backend/utils/init/postinit.c), byte for byte, with the
    /// C locale's isspace(): the split the compute applies to the `options` the proxy forwards.
    fn pg_split_opts(s: &str) -> Vec<String> {
        let b = s.as_bytes();
        let space = |c: u8| matches!(c, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r');
        let mut out = vec![];
        let mut i = 0;
        loop {
            while i < b.len() && space(b[i]) {
                i += 1;
            }
            if i == b.len() {
                return out;
            }
            let (mut tok, mut escaped) = (vec![], false);
            while i < b.len() && (escaped || !space(b[i])) {
                if !escaped && b[i] == b'\\' {
                    escaped = true;
                } else {
                    escaped = false;
                    tok.push(b[i]);
                }
                i += 1;
            }
            out.push(String::from_utf8(tok).unwrap());
        }
    }

    /// Text made of the pieces the parsers look for (separators, escapes, `branch=`, `@`, every
    /// ASCII whitespace) and arbitrary characters; never a NUL, which the wire cannot carry.
    fn text(len: std::ops::Range<usize>) -> impl Strategy<Value = String> {
        let piece = prop_oneof![
            4 => prop::sample::select(vec![
                " ", "  ", "\t", "\n", "\x0b", "\x0c", "\r", "\\", "\\ ", "=", "@", ",", "branch=",
                "branch=b1", "-c", "x=1", "r=", "c=", "p=", "n,,", "_pq_.", "\u{a0}", "é",
            ])
            .prop_map(String::from),
            2 => "[a-z0-9]{1,4}",
            1 => any::<char>().prop_map(|c| if c == '\0' { '?' } else { c }.to_string()),
        ];
        prop::collection::vec(piece, len).prop_map(|v| v.concat())
    }

    fn param_map() -> impl Strategy<Value = BTreeMap<String, String>> {
        let key = prop_oneof![
            prop::sample::select(vec![
                "user",
                "database",
                "options",
                "application_name",
                "_pq_.ext",
                "replication",
            ])
            .prop_map(String::from),
            text(1..4),
        ];
        prop::collection::btree_map(key, text(0..6), 0..6)
    }

    /// A packet a client may send first.
    #[derive(Debug, Clone)]
    enum Packet {
        Ssl,
        Gss,
        Cancel(i32, Vec<u8>),
        Startup(u16, BTreeMap<String, String>),
    }

    fn packet() -> impl Strategy<Value = Packet> {
        prop_oneof![
            Just(Packet::Ssl),
            Just(Packet::Gss),
            (any::<i32>(), prop::collection::vec(any::<u8>(), 4..=256))
                .prop_map(|(pid, key)| Packet::Cancel(pid, key)),
            // Keys are non-empty: an empty key ends the list. Values may be empty.
            (any::<u16>(), param_map()).prop_map(|(minor, p)| Packet::Startup(minor, p)),
        ]
    }

    fn encode(p: &Packet) -> Vec<u8> {
        let mut body = BytesMut::new();
        match p {
            Packet::Ssl => body.put_u32(SSL_REQUEST),
            Packet::Gss => body.put_u32(GSSENC_REQUEST),
            Packet::Cancel(pid, key) => {
                body.put_u32(CANCEL_REQUEST);
                body.put_i32(*pid);
                body.put_slice(key);
            }
            Packet::Startup(minor, params) => {
                body.put_u32(PROTOCOL_3_0 | *minor as u32);
                for (k, v) in params {
                    body.put_slice(k.as_bytes());
                    body.put_u8(0);
                    body.put_slice(v.as_bytes());
                    body.put_u8(0);
                }
                body.put_u8(0);
            }
        }
        let mut out = (body.len() as u32 + 4).to_be_bytes().to_vec();
        out.extend_from_slice(&body);
        out
    }

    fn decoded(p: &Packet) -> First {
        match p.clone() {
            Packet::Ssl => First::SslRequest,
            Packet::Gss => First::GssEncRequest,
            Packet::Cancel(pid, secret) => First::Cancel { pid, secret },
            Packet::Startup(minor, params) => First::Startup { minor, params },
        }
    }

    fn sasl_initial(mech: &str, data: &[u8]) -> Vec<u8> {
        let mut b = mech.as_bytes().to_vec();
        b.push(0);
        b.extend_from_slice(&(data.len() as i32).to_be_bytes());
        b.extend_from_slice(data);
        b
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(CASES))]

        // --- No parser panics -----------------------------------------------------------------

        #[test]
        fn startup_parsers_never_panic_on_arbitrary_bytes(data in bytes(512)) {
            first_stream(&data);
            auth_stream(&data);
            auth_body(&data);
            if let Ok(v) = Verifier::parse(&String::from_utf8_lossy(&data)) {
                prop_assert_eq!(Verifier::parse(&v.encode()).unwrap(), v);
            }
            let (a, b) = data.split_at(data.len() / 2);
            for r in scram(a, b) {
                prop_assert!(r.is_err());
            }
        }

        #[test]
        fn arbitrary_parameter_lists_decode_and_route(data in bytes(512), minor in any::<u16>()) {
            // `data` as the parameter list of a StartupMessage, terminated as the wire requires.
            let mut p = ((data.len() + 9) as u32).to_be_bytes().to_vec();
            p.extend_from_slice(&(PROTOCOL_3_0 | minor as u32).to_be_bytes());
            p.extend_from_slice(&data);
            p.push(0);
            let mut buf = BytesMut::from(&p[..]);
            match decode_first(&mut buf) {
                Ok(Some(First::Startup { minor: m, params })) => {
                    prop_assert_eq!(m, minor);
                    prop_assert!(buf.is_empty());
                    check_route(&params);
                }
                other => prop_assert!(other.is_err(), "{:?}", other),
            }
        }

        #[test]
        fn damaged_streams_of_valid_packets_never_panic(
            ps in prop::collection::vec(packet(), 1..4),
            at in any::<prop::sample::Index>(),
            byte in any::<u8>(),
        ) {
            let mut data: Vec<u8> = ps.iter().flat_map(encode).collect();
            let i = at.index(data.len());
            data[i] = byte;
            first_stream(&data);
        }

        #[test]
        fn route_never_forwards_the_branch_or_pq_options(
            mut params in param_map(),
            user in text(0..3),
        ) {
            // Without a user, route refuses at once; most maps get one.
            params.entry("user".into()).or_insert(user);
            check_route(&params);
            let Ok(r) = route(&params, "main") else { return Ok(()) };
            let opts = split_options(params.get("options").map_or("", String::as_str));
            let branches: Vec<&str> = opts.iter().filter_map(|t| t.strip_prefix("branch=")).collect();
            if let Some(b) = branches.first() {
                prop_assert_eq!(&r.branch, b);
            }
            let rest: Vec<String> = opts
                .iter()
                .filter(|t| !t.starts_with("branch=") && !t.is_empty())
                .cloned()
                .collect();
            let fwd = r.forward.get("options").map_or(vec![], |o| split_options(o));
            prop_assert_eq!(fwd, rest);
            let pq: Vec<&String> = params.keys().filter(|k| k.starts_with("_pq_.")).collect();
            prop_assert_eq!(r.unsupported.iter().collect::<Vec<_>>(), pq);
        }

        // --- Framing --------------------------------------------------------------------------

        #[test]
        fn valid_packets_decode_to_what_was_sent(
            ps in prop::collection::vec(packet(), 1..4),
            tail in bytes(16),
        ) {
            let mut data: Vec<u8> = ps.iter().flat_map(encode).collect();
            data.extend_from_slice(&tail);
            let mut buf = BytesMut::from(&data[..]);
            for p in &ps {
                prop_assert_eq!(decode_first(&mut buf), Ok(Some(decoded(p))));
            }
            prop_assert_eq!(&buf[..], &tail[..]);
        }

        #[test]
        fn prefixes_of_valid_packets_wait(p in packet()) {
            let full = encode(&p);
            for cut in 0..full.len() {
                let mut buf = BytesMut::from(&full[..cut]);
                prop_assert_eq!(decode_first(&mut buf), Ok(None), "cut at {}", cut);
                prop_assert_eq!(&buf[..], &full[..cut]);
            }
        }

        #[test]
        fn lengths_outside_8_to_10000_are_refused_at_once(
            len in prop_oneof![any::<u32>(), 0u32..8, 10_001u32..=u32::MAX, 8u32..=10_000],
            code in prop_oneof![
                Just(SSL_REQUEST), Just(GSSENC_REQUEST), Just(CANCEL_REQUEST),
                Just(PROTOCOL_3_0), any::<u32>(),
            ],
            rest in bytes(64),
        ) {
            let mut data = len.to_be_bytes().to_vec();
            let mut only_len = BytesMut::from(&data[..]);
            data.extend_from_slice(&code.to_be_bytes());
            data.extend_from_slice(&rest);
            let mut buf = BytesMut::from(&data[..]);
            let r = decode_first(&mut buf);
            if !(8..=MAX_STARTUP_PACKET as u32).contains(&len) {
                prop_assert!(r.is_err(), "{}: {:?}", len, r);
                prop_assert!(decode_first(&mut only_len).is_err());
            } else if data.len() < len as usize {
                prop_assert_eq!(r, Ok(None));
                prop_assert_eq!(decode_first(&mut only_len), Ok(None));
            }
        }

        #[test]
        fn cancel_requests_of_16_to_268_bytes_decode(
            len in 16u32..=268,
            body in bytes(300),
        ) {
            let mut data = len.to_be_bytes().to_vec();
            data.extend_from_slice(&CANCEL_REQUEST.to_be_bytes());
            data.extend_from_slice(&body);
            let mut buf = BytesMut::from(&data[..]);
            let r = decode_first(&mut buf);
            let len = len as usize;
            if data.len() < len {
                prop_assert_eq!(r, Ok(None));
            } else {
                let pid = i32::from_be_bytes(body[..4].try_into().unwrap());
                let secret = body[4..len - 8].to_vec();
                prop_assert_eq!(r, Ok(Some(First::Cancel { pid, secret })));
                prop_assert_eq!(&buf[..], &data[len..]);
            }
        }

        #[test]
        fn cancel_requests_of_other_lengths_are_refused(
            len in prop_oneof![8usize..16, 269usize..=MAX_STARTUP_PACKET],
            fill in any::<u8>(),
        ) {
            let mut data = (len as u32).to_be_bytes().to_vec();
            data.extend_from_slice(&CANCEL_REQUEST.to_be_bytes());
            data.resize(len, fill);
            prop_assert!(decode_first(&mut BytesMut::from(&data[..])).is_err());
        }

        #[test]
        fn password_messages_frame_and_parse(pw in text(0..8), sasl in bytes(64), tail in bytes(8)) {
            let pw_body = [pw.as_bytes(), b"\0"].concat();
            let sasl_body = sasl_initial("SCRAM-SHA-256", &sasl);
            let mut data = vec![];
            for body in [&pw_body, &sasl_body] {
                data.push(b'p');
                data.extend_from_slice(&(body.len() as u32 + 4).to_be_bytes());
                data.extend_from_slice(body);
            }
            let full = data.len();
            data.extend_from_slice(&tail);
            for cut in 0..full {
                let mut buf = BytesMut::from(&data[..cut]);
                let r = decode_auth_message(&mut buf);
                // Complete messages before the cut decode; the one cut through waits.
                if cut >= 5 + pw_body.len() {
                    prop_assert_eq!(r, Ok(Some(BytesMut::from(&pw_body[..]))));
                    prop_assert_eq!(decode_auth_message(&mut buf), Ok(None));
                } else {
                    prop_assert_eq!(r, Ok(None));
                }
            }
            let mut buf = BytesMut::from(&data[..]);
            let a = decode_auth_message(&mut buf).unwrap().unwrap();
            let b = decode_auth_message(&mut buf).unwrap().unwrap();
            prop_assert_eq!(&buf[..], &tail[..]);
            prop_assert_eq!(parse_password(&a), Ok(pw));
            prop_assert_eq!(parse_sasl_initial(&b), Ok(("SCRAM-SHA-256".to_string(), sasl.clone())));
            // A SASL body cut anywhere is refused, not misread.
            for cut in 0..b.len() {
                prop_assert!(parse_sasl_initial(&b[..cut]).is_err());
            }
            prop_assert!(parse_password(&a[..a.len() - 1]).is_err());
        }

        // --- options ----------------------------------------------------------------------------

        #[test]
        fn split_options_inverts_join_options(
            toks in prop::collection::vec(text(1..5), 0..6),
        ) {
            prop_assert_eq!(split_options(&join_options(&toks)), toks);
        }

        #[test]
        fn split_options_splits_as_postgres_does(s in text(0..12)) {
            prop_assert_eq!(split_options(&s), pg_split_opts(&s));
        }

        // --- SCRAM ----------------------------------------------------------------------------

        #[test]
        fn scram_never_accepts_a_forged_proof(
            header in prop::sample::select(vec!["n,,", "y,,", "p=tls-server-end-point,,"]),
            nonce in "[!-+\\--~]{1,24}",
            proof in prop::collection::vec(any::<u8>(), 0..40),
            extra in text(0..3),
        ) {
            let client_first = format!("{header}n=,r={nonce}");
            let client_final = format!("c=*,r=*{extra},p={}", B64.encode(&proof));
            let results = scram(client_first.as_bytes(), client_final.as_bytes());
            prop_assert!(!results.is_empty(), "{} did not start", client_first);
            for r in results {
                match r {
                    Ok(m) => prop_assert!(false, "accepted a forged proof: {}", m),
                    // Extra attributes may change the nonce or the binding; anything goes but Ok.
                    Err(_) if !extra.is_empty() => {}
                    // A proof of the right length is checked, and no password matches.
                    Err(e) => prop_assert_eq!(e == AuthError::WrongPassword, proof.len() == 32),
                }
            }
        }
    }
}
