//! Feeds arbitrary bytes to every decoder of on-disk records in `lakelet::storage::codec`.
//!
//! Each decoder must return `Ok` or `Err` on any input, never panic. Every input is given to
//! every decoder (they are cheap), and is also split into a key and a value for `unseal`:
//! the first byte (mod the remaining length + 1) is the key length.
//!
//! When `unseal` accepts a value (the checksum matches, which the fuzzer only reaches by
//! seeding or luck), the body is decoded as every record type as well, which is the path
//! real reads take.

#![no_main]

use lakelet::storage::codec::{
    decode_attr, decode_dirent, decode_marker_key, decode_u64s, seal, split_dirent_key, unseal,
    BranchRec, PageRec, TimelineRec,
};
use lakelet::storage::PAGE_SIZE;
use libfuzzer_sys::fuzz_target;

fn decode_body(body: &[u8]) {
    let _ = PageRec::decode(body);
    let _ = decode_attr(body);
    let _ = decode_dirent(body);
    let _ = TimelineRec::decode(body);
    let _ = BranchRec::decode(body);
    let _ = decode_u64s::<1>(body, "fuzz u64x1");
    let _ = decode_u64s::<2>(body, "fuzz u64x2");
}

fn decode_key(key: &[u8]) {
    let _ = decode_marker_key(key);
    let _ = split_dirent_key(key);
}

fuzz_target!(|data: &[u8]| {
    // The whole input, as a body and as a key.
    decode_body(data);
    decode_key(data);

    // A page record body is 1 + PAGE_SIZE bytes, longer than libFuzzer's default -max_len
    // (4096): pad the input to that length so `PageRec::decode`'s data branch is reached too.
    let mut page = data.to_vec();
    page.resize(1 + PAGE_SIZE, 0);
    decode_body(&page);

    // Split into key and value for `unseal`.
    let (key, value) = match data.split_first() {
        Some((&n, rest)) => rest.split_at(n as usize % (rest.len() + 1)),
        None => (&[][..], &[][..]),
    };
    decode_key(key);
    if let Ok(body) = unseal(key, value, || "fuzz record".to_string()) {
        decode_body(body);
    }

    // Seal the value under the key, so the fuzzer's bytes reach the decoders through a
    // successful `unseal` too, and check that `unseal` gives back exactly the sealed body.
    let sealed = seal(key, value);
    let body = unseal(key, &sealed, || "fuzz record".to_string())
        .expect("unseal rejected a freshly sealed value");
    assert_eq!(body, value);
    decode_body(body);
});
