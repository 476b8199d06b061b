//! Every decoder of on-disk records returns `Ok` or `Err` on any input, never panics; and every
//! encoder's output decodes back to what was encoded.
//!
//! This is the CI-sized counterpart of the cargo-fuzz target in `fuzz/` (see fuzz/README.md).
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
    )
        .prop_map(|(timeline, parent, created_at, snapshot)| BranchRec {
            timeline,
            parent,
            created_at,
            snapshot,
        })
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
