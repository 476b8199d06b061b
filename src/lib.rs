//! lakelet: a local copy-on-write branching Postgres.
//!
//! Layers (dependencies point down only); see docs/ARCHITECTURE.md.

pub mod api;
pub mod bench;
pub mod cli;
pub mod compute;
pub mod diff;
pub mod experiment;
pub mod fs;
pub mod lifecycle;
pub mod migrate;
pub mod policy;
pub mod proxy;
pub mod scm;
pub mod storage;
pub mod tdd;
pub mod testdb;
pub mod util;
