//! Voice activity of the first two channels, decided once the recording has been read, from the
//! level of every 20 ms window after a high-pass filter (kept: 4 bytes per window per channel,
//! 1.4 MB per audio hour of a two-channel call).
//!
//! Deciding at the end lets each channel's noise floor come from the whole recording and lets
//! echo be judged against the other channel before and after each window. A window is talk when
//! 1. its level is at least [`NOISE_MARGIN_DB`] above the channel's noise floor (the
//!    [`NOISE_PERCENTILE`] of its window levels, at most [`NOISE_FLOOR_CAP_DBFS`]) and never
//!    below [`SILENCE_DBFS`]; and
//! 2. it is not echo: a window at least [`ECHO_MARGIN_DB`] below what the other channel carried
//!    within the preceding [`ECHO_MAX_DELAY_MS`], whose level envelope follows the other
//!    channel's (correlation ≥ [`ECHO_MIN_CORRELATION`] over the [`ECHO_SPAN_MS`] before or the
//!    one after the window, at some delay in that range), is the other party leaking in.

use super::{BRIDGED_PAUSE_MS, DBFS_FLOOR, SILENCE_DBFS, WINDOW_MS, dbfs};

/// A window must be this far above its channel's noise floor to be talk, in dB.
pub const NOISE_MARGIN_DB: f64 = 10.0;
/// The noise floor is this quantile of a channel's window levels.
pub const NOISE_PERCENTILE: f64 = 0.10;
/// A noise floor estimate above this (dBFS) is a talker who hardly pauses, not noise.
pub const NOISE_FLOOR_CAP_DBFS: f64 = -40.0;
/// Echo is at least this much quieter than the other channel, in dB.
pub const ECHO_MARGIN_DB: f64 = 15.0;
/// Longest echo delay looked for, in milliseconds.
pub const ECHO_MAX_DELAY_MS: u32 = 200;
/// Span before (and after) a window over which level envelopes are correlated, in milliseconds.
pub const ECHO_SPAN_MS: u32 = 400;
/// Pearson correlation of the two envelopes (dB) at which a quiet window is echo.
pub const ECHO_MIN_CORRELATION: f64 = 0.7;
/// Envelopes are floored here before correlating, so digital silence does not dominate.
const ENVELOPE_FLOOR_DBFS: f64 = -90.0;

/// Per-window levels of one channel.
#[derive(Debug, Default, Clone)]
pub(super) struct Track {
    /// Mean square after the high-pass, one per window.
    pub power: Vec<f32>,
    /// Frames in a window, and in the last one (which may be short).
    pub window_len: u32,
    pub last_len: u32,
}

impl Track {
    /// Frames in each window, in order.
    fn lens(&self) -> impl Iterator<Item = u64> + '_ {
        let n = self.power.len();
        (0..n).map(move |w| {
            u64::from(if w + 1 == n {
                self.last_len
            } else {
                self.window_len
            })
        })
    }
}

/// Talk decisions and their sums for one channel.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Activity {
    pub talk_frames: u64,
    pub silent_frames: u64,
    /// Mean power over talk windows, dBFS; `None` with no talk.
    pub active_dbfs: Option<f64>,
}

/// Decides talk for one or two channels; returns each channel's activity and the frames in which
/// both talk and in which either does (talk spurts: pauses bridged as for talk time).
pub(super) fn decide(tracks: &[Track], rate: u32) -> (Vec<Activity>, u64, u64) {
    let per_ms = |ms: u32| (ms / WINDOW_MS) as usize;
    let levels: Vec<Vec<f64>> = tracks
        .iter()
        .map(|t| t.power.iter().map(|&p| dbfs(f64::from(p))).collect())
        .collect();
    let mut talk: Vec<Vec<bool>> = levels
        .iter()
        .map(|l| {
            let threshold = (noise_floor(l) + NOISE_MARGIN_DB).max(SILENCE_DBFS);
            l.iter().map(|&x| x >= threshold).collect()
        })
        .collect();
    if let [a, b] = &levels[..] {
        let echo = Echo {
            delay: per_ms(ECHO_MAX_DELAY_MS),
            span: per_ms(ECHO_SPAN_MS),
        };
        let echo_a = echo.find(a, b, &talk[0]);
        let echo_b = echo.find(b, a, &talk[1]);
        for (t, e) in talk[0].iter_mut().zip(echo_a) {
            *t &= !e;
        }
        for (t, e) in talk[1].iter_mut().zip(echo_b) {
            *t &= !e;
        }
    }
    let bridge = u64::from(rate) * u64::from(BRIDGED_PAUSE_MS) / 1000;
    let activity = tracks
        .iter()
        .zip(&talk)
        .map(|(track, talk)| activity(track, talk, bridge))
        .collect();
    let spurts: Vec<Vec<bool>> = talk
        .iter()
        .map(|t| bridged(t, (BRIDGED_PAUSE_MS / WINDOW_MS) as usize))
        .collect();
    let (mut both, mut either) = (0, 0);
    if let [a, b] = &spurts[..] {
        for ((x, y), len) in a.iter().zip(b).zip(tracks[0].lens()) {
            both += u64::from(*x && *y) * len;
            either += u64::from(*x || *y) * len;
        }
    }
    (activity, both, either)
}

fn activity(track: &Track, talk: &[bool], bridge: u64) -> Activity {
    let (mut talk_frames, mut silent_frames, mut pause, mut spoken) = (0u64, 0u64, 0u64, false);
    let mut active_power = 0f64;
    let mut active = 0u64;
    for ((&t, len), &p) in talk.iter().zip(track.lens()).zip(&track.power) {
        if t {
            active += len;
            talk_frames += len;
            if spoken && pause <= bridge {
                talk_frames += pause;
            }
            active_power += f64::from(p) * len as f64;
            pause = 0;
            spoken = true;
        } else {
            silent_frames += len;
            pause += len;
        }
    }
    Activity {
        talk_frames,
        silent_frames,
        active_dbfs: (active > 0).then(|| dbfs(active_power / active as f64)),
    }
}

/// Talk windows with pauses of at most `bridge` windows between them filled in.
fn bridged(talk: &[bool], bridge: usize) -> Vec<bool> {
    let mut out = talk.to_vec();
    let mut last: Option<usize> = None;
    for (w, &t) in talk.iter().enumerate() {
        if t {
            if let Some(l) = last
                && w - l - 1 <= bridge
            {
                out[l + 1..w].iter_mut().for_each(|x| *x = true);
            }
            last = Some(w);
        }
    }
    out
}

/// The channel's noise floor in dBFS: a low quantile of its window levels, capped.
fn noise_floor(levels: &[f64]) -> f64 {
    if levels.is_empty() {
        return DBFS_FLOOR;
    }
    let mut sorted = levels.to_vec();
    let k = ((sorted.len() - 1) as f64 * NOISE_PERCENTILE) as usize;
    let (_, floor, _) = sorted.select_nth_unstable_by(k, f64::total_cmp);
    floor.min(NOISE_FLOOR_CAP_DBFS)
}

/// Echo search, in windows.
struct Echo {
    delay: usize,
    span: usize,
}

impl Echo {
    /// Which of `own`'s talk candidates are the `other` channel's echo.
    fn find(&self, own: &[f64], other: &[f64], candidate: &[bool]) -> Vec<bool> {
        let env = |x: f64| x.max(ENVELOPE_FLOOR_DBFS);
        (0..own.len())
            .map(|w| {
                if !candidate[w] {
                    return false;
                }
                let loudest = (w.saturating_sub(self.delay)..=w)
                    .map(|t| other[t])
                    .fold(f64::MIN, f64::max);
                if loudest < own[w] + ECHO_MARGIN_DB {
                    return false;
                }
                // The span before the window and the span after it are tried apart: the other
                // party's echo ends (or starts) where this party's own talk begins (or ends).
                let before = w.saturating_sub(self.span)..w + 1;
                let after = w..(w + self.span + 1).min(own.len());
                [before, after].into_iter().any(|span| {
                    (0..=self.delay).any(|d| {
                        let pairs =
                            (span.start.max(d)..span.end).map(|t| (env(own[t]), env(other[t - d])));
                        correlated(pairs)
                    })
                })
            })
            .collect()
    }
}

/// Pearson correlation ≥ [`ECHO_MIN_CORRELATION`]. Two flat envelopes (a steady tone and its
/// leak) count as correlated; one flat envelope against a varying one does not.
fn correlated(pairs: impl Iterator<Item = (f64, f64)> + Clone) -> bool {
    let n = pairs.clone().count() as f64;
    if n < 5.0 {
        return false;
    }
    let (sx, sy) = pairs
        .clone()
        .fold((0.0, 0.0), |(a, b), (x, y)| (a + x, b + y));
    let (mx, my) = (sx / n, sy / n);
    let (mut vx, mut vy, mut cov) = (0.0, 0.0, 0.0);
    for (x, y) in pairs {
        vx += (x - mx) * (x - mx);
        vy += (y - my) * (y - my);
        cov += (x - mx) * (y - my);
    }
    // Below 1 dB of spread an envelope is flat.
    let (flat_x, flat_y) = (vx / n < 1.0, vy / n < 1.0);
    match (flat_x, flat_y) {
        (true, true) => true,
        (true, false) | (false, true) => false,
        _ => cov / (vx * vy).sqrt() >= ECHO_MIN_CORRELATION,
    }
}
