//! `dts`: run job arrays across SSH hosts, place every task with a chosen algorithm, and
//! report how well the work was balanced.
//!
//! The crate is laid out as DESIGN.md describes: pure modules (inventory, job, placement,
//! stats, report) hold most of the logic and are tested without I/O; `transport` talks to
//! hosts; `runner` is the dispatcher that owns all run state.

pub mod cli;
pub mod error;
pub mod fdlimit;
pub mod fold;
pub mod identity;
pub mod inventory;
pub mod job;
pub mod nodeset;
pub mod placement;
pub mod plan;
pub mod probe;
pub mod report;
pub mod runner;
pub mod simulate;
pub mod staging;
pub mod stats;
pub mod store;
pub mod transport;

pub use error::{Error, Result};
