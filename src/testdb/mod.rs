//! A fresh database per test, the client's half: the *template* — a snapshot holding the
//! project's migrations and seeds, named by a hash of them — built through the Branches API
//! client and the migration runner only (like scm and migrate, it knows connection strings
//! and the client, never the daemon's insides). The warm pool that forks it lives in the
//! daemon (`api/testpool`); `lakelet test` (cli/test.rs) ties the two to a test command.
//!
//! A template is a snapshot, not a branch: nothing ever writes it, so every test branch
//! forked from it starts from exactly what the hash names. It is built on a throwaway branch
//! whose compute is stopped cleanly first, so the forks start without crash recovery.

pub mod template;

pub use template::{ensure, Spec, Template};
