//! compute: one unmodified Postgres per running branch, on the FUSE view of its timeline.
//!
//! `pg.rs` finds binaries, `user.rs` the unprivileged user, `postgres.rs` drives one postmaster,
//! `manager.rs` owns them all (start on demand, idle stop, branch operations that must stop or
//! checkpoint a compute). `tree.rs` copies a directory tree into a branch and out (import and
//! export of stopped clusters). This layer never reads or writes pages itself.

mod archive;
pub mod claim;
mod manager;
pub mod pg;
pub mod postgres;
pub mod tree;
pub mod user;
pub mod wal;
pub mod writes;

pub use manager::{
    clear_stale, remove_run_dir, run_dir, BranchLock, ComputeStatus, Computes, Conflict, Endpoint,
    Refused, Settings, StartCheck, ViewCounters,
};
