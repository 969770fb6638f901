//! Helpers shared by the benchmarks that write synthetic lakes.
#![allow(dead_code)]

/// The synthetic lakes' one org.
pub const ORG: &str = "5f1c0e2a-9b7d-4c3e-8a6f-0d2b4e6f8a1c";
/// Queue names, picked pseudo-randomly per task.
pub const QUEUES: [&str; 8] = [
    "Support",
    "Sales",
    "Billing",
    "Retention",
    "Onboarding",
    "Claims",
    "VIP",
    "Overflow",
];

/// splitmix64: deterministic, dependency-free pseudo-random numbers.
pub fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// A `usize` knob from the environment, or `default`.
pub fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

pub mod report_lake;
