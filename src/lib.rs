//! wxcc: export Webex Contact Center tasks, capture metadata and call recordings
//! into Hive-partitioned Parquet and object storage, and query them with SQL.
//!
//! Modules follow the data flow: `cli` → `sync` → `api` / `auth` / `lake` / `audio` / `query`.
//! `sim` is a stand-alone simulator of the Webex and WxCC APIs; it never imports the client's types.

pub mod api;
pub mod audio;
pub mod auth;
pub mod check;
pub mod cli;
pub mod config;
pub mod lake;
pub mod listen;
pub mod net;
#[cfg(feature = "query")]
pub mod query;
#[cfg(feature = "query")]
pub mod report;
pub mod sim;
pub mod sync;
