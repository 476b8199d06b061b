//! The page store: every file of a Postgres data directory as versioned 8 KiB pages, with
//! copy-on-write timelines, branch names, point-in-time branch points and GC.
//!
//! Knows nothing of Postgres processes, FUSE or HTTP. Start reading at `store.rs` (the commit
//! path), then `read.rs` (the read rule), `index.rs` (why reads are flat in ancestor depth),
//! `branch.rs` (names, retention) and `gc.rs`.

mod branch;
pub mod codec;
mod error;
mod gc;
mod ids;
mod index;
mod options;
mod orphan;
mod read;
mod store;
mod usage;
mod write;

pub use branch::{validate_name as validate_branch_name, At, BranchInfo, Retained, RetainedPoint};
pub use codec::{Attr, FileKind};
pub use error::{Errno, Error, Result};
pub use gc::{GcHandle, GcReport};
pub use ids::{format_time, parse_time, DataId, Ino, Lsn, Nanos, TimelineId, PAGE_SIZE, ROOT_INO};
pub use read::Reader;
pub use store::{Clock, Durability, ManualClock, Options, Store, SystemClock};
pub use usage::Usage;
pub use write::{NewNode, Removal, RemoveNow, SetAttr};
