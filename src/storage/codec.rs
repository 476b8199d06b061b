//! On-disk encoding of keys and records.
//!
//! Every value is *sealed*: `[format u8][crc32 LE u32][body]`, where the crc covers the key, the
//! format byte and the body. Covering the key means a value that lands under the wrong key (a
//! misdirected write, a bit flip in the key) is caught just like a flipped payload byte.
//!
//! Keys are big-endian so RocksDB's bytewise order is numeric order. Versions of one object are
//! keyed by `!lsn` (bitwise not) so the newest version sorts first and a single seek to
//! `prefix ++ !L` lands on the newest version at or before `L`.

use super::error::{Error, Result};
use super::ids::{DataId, Ino, Lsn, Nanos, TimelineId, PAGE_SIZE};

const FORMAT: u8 = 1;

/// Seals `body` for storage under `key`.
pub fn seal(key: &[u8], body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(5 + body.len());
    out.push(FORMAT);
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(body);
    let crc = crc(key, FORMAT, body);
    out[1..5].copy_from_slice(&crc.to_le_bytes());
    out
}

fn crc(key: &[u8], format: u8, body: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(key);
    h.update(&[format]);
    h.update(body);
    h.finalize()
}

/// Checks a sealed value and returns its body. `what` names the record for the error.
pub fn unseal<'a>(key: &[u8], value: &'a [u8], what: impl FnOnce() -> String) -> Result<&'a [u8]> {
    if value.len() < 5 {
        return Err(Error::corrupt(
            what(),
            format!("record of {} bytes is too short", value.len()),
        ));
    }
    if value[0] != FORMAT {
        return Err(Error::corrupt(
            what(),
            format!("unknown record format {}", value[0]),
        ));
    }
    let stored = u32::from_le_bytes(value[1..5].try_into().unwrap());
    let body = &value[5..];
    let actual = crc(key, value[0], body);
    if stored != actual {
        return Err(Error::corrupt(
            what(),
            format!("checksum mismatch (stored crc32 {stored:08x}, computed {actual:08x})"),
        ));
    }
    Ok(body)
}

/// A cursor over a record body; every read is bounds-checked.
pub struct Dec<'a> {
    buf: &'a [u8],
    what: &'static str,
}

impl<'a> Dec<'a> {
    pub fn new(buf: &'a [u8], what: &'static str) -> Dec<'a> {
        Dec { buf, what }
    }
    fn err(&self, detail: &str) -> Error {
        Error::corrupt(self.what, detail.to_string())
    }
    pub fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.buf.len() < n {
            return Err(self.err("record ends early"));
        }
        let (a, b) = self.buf.split_at(n);
        self.buf = b;
        Ok(a)
    }
    pub fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }
    pub fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_be_bytes(self.take(4)?.try_into().unwrap()))
    }
    pub fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_be_bytes(self.take(8)?.try_into().unwrap()))
    }
    pub fn i64(&mut self) -> Result<i64> {
        Ok(self.u64()? as i64)
    }
    pub fn tl(&mut self) -> Result<TimelineId> {
        Ok(TimelineId(u128::from_be_bytes(
            self.take(16)?.try_into().unwrap(),
        )))
    }
    pub fn bytes(&mut self) -> Result<&'a [u8]> {
        let n = self.u32()? as usize;
        self.take(n)
    }
    pub fn string(&mut self) -> Result<String> {
        let b = self.bytes()?;
        String::from_utf8(b.to_vec()).map_err(|_| self.err("string is not UTF-8"))
    }
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }
    pub fn end(self) -> Result<()> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(self.err("trailing bytes"))
        }
    }
}

/// Appends big-endian fields to a buffer.
#[derive(Default)]
pub struct Enc(pub Vec<u8>);

impl Enc {
    pub fn u8(mut self, v: u8) -> Self {
        self.0.push(v);
        self
    }
    pub fn u32(mut self, v: u32) -> Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    pub fn u64(mut self, v: u64) -> Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    pub fn i64(self, v: i64) -> Self {
        self.u64(v as u64)
    }
    pub fn tl(mut self, t: TimelineId) -> Self {
        self.0.extend_from_slice(&t.to_bytes());
        self
    }
    pub fn bytes(mut self, b: &[u8]) -> Self {
        self = self.u32(b.len() as u32);
        self.0.extend_from_slice(b);
        self
    }
    pub fn raw(mut self, b: &[u8]) -> Self {
        self.0.extend_from_slice(b);
        self
    }
}

// ---------------------------------------------------------------------------------------------
// Keys

/// `!lsn`, so newer versions sort first.
pub fn inv(lsn: Lsn) -> [u8; 8] {
    (!lsn).to_be_bytes()
}

pub fn uninv(b: &[u8]) -> Lsn {
    !u64::from_be_bytes(b[..8].try_into().unwrap())
}

/// Length of the fixed prefix of a page key: timeline, data id, block.
pub const PAGE_PREFIX: usize = 16 + 8 + 4;
/// Length of the fixed prefix of an attr key: timeline, inode.
pub const ATTR_PREFIX: usize = 16 + 8;
/// Length of the fixed prefix of a dirent key: timeline, directory inode.
pub const DIRENT_PREFIX: usize = 16 + 8;

pub fn page_key(tl: TimelineId, did: DataId, block: u32, lsn: Lsn) -> Vec<u8> {
    Enc::default().tl(tl).u64(did).u32(block).raw(&inv(lsn)).0
}

pub fn attr_key(tl: TimelineId, ino: Ino, lsn: Lsn) -> Vec<u8> {
    Enc::default().tl(tl).u64(ino).raw(&inv(lsn)).0
}

/// Names never contain NUL, so `name ++ 0` keeps every version of one name contiguous and in
/// name order.
pub fn dirent_key(tl: TimelineId, dir: Ino, name: &[u8], lsn: Lsn) -> Vec<u8> {
    Enc::default()
        .tl(tl)
        .u64(dir)
        .raw(name)
        .u8(0)
        .raw(&inv(lsn))
        .0
}

/// Splits a dirent key into (name, lsn).
pub fn split_dirent_key(key: &[u8]) -> Result<(&[u8], Lsn)> {
    if key.len() < DIRENT_PREFIX + 1 + 8 || key[key.len() - 9] != 0 {
        return Err(Error::corrupt("dirent key", "malformed"));
    }
    let name = &key[DIRENT_PREFIX..key.len() - 9];
    Ok((name, uninv(&key[key.len() - 8..])))
}

/// Meta column family key kinds.
pub mod meta {
    use super::*;
    pub const TIMELINE: u8 = b'T';
    pub const BRANCH: u8 = b'B';
    pub const RESTORE_POINT: u8 = b'R';
    pub const TIME_INDEX: u8 = b'C';
    pub const STATS: u8 = b'S';
    pub const DROP: u8 = b'X';
    pub const ORPHAN: u8 = b'O';
    pub const GLOBAL: &[u8] = b"G";
    pub const WALKED: u8 = b'W';

    pub fn timeline(tl: TimelineId) -> Vec<u8> {
        Enc::default().u8(TIMELINE).tl(tl).0
    }
    pub fn branch(name: &str) -> Vec<u8> {
        Enc::default().u8(BRANCH).raw(name.as_bytes()).0
    }
    pub fn restore_point(tl: TimelineId, lsn: Lsn) -> Vec<u8> {
        Enc::default().u8(RESTORE_POINT).tl(tl).u64(lsn).0
    }
    pub fn time_index(ms: i64) -> Vec<u8> {
        Enc::default().u8(TIME_INDEX).i64(ms).0
    }
    pub fn stats(tl: TimelineId) -> Vec<u8> {
        Enc::default().u8(STATS).tl(tl).0
    }
    /// The last walk of `tl`'s files (`usage.rs`), kept until it writes again.
    pub fn walked(tl: TimelineId) -> Vec<u8> {
        Enc::default().u8(WALKED).tl(tl).0
    }
    /// The data id `did` was dropped (file unlinked or truncated to zero) on `tl`.
    pub fn drop(tl: TimelineId, did: DataId) -> Vec<u8> {
        Enc::default().u8(DROP).tl(tl).u64(did).0
    }
    /// Inode `ino` of `tl` lost its last name while still in use (see `orphan.rs`).
    pub fn orphan(tl: TimelineId, ino: Ino) -> Vec<u8> {
        Enc::default().u8(ORPHAN).tl(tl).u64(ino).0
    }
    /// The prefix of every orphan record of `tl`.
    pub fn orphans_of(tl: TimelineId) -> Vec<u8> {
        Enc::default().u8(ORPHAN).tl(tl).0
    }
}

/// Marker keys: "timeline `tl` has written object `obj`". One per (object, timeline), not per
/// version; see `index.rs`.
pub fn marker_key(obj: ObjKey, tl: TimelineId) -> Vec<u8> {
    Enc::default()
        .u8(obj.kind as u8)
        .u64(obj.id)
        .u32(obj.sub)
        .tl(tl)
        .0
}

pub fn decode_marker_key(key: &[u8]) -> Result<(ObjKey, TimelineId)> {
    let mut d = Dec::new(key, "marker key");
    let kind = ObjKind::from_u8(d.u8()?)?;
    let id = d.u64()?;
    let sub = d.u32()?;
    let tl = d.tl()?;
    d.end()?;
    Ok((ObjKey { kind, id, sub }, tl))
}

/// The kinds of versioned object.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
#[repr(u8)]
pub enum ObjKind {
    Page = b'P',
    Attr = b'A',
    Dir = b'D',
}

impl ObjKind {
    fn from_u8(b: u8) -> Result<ObjKind> {
        match b {
            b'P' => Ok(ObjKind::Page),
            b'A' => Ok(ObjKind::Attr),
            b'D' => Ok(ObjKind::Dir),
            _ => Err(Error::corrupt(
                "marker key",
                format!("unknown object kind {b}"),
            )),
        }
    }
}

/// A versioned object: a page `(did, block)`, an inode's attributes, or a directory's entries.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
pub struct ObjKey {
    pub kind: ObjKind,
    pub id: u64,
    pub sub: u32,
}

impl ObjKey {
    pub fn page(did: DataId, block: u32) -> ObjKey {
        ObjKey {
            kind: ObjKind::Page,
            id: did,
            sub: block,
        }
    }
    pub fn attr(ino: Ino) -> ObjKey {
        ObjKey {
            kind: ObjKind::Attr,
            id: ino,
            sub: 0,
        }
    }
    pub fn dir(ino: Ino) -> ObjKey {
        ObjKey {
            kind: ObjKind::Dir,
            id: ino,
            sub: 0,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Records

/// A stored page version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PageRec {
    /// A full 8 KiB page.
    Data(Box<[u8; PAGE_SIZE]>),
    /// An all-zero page (extension, truncation tail): stored without payload.
    Zero,
}

/// Page record tags: the first body byte.
const PAGE_RAW: u8 = 1;
const PAGE_ZERO: u8 = 2;
const PAGE_LZ4: u8 = 3;

/// A page is stored compressed only if that saves at least an eighth of it (RocksDB's own rule
/// for a block): below that, decompressing on every read costs more than the bytes save.
const WORTH_COMPRESSING: usize = PAGE_SIZE - PAGE_SIZE / 8;

impl PageRec {
    pub fn from_page(page: &[u8; PAGE_SIZE]) -> PageRec {
        if page.iter().all(|&b| b == 0) {
            PageRec::Zero
        } else {
            PageRec::Data(Box::new(*page))
        }
    }
    /// The record as stored. A page is LZ4-compressed on its own when that pays, before it
    /// reaches RocksDB: its log then carries the compressed page too (RocksDB compresses only
    /// the blocks it flushes, so a raw page cost a full 8 KiB in the log per write).
    pub fn encode(&self, key: &[u8]) -> Vec<u8> {
        match self {
            PageRec::Data(p) => {
                let mut body = vec![0u8; 1 + lz4_flex::block::get_maximum_output_size(PAGE_SIZE)];
                match lz4_flex::block::compress_into(&p[..], &mut body[1..]) {
                    Ok(n) if n <= WORTH_COMPRESSING => {
                        body[0] = PAGE_LZ4;
                        body.truncate(1 + n);
                    }
                    _ => {
                        body.clear();
                        body.push(PAGE_RAW);
                        body.extend_from_slice(&p[..]);
                    }
                }
                seal(key, &body)
            }
            PageRec::Zero => seal(key, &[PAGE_ZERO]),
        }
    }
    pub fn decode(body: &[u8]) -> Result<PageRec> {
        let bad = |what: String| Error::corrupt("page", what);
        match body.first() {
            Some(&PAGE_RAW) if body.len() == 1 + PAGE_SIZE => {
                Ok(PageRec::Data(Box::new(body[1..].try_into().unwrap())))
            }
            Some(&PAGE_ZERO) if body.len() == 1 => Ok(PageRec::Zero),
            Some(&PAGE_LZ4) => {
                let mut page = Box::new([0u8; PAGE_SIZE]);
                match lz4_flex::block::decompress_into(&body[1..], &mut page[..]) {
                    Ok(PAGE_SIZE) => Ok(PageRec::Data(page)),
                    Ok(n) => Err(bad(format!("compressed page expands to {n} bytes"))),
                    Err(e) => Err(bad(format!("compressed page: {e}"))),
                }
            }
            _ => Err(bad(format!("bad page record ({} bytes)", body.len()))),
        }
    }
}

/// File type in the namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FileKind {
    File,
    Dir,
    Symlink,
}

/// Attributes of an inode at some lsn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attr {
    pub kind: FileKind,
    /// Permission bits (07777).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    pub mtime: Nanos,
    pub ctime: Nanos,
    /// Where a regular file's pages live (0 for dirs and symlinks).
    pub did: DataId,
    /// A symlink's target.
    pub target: Vec<u8>,
}

/// An attr version: the attributes, or `None` once the inode is deleted.
pub fn encode_attr(key: &[u8], a: Option<&Attr>) -> Vec<u8> {
    let body = match a {
        None => vec![0],
        Some(a) => {
            let kind = match a.kind {
                FileKind::File => 1,
                FileKind::Dir => 2,
                FileKind::Symlink => 3,
            };
            Enc::default()
                .u8(kind)
                .u32(a.mode)
                .u32(a.uid)
                .u32(a.gid)
                .u64(a.size)
                .i64(a.mtime)
                .i64(a.ctime)
                .u64(a.did)
                .bytes(&a.target)
                .0
        }
    };
    seal(key, &body)
}

pub fn decode_attr(body: &[u8]) -> Result<Option<Attr>> {
    let mut d = Dec::new(body, "inode attributes");
    let kind = match d.u8()? {
        0 => {
            d.end()?;
            return Ok(None);
        }
        1 => FileKind::File,
        2 => FileKind::Dir,
        3 => FileKind::Symlink,
        k => {
            return Err(Error::corrupt(
                "inode attributes",
                format!("unknown file kind {k}"),
            ))
        }
    };
    let a = Attr {
        kind,
        mode: d.u32()?,
        uid: d.u32()?,
        gid: d.u32()?,
        size: d.u64()?,
        mtime: d.i64()?,
        ctime: d.i64()?,
        did: d.u64()?,
        target: d.bytes()?.to_vec(),
    };
    d.end()?;
    Ok(Some(a))
}

/// A directory entry version: the inode it names, or 0 once removed.
pub fn encode_dirent(key: &[u8], ino: Ino) -> Vec<u8> {
    seal(key, &ino.to_be_bytes())
}

pub fn decode_dirent(body: &[u8]) -> Result<Ino> {
    let mut d = Dec::new(body, "directory entry");
    let ino = d.u64()?;
    d.end()?;
    Ok(ino)
}

/// A timeline: its divergence marker and when it was made. Never rewritten.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimelineRec {
    /// (parent timeline, lsn): reads fall through to the parent as of this lsn.
    pub branch_point: Option<(TimelineId, Lsn)>,
    /// The first lsn this timeline's state is defined at (its branch point, or its creation).
    pub start_lsn: Lsn,
    pub created_at: Nanos,
}

impl TimelineRec {
    pub fn encode(&self, key: &[u8]) -> Vec<u8> {
        let mut e = Enc::default();
        e = match self.branch_point {
            None => e.u8(0),
            Some((p, l)) => e.u8(1).tl(p).u64(l),
        };
        seal(key, &e.u64(self.start_lsn).i64(self.created_at).0)
    }
    pub fn decode(body: &[u8]) -> Result<TimelineRec> {
        let mut d = Dec::new(body, "timeline record");
        let branch_point = match d.u8()? {
            0 => None,
            1 => Some((d.tl()?, d.u64()?)),
            _ => return Err(Error::corrupt("timeline record", "bad parent flag")),
        };
        let r = TimelineRec {
            branch_point,
            start_lsn: d.u64()?,
            created_at: d.i64()?,
        };
        d.end()?;
        Ok(r)
    }
}

/// A branch name's target. Moving the name rewrites this record atomically.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BranchRec {
    pub timeline: TimelineId,
    /// The branch this one was forked from (what `reset` returns to), if any.
    pub parent: Option<String>,
    pub created_at: Nanos,
    /// A snapshot: a branch that is never written.
    pub snapshot: bool,
    /// The control plane's notes on this branch (protection, expiry, deletion), opaque here.
    /// Stored with the name so they change atomically with it. Absent in older records.
    pub annotations: String,
}

impl BranchRec {
    pub fn encode(&self, key: &[u8]) -> Vec<u8> {
        let mut e = Enc::default().tl(self.timeline);
        e = match &self.parent {
            None => e.u8(0),
            Some(p) => e.u8(1).bytes(p.as_bytes()),
        };
        e = e.i64(self.created_at).u8(self.snapshot as u8);
        if !self.annotations.is_empty() {
            e = e.bytes(self.annotations.as_bytes());
        }
        seal(key, &e.0)
    }
    pub fn decode(body: &[u8]) -> Result<BranchRec> {
        let mut d = Dec::new(body, "branch record");
        let timeline = d.tl()?;
        let parent = match d.u8()? {
            0 => None,
            1 => Some(d.string()?),
            _ => return Err(Error::corrupt("branch record", "bad parent flag")),
        };
        let created_at = d.i64()?;
        let snapshot = match d.u8()? {
            0 => false,
            1 => true,
            _ => return Err(Error::corrupt("branch record", "bad snapshot flag")),
        };
        let annotations = if d.is_empty() {
            String::new()
        } else {
            d.string()?
        };
        d.end()?;
        Ok(BranchRec {
            timeline,
            parent,
            created_at,
            snapshot,
            annotations,
        })
    }
}

/// Per-timeline accounting, rewritten with every commit of that timeline.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatsRec {
    /// Bytes of stored versions (keys and values) this timeline owns.
    pub own_bytes: u64,
    pub versions: u64,
    /// The lsn of the timeline's last commit. Stores written before it was kept have two
    /// fields; `decode` returns `None` for it then.
    pub last_write: Lsn,
}

impl StatsRec {
    pub fn encode(&self, key: &[u8]) -> Vec<u8> {
        encode_u64s(key, &[self.own_bytes, self.versions, self.last_write])
    }
    /// The record, and whether it knew its last write.
    pub fn decode(body: &[u8]) -> Result<(StatsRec, bool)> {
        if let Ok([own_bytes, versions, last_write]) = decode_u64s::<3>(body, "timeline stats") {
            return Ok((
                StatsRec {
                    own_bytes,
                    versions,
                    last_write,
                },
                true,
            ));
        }
        let [own_bytes, versions] = decode_u64s::<2>(body, "timeline stats")?;
        let s = StatsRec {
            own_bytes,
            versions,
            last_write: 0,
        };
        Ok((s, false))
    }
}

/// Global counters, rewritten with every commit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GlobalRec {
    pub last_lsn: Lsn,
    pub next_ino: Ino,
}

/// Encodes a record of plain u64 fields.
pub fn encode_u64s(key: &[u8], vals: &[u64]) -> Vec<u8> {
    let mut e = Enc::default();
    for v in vals {
        e = e.u64(*v);
    }
    seal(key, &e.0)
}

pub fn decode_u64s<const N: usize>(body: &[u8], what: &'static str) -> Result<[u64; N]> {
    let mut d = Dec::new(body, what);
    let mut out = [0u64; N];
    for v in out.iter_mut() {
        *v = d.u64()?;
    }
    d.end()?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_of_older_stores_decode_without_their_last_write() {
        let k = meta::stats(TimelineId(7));
        let old = encode_u64s(&k, &[10, 2]);
        let (s, known) = StatsRec::decode(unseal(&k, &old, String::new).unwrap()).unwrap();
        assert_eq!((s.own_bytes, s.versions, known), (10, 2, false));
        let new = StatsRec {
            own_bytes: 10,
            versions: 2,
            last_write: 99,
        };
        let body = new.encode(&k);
        assert_eq!(
            StatsRec::decode(unseal(&k, &body, String::new).unwrap()).unwrap(),
            (new, true)
        );
        let four = encode_u64s(&k, &[1, 2, 3, 4]);
        assert!(StatsRec::decode(unseal(&k, &four, String::new).unwrap()).is_err());
    }

    #[test]
    fn seal_detects_any_flipped_bit() {
        let key = page_key(TimelineId(7), 3, 9, 42);
        // A page that does not compress (a raw record) and one that does.
        let mut noise = [0u8; PAGE_SIZE];
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        for b in noise.iter_mut() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = x as u8;
        }
        let raw = PageRec::Data(Box::new(noise)).encode(&key);
        assert_eq!(raw.len(), 5 + 1 + PAGE_SIZE);
        let packed = PageRec::Data(Box::new([0xAB; PAGE_SIZE])).encode(&key);
        assert!(packed.len() < 100, "{} bytes", packed.len());
        for v in [&raw, &packed] {
            for i in [0usize, 1, 4, 5, 6, v.len() / 2, v.len() - 1] {
                let mut bad = v.clone();
                bad[i] ^= 0x10;
                assert!(
                    unseal(&key, &bad, || "p".into())
                        .and_then(PageRec::decode)
                        .is_err(),
                    "byte {i}"
                );
            }
            // The same value under another key is caught too.
            let other = page_key(TimelineId(7), 3, 10, 42);
            assert!(unseal(&other, v, || "p".into()).is_err());
            let back = unseal(&key, v, || "p".into()).and_then(PageRec::decode);
            assert!(back.is_ok());
        }
        let body = |v: &[u8]| {
            unseal(&key, v, || "p".into())
                .and_then(PageRec::decode)
                .unwrap()
        };
        assert_eq!(body(&raw), PageRec::Data(Box::new(noise)));
        assert_eq!(body(&packed), PageRec::Data(Box::new([0xAB; PAGE_SIZE])));
    }

    #[test]
    fn a_compressed_page_must_expand_to_exactly_a_page() {
        let short = lz4_flex::block::compress(&[7u8; PAGE_SIZE - 1]);
        let long = lz4_flex::block::compress(&[7u8; PAGE_SIZE + 1]);
        for c in [short, long, vec![0xFF; 40]] {
            let mut body = vec![PAGE_LZ4];
            body.extend_from_slice(&c);
            assert!(PageRec::decode(&body).is_err());
        }
    }

    #[test]
    fn records_round_trip() {
        let k = b"k";
        let a = Attr {
            kind: FileKind::Symlink,
            mode: 0o777,
            uid: 1,
            gid: 2,
            size: 3,
            mtime: -4,
            ctime: 5,
            did: 6,
            target: b"../x".to_vec(),
        };
        let v = encode_attr(k, Some(&a));
        assert_eq!(
            decode_attr(unseal(k, &v, String::new).unwrap()).unwrap(),
            Some(a)
        );
        let t = TimelineRec {
            branch_point: Some((TimelineId(9), 10)),
            start_lsn: 10,
            created_at: 11,
        };
        assert_eq!(
            TimelineRec::decode(unseal(k, &t.encode(k), String::new).unwrap()).unwrap(),
            t
        );
        let b = BranchRec {
            timeline: TimelineId(1),
            parent: Some("main".into()),
            created_at: 3,
            snapshot: true,
            annotations: String::new(),
        };
        assert_eq!(
            BranchRec::decode(unseal(k, &b.encode(k), String::new).unwrap()).unwrap(),
            b
        );
        let b = BranchRec {
            annotations: r#"{"protected":true}"#.into(),
            ..b
        };
        assert_eq!(
            BranchRec::decode(unseal(k, &b.encode(k), String::new).unwrap()).unwrap(),
            b
        );
        let key = dirent_key(TimelineId(1), 2, b"base", 77);
        let (name, lsn) = split_dirent_key(&key).unwrap();
        assert_eq!((name, lsn), (&b"base"[..], 77));
    }
}
