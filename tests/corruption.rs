//! One byte flipped in a stored page, on disk, is reported as a checksum error naming the file
//! and block; the damaged bytes are never returned as data.

use lakelet::storage::{Error, NewNode, Options, Store, TimelineId, PAGE_SIZE, ROOT_INO};

#[test]
fn flipped_byte_on_disk_is_a_checksum_error() {
    let dir = tempfile::tempdir().unwrap();
    let opts = Options {
        compress: false,
        ..Options::default()
    };
    let pattern: Vec<u8> = b"lakelet-corruption-pattern-"
        .iter()
        .cycle()
        .take(PAGE_SIZE)
        .copied()
        .collect();
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
        s.write(tl, ino, PAGE_SIZE as u64, &pattern).unwrap();
        s.flush().unwrap();
        (tl, ino)
    };
    // Find the page in the SST files and flip one bit in the middle of it.
    let mut flipped = false;
    for e in std::fs::read_dir(dir.path()).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "sst") {
            let mut bytes = std::fs::read(&p).unwrap();
            if let Some(pos) = bytes.windows(64).position(|w| w == &pattern[..64]) {
                bytes[pos + 4000] ^= 0x01;
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
