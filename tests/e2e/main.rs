//! End-to-end tests: the real `wxcc` binary against the in-process simulator on 127.0.0.1,
//! writing to temporary directories. One test binary (ripgrep's layout) so it links once.

mod auth;
mod azure;
mod cli;
mod derive;
mod incremental;
mod lease;
mod query;
mod realapi;
mod robust;
mod s3;
mod security;
mod stop;
mod sync;
mod util;
