//! End-to-end tests: the real `wxcc` binary against the in-process simulator on 127.0.0.1,
//! writing to temporary directories. One test binary (ripgrep's layout) so it links once.

mod audio;
mod auth;
mod azure;
mod check;
mod cli;
mod deploy;
mod derive;
mod duckdb;
mod incremental;
mod lease;
mod lineage;
mod listen;
mod metrics;
mod pii;
mod query;
mod realapi;
mod report;
mod robust;
mod s3;
mod security;
mod stop;
mod sync;
mod util;
