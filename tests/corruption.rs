//! One byte flipped in a stored page, on disk, is reported as a checksum error naming the file
//! and block; the damaged bytes are never returned as data.

mod common;

use lakelet::storage::{Error, NewNode, Options, Store, TimelineId, PAGE_SIZE, ROOT_INO};

#[test]
fn flipped_byte_on_disk_is_a_checksum_error() {
    // A page that does not compress is stored raw; this one is stored LZ4-compressed.
    let noise = common::noise(1, PAGE_SIZE);
    let pattern: Vec<u8> = b"lakelet-corruption-pattern-"
        .iter()
        .cycle()
        .take(PAGE_SIZE)
        .copied()
        .collect();
    let packed = lz4_flex::block::compress(&pattern);
    assert!(packed.len() < PAGE_SIZE / 2);
    flip_and_read(&noise, &noise[..64]);
    flip_and_read(&pattern, &packed[..packed.len().min(32)]);
}

/// Writes `page` as block 1 of a file, flips one bit of the stored bytes found by `needle`
/// in the SST files, and reads the block back.
fn flip_and_read(page: &[u8], needle: &[u8]) {
    let dir = tempfile::tempdir().unwrap();
    let opts = Options {
        compress: false,
        ..Options::default()
    };
    let (tl, ino) = {
        let s = Store::open(dir.path(), opts.clone()).unwrap();
        let tl: TimelineId = s
            .create_root_branch("main", 0, 0)
            .unwrap()
            .timeline
            .parse()
            .unwrap();
        let (ino, _) = s
            .create(tl, ROOT_INO, b"16384", NewNode::File, 0o600, 0, 0)
            .unwrap();
        s.write(tl, ino, 0, &vec![1u8; PAGE_SIZE]).unwrap();
        s.write(tl, ino, PAGE_SIZE as u64, page).unwrap();
        s.flush().unwrap();
        (tl, ino)
    };
    // Find the page in the SST files and flip one bit in the middle of it.
    let mut flipped = false;
    for e in std::fs::read_dir(dir.path()).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "sst") {
            let mut bytes = std::fs::read(&p).unwrap();
            if let Some(pos) = bytes.windows(needle.len()).position(|w| w == needle) {
                bytes[pos + needle.len() / 2] ^= 0x01;
                std::fs::write(&p, &bytes).unwrap();
                flipped = true;
            }
        }
    }
    assert!(flipped, "the page was not found in any SST file");
    let s = Store::open(dir.path(), opts).unwrap();
    let r = s.reader(tl, None).unwrap();
    let err = r.read(ino, PAGE_SIZE as u64, PAGE_SIZE).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::Corrupt { .. }), "{msg}");
    assert!(
        msg.contains("block 1") && msg.contains(&format!("inode {ino}")),
        "{msg}"
    );
    assert!(
        msg.to_lowercase().contains("checksum") || msg.contains("Corruption"),
        "{msg}"
    );
}
