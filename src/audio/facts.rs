//! Audio facts: level, silence, clipping, talk time and crosstalk of one recording, measured in a
//! single streaming pass so they can be computed as fast as recordings download.
//!
//! Analysis is pure and synchronous: it reads any `std::io::Read` block by block (memory does not
//! grow with duration) and never trusts the capture metadata for the format: the WAV header says
//! what the samples are (see REFERENCE §4.5: rate and codec are unconfirmed). Run it off the async
//! runtime (`spawn_blocking`, or [`analyze_many`] on rayon).
//!
//! Definitions (also in `schemas/audio_facts.toml` and the README, and asserted by the tests on
//! synthetic signals), chosen to be stable columns in Parquet (never NaN, never infinite):
//! - Levels are dBFS of samples normalised to [-1, 1]: a full-scale sine is -3.01 dBFS RMS.
//!   Digital silence reads [`DBFS_FLOOR`] (-120 dBFS) instead of -∞.
//! - Clipping: samples in runs of at least [`CLIP_RUN`] consecutive samples at full scale (within
//!   one LSB) of the same sign. A clean full-scale sine touches full scale one sample at a time.
//! - Activity (first two channels only) is judged per window of [`WINDOW_MS`] (20 ms) on the
//!   signal high-passed at [`HIGH_PASS_HZ`] (which removes DC offset and mains hum), against the
//!   channel's own noise floor and the other channel's echo: see [`vad`]. Talk time bridges
//!   pauses of at most [`BRIDGED_PAUSE_MS`] between talk windows (the gaps between words), so it
//!   can exceed `(1 - silence_share) × duration`; `silence_share` is not bridged.
//!   `crosstalk_share` is the share of talk time (either party, bridged) in which both talk.
//! - Shares are over frames (time), so a short last window weighs what it lasts. A recording
//!   with no frames is an error ([`FactsError::Empty`]), never facts of zeros.

use std::io::Read;

use rayon::prelude::*;
use serde::Serialize;

mod derive;
mod g711;
pub mod vad;
mod wav;

#[cfg(test)]
mod derive_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod vad_tests;
#[cfg(test)]
mod wav_tests;

pub use derive::{Derivative, DerivedInfo, derive, derive_mono16k};

/// Level reported for digital silence, in dBFS.
pub const DBFS_FLOOR: f64 = -120.0;
/// Length of an analysis window, in milliseconds.
pub const WINDOW_MS: u32 = 20;
/// Windows quieter than this (RMS after the high-pass, dBFS) are never talk, whatever the
/// channel's noise floor.
pub const SILENCE_DBFS: f64 = -50.0;
/// Pauses up to this long between talk windows still count as talk time.
pub const BRIDGED_PAUSE_MS: u32 = 200;
/// Cut-off of the first-order high-pass applied before judging activity, in Hz.
pub const HIGH_PASS_HZ: f64 = 150.0;
/// Shortest run of consecutive full-scale samples that counts as clipping.
pub const CLIP_RUN: u64 = 3;
/// Version of these definitions, stored with every row: a lake analysed by an older version is
/// analysed again (and its derivatives made again) by the next sync.
pub const ANALYSER_VERSION: i64 = 2;

#[derive(Debug, thiserror::Error)]
pub enum FactsError {
    /// The input is not RIFF/WAVE at all (empty, HTML error page, another container).
    #[error("{0}")]
    NotWav(String),
    /// A WAV this module does not decode (ADPCM, GSM, MP3-in-WAV, RF64...).
    #[error("unsupported WAV: {0}")]
    Unsupported(String),
    /// A WAV whose header or length is inconsistent, e.g. cut off mid-download.
    #[error("corrupt WAV: {0}")]
    Corrupt(String),
    /// A well-formed WAV holding no audio at all.
    #[error("the WAV holds no audio (0 frames)")]
    Empty,
    #[error("I/O error on audio: {0}")]
    Io(#[from] std::io::Error),
}

pub type Result<T, E = FactsError> = std::result::Result<T, E>;

/// Facts about one recording, as its header and samples say.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AudioFacts {
    /// [`ANALYSER_VERSION`] of the definitions these facts follow.
    pub analyser_version: i64,
    /// Sample encoding: `pcm_u8`, `pcm_s16le`, `pcm_s24le`, `pcm_s32le`, `float32`, `mulaw`, `alaw`.
    pub format: String,
    pub sample_rate: u32,
    pub channels: u16,
    /// Significant bits per sample as stored (8 for G.711, which decodes to 13–14 bits of range).
    pub bits_per_sample: u16,
    /// Samples per channel.
    pub frames: u64,
    pub duration_ms: i64,
    /// One entry per channel, in file order; which party each is comes from the capture's
    /// `channel1`/`channel2`, not from here.
    pub channel_stats: Vec<ChannelStats>,
    /// Share of talk time (either of the first two channels talking) during which both talk:
    /// people talking over each other. 0 when nobody talks or with one channel.
    pub crosstalk_share: f64,
    /// What was repaired to read the file (a streamed header's length, a partial last frame).
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChannelStats {
    /// RMS over the whole channel, dBFS, floored at [`DBFS_FLOOR`].
    pub rms_dbfs: f64,
    /// Largest absolute sample, dBFS, floored at [`DBFS_FLOOR`].
    pub peak_dbfs: f64,
    /// Share of samples in runs of at least [`CLIP_RUN`] full-scale samples (integer PCM within
    /// one LSB of either end, float at or beyond ±1.0, G.711 at its extreme code).
    pub clipping_share: f64,
    /// Share of time in windows that are not talk. `None` beyond the second channel.
    pub silence_share: Option<f64>,
    /// Time in talk windows plus bridged pauses. `None` beyond the second channel.
    pub talk_time_ms: Option<i64>,
    /// Speech-only level (ITU-T P.56 style active level): power over talk windows after the
    /// high-pass, dBFS. `None` without talk and beyond the second channel.
    pub active_level_dbfs: Option<f64>,
}

/// Analyses one WAV recording, streaming it block by block.
pub fn analyze<R: Read>(mut reader: R) -> Result<AudioFacts> {
    let header = wav::read_header(&mut reader)?;
    let mut meter = Meter::new(&header);
    let mut blocks = wav::Blocks::new(reader, header);
    loop {
        let n = blocks.next_block()?;
        if n == 0 {
            break;
        }
        meter.push(&blocks, n);
    }
    if blocks.frames() == 0 {
        return Err(FactsError::Empty);
    }
    Ok(meter.finish(&header, blocks.repairs()))
}

/// [`analyze`] over bytes already in memory.
pub fn analyze_bytes(bytes: &[u8]) -> Result<AudioFacts> {
    analyze(bytes)
}

/// Analyses independent recordings in parallel on the rayon pool; results are in input order.
/// CPU-bound: call it from `spawn_blocking` or a plain thread, not from an async task.
pub fn analyze_many<R: Read + Send>(inputs: Vec<R>) -> Vec<Result<AudioFacts>> {
    inputs.into_par_iter().map(analyze).collect()
}

/// Duration in ms of a stored WAV object of `object_size` bytes, from its header alone (the
/// first bytes of the object are enough; `head` may stop anywhere after the data chunk starts).
/// The data runs to the end of the object when the header gives no length or a longer one, so a
/// copy cut short by its writer reads as short as it is.
pub fn header_duration_ms(head: &[u8], object_size: u64) -> Result<i64> {
    let mut reader = head;
    let header = wav::read_header(&mut reader)?;
    let data_start = (head.len() - reader.len()) as u64;
    let present = object_size.saturating_sub(data_start);
    let data = header
        .data_len
        .map_or(present, |len| present.min(u64::from(len)));
    // The fmt chunk was refused if either of these were 0.
    let frames = data / u64::from(header.block_align);
    Ok((frames.saturating_mul(1000) / u64::from(header.sample_rate)) as i64)
}

/// Duration mismatch between the audio and the capture's `stopTime − startTime`, in ms (positive
/// = audio longer). `None` when either time is missing. Cisco notes recordings can legitimately
/// differ from speech time (hold, blind transfer), so this is a fact to report, not an error.
pub fn duration_mismatch_ms(
    facts: &AudioFacts,
    start_ms: Option<i64>,
    stop_time: Option<i64>,
) -> Option<i64> {
    let window = stop_time?.checked_sub(start_ms?)?;
    facts.duration_ms.checked_sub(window)
}

/// Running sums of one channel.
#[derive(Default, Clone)]
struct Channel {
    sum_sq: f64,
    peak: f32,
    clipped: u64,
    run: ClipRun,
}

/// A run of full-scale samples in progress: its sign and length.
#[derive(Default, Clone, Copy)]
struct ClipRun {
    sign: i8,
    len: u64,
}

impl ClipRun {
    /// Ends the run, counting it if long enough.
    fn end(&mut self, clipped: &mut u64) {
        if self.len >= CLIP_RUN {
            *clipped += self.len;
        }
        *self = ClipRun::default();
    }

    fn feed(&mut self, xs: &[f32], hi: f32, lo: f32, clipped: &mut u64) {
        for &x in xs {
            let sign = if x >= hi {
                1
            } else if x <= lo {
                -1
            } else {
                0
            };
            if sign != self.sign {
                self.end(clipped);
                self.sign = sign;
            }
            if sign != 0 {
                self.len += 1;
            }
        }
    }
}

/// First-order high-pass (bilinear transform) `y[n] = k (x[n] - x[n-1]) + p y[n-1]`: removes DC
/// and hum before levels are judged, and is flat (-0.1 dB at 1 kHz) where speech is.
///
/// Run sample by sample, the loop-carried multiply-add makes the filter latency-bound (it cost as
/// much as the rest of the analysis). Run [`HP_BLOCK`] samples at a time instead: each output of
/// a block is the block's input differences weighted by a constant matrix (independent work the
/// CPU vectorises) plus the previous block's last output decayed, so the chain advances one
/// multiply-add per block. It runs inside [`measure`], in the same pass as [`scan`].
#[derive(Clone, Copy)]
struct HighPass {
    k: f32,
    p: f32,
    /// `weight[i][j]`: weight of the block's `i`-th sample in its `j`-th output. With
    /// `g(i, j) = k p^(j-i)` (`j ≥ i`, else 0) the response to the `i`-th input difference, it is
    /// `g(i, j) - g(i+1, j)`: weighting samples rather than differences saves a subtraction and
    /// a register broadcast per sample.
    weight: [[f32; HP_BLOCK]; HP_BLOCK],
    /// Weight of the sample before the block in its `j`-th output: `-g(0, j)`.
    weight_prev: [f32; HP_BLOCK],
    /// Weight of the previous output in the block's `j`-th output: `p^(j+1)`.
    decay: [f32; HP_BLOCK],
    /// `p^HP_BLOCK`, the last of `decay` kept apart: the chain between blocks then stays one
    /// scalar multiply-add instead of going through the vector of outputs.
    decay_last: f32,
    x1: f32,
    y1: f32,
    primed: bool,
}

/// Samples per step of the block high-pass (see [`HighPass`]).
const HP_BLOCK: usize = 8;

impl HighPass {
    fn new(rate: u32) -> Self {
        let t = (std::f64::consts::PI * HIGH_PASS_HZ / f64::from(rate.max(1))).tan();
        let p = (1.0 - t) / (1.0 + t);
        let k = (1.0 + p) / 2.0;
        let g = |i: usize, j: usize| {
            if i <= j && i < HP_BLOCK {
                k * p.powi((j - i) as i32)
            } else {
                0.0
            }
        };
        HighPass {
            k: k as f32,
            p: p as f32,
            weight: std::array::from_fn(|i| {
                std::array::from_fn(|j| (g(i, j) - g(i + 1, j)) as f32)
            }),
            weight_prev: std::array::from_fn(|j| -g(0, j) as f32),
            decay: std::array::from_fn(|j| p.powi(j as i32 + 1) as f32),
            decay_last: p.powi(HP_BLOCK as i32) as f32,
            x1: 0.0,
            y1: 0.0,
            primed: false,
        }
    }

    #[inline(always)]
    fn step(&mut self, x: f32) -> f32 {
        let y = self.k * (x - self.x1) + self.p * self.y1;
        self.x1 = x;
        self.y1 = y;
        y
    }

    /// Primes the filter with the first sample ever seen, so a DC offset gives no step at the
    /// start.
    #[inline(always)]
    fn prime(&mut self, xs: &[f32]) {
        if let (false, Some(&first)) = (self.primed, xs.first()) {
            self.x1 = first;
            self.primed = true;
        }
    }

    /// Reference for [`measure`]: sum of squares of `xs` high-passed, one filter on its own.
    #[cfg(test)]
    fn energy_blocks(&mut self, xs: &[f32]) -> f32 {
        if xs.is_empty() {
            return 0.0;
        }
        self.prime(xs);
        let (blocks, rest) = xs.as_chunks::<HP_BLOCK>();
        let (mut x1, mut y1) = (self.x1, self.y1);
        let mut sq = [0f32; HP_BLOCK];
        for block in blocks {
            let mut y = self.weight_prev.map(|w| w * x1);
            for (&x, w) in block.iter().zip(&self.weight) {
                for (y, w) in y.iter_mut().zip(w) {
                    *y += x * w;
                }
            }
            x1 = block[HP_BLOCK - 1];
            // The previous output joins last: the chain between blocks is one multiply-add.
            let next = y[HP_BLOCK - 1] + self.decay_last * y1;
            for ((y, decay), sq) in y.iter_mut().zip(&self.decay).zip(&mut sq) {
                *y += decay * y1;
                *sq += *y * *y;
            }
            y1 = next;
        }
        (self.x1, self.y1) = (x1, y1);
        sq.iter().sum::<f32>()
            + rest
                .iter()
                .map(|&x| self.step(x))
                .map(|y| y * y)
                .sum::<f32>()
    }
}

/// One pass over a segment of one channel: [`scan`]'s sums, and for a judged channel the energy
/// after the high-pass.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Measured {
    sq: f32,
    peak: f32,
    full: u32,
    hp_sq: f32,
}

/// Running lanes of [`measure`] for one channel: [`scan`]'s and the high-pass's, plus the filter
/// state while a segment is being read.
#[derive(Clone, Copy)]
struct Lanes {
    sq: [f32; HP_BLOCK],
    peak: [f32; HP_BLOCK],
    full: [u32; HP_BLOCK],
    hp_sq: [f32; HP_BLOCK],
    x1: f32,
    y1: f32,
}

impl Lanes {
    /// One block of samples: exactly the operations, in the order, of [`scan`] and of the block
    /// high-pass (see [`HighPass`]), so the sums are bit for bit theirs.
    #[inline(always)]
    fn block(&mut self, hp: &HighPass, block: &[f32; HP_BLOCK], hi: f32, lo: f32) {
        for (i, &x) in block.iter().enumerate() {
            self.sq[i] += x * x;
            self.peak[i] = self.peak[i].max(x.abs());
            self.full[i] += u32::from(x >= hi || x <= lo);
        }
        let mut y = hp.weight_prev.map(|w| w * self.x1);
        for (&x, w) in block.iter().zip(&hp.weight) {
            for (y, w) in y.iter_mut().zip(w) {
                *y += x * w;
            }
        }
        self.x1 = block[HP_BLOCK - 1];
        // The previous output joins last: the chain between blocks is one multiply-add.
        let next = y[HP_BLOCK - 1] + hp.decay_last * self.y1;
        for ((y, decay), sq) in y.iter_mut().zip(&hp.decay).zip(&mut self.hp_sq) {
            *y += decay * self.y1;
            *sq += *y * *y;
        }
        self.y1 = next;
    }
}

/// [`scan`] and the high-pass energy of `C` channels' segments (of equal length) in one pass:
/// the samples are read once, and the channels' filter chains, independent, overlap.
fn measure<const C: usize>(
    hp: &mut [HighPass; C],
    xs: [&[f32]; C],
    hi: f32,
    lo: f32,
) -> [Measured; C] {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f")
        && std::arch::is_x86_feature_detected!("avx512vl")
        && std::arch::is_x86_feature_detected!("avx2")
    {
        // SAFETY: the CPU has just been found to support AVX-512F, AVX-512VL and AVX2.
        return unsafe { measure_avx512(hp, xs, hi, lo) };
    }
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has just been found to support AVX2.
        return unsafe { measure_avx2(hp, xs, hi, lo) };
    }
    measure_blocks(hp, xs, hi, lo)
}

/// [`measure_blocks`] with AVX-512's 32 vector registers (still 8 lanes): with two channels'
/// lanes and the filter's matrix in flight, 16 registers spill to the stack every block.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,avx512f,avx512vl")]
fn measure_avx512<const C: usize>(
    hp: &mut [HighPass; C],
    xs: [&[f32]; C],
    hi: f32,
    lo: f32,
) -> [Measured; C] {
    measure_blocks(hp, xs, hi, lo)
}

/// [`measure_blocks`] compiled for 8-lane vectors: the release build targets baseline x86-64
/// (4 lanes), and a block is 8 samples.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn measure_avx2<const C: usize>(
    hp: &mut [HighPass; C],
    xs: [&[f32]; C],
    hi: f32,
    lo: f32,
) -> [Measured; C] {
    measure_blocks(hp, xs, hi, lo)
}

#[inline(always)]
fn measure_blocks<const C: usize>(
    hp: &mut [HighPass; C],
    xs: [&[f32]; C],
    hi: f32,
    lo: f32,
) -> [Measured; C] {
    let len = xs.first().map_or(0, |x| x.len());
    assert!(
        xs.iter().all(|x| x.len() == len),
        "segments of equal length"
    );
    if len == 0 {
        return [Measured::default(); C];
    }
    for (hp, xs) in hp.iter_mut().zip(xs) {
        hp.prime(xs);
    }
    let mut lanes = std::array::from_fn::<_, C, _>(|c| Lanes {
        sq: [0.0; HP_BLOCK],
        peak: [0.0; HP_BLOCK],
        full: [0; HP_BLOCK],
        hp_sq: [0.0; HP_BLOCK],
        x1: hp[c].x1,
        y1: hp[c].y1,
    });
    let blocks = xs.map(|x| x.as_chunks::<HP_BLOCK>().0);
    // Block `b` of every channel in turn: the channels' chains overlap.
    #[allow(clippy::needless_range_loop)]
    for b in 0..len / HP_BLOCK {
        for c in 0..C {
            lanes[c].block(&hp[c], &blocks[c][b], hi, lo);
        }
    }
    std::array::from_fn(|c| {
        let (lanes, hp) = (&mut lanes[c], &mut hp[c]);
        (hp.x1, hp.y1) = (lanes.x1, lanes.y1);
        let rest = &xs[c][len - len % HP_BLOCK..];
        for &x in rest {
            lanes.sq[0] += x * x;
            lanes.peak[0] = lanes.peak[0].max(x.abs());
            lanes.full[0] += u32::from(x >= hi || x <= lo);
        }
        Measured {
            sq: lanes.sq.iter().sum(),
            peak: lanes.peak.iter().fold(0f32, |a, &b| a.max(b)),
            full: lanes.full.iter().sum(),
            hp_sq: lanes.hp_sq.iter().sum::<f32>()
                + rest.iter().map(|&x| hp.step(x)).map(|y| y * y).sum::<f32>(),
        }
    })
}

/// Accumulates statistics block by block: a few numbers per channel, plus one level per window
/// for the first two channels (see [`vad`]).
struct Meter {
    channels: Vec<Channel>,
    /// High-pass state, per-window energy and window levels of the channels judged for talk.
    hp: Vec<HighPass>,
    window_hp: Vec<f64>,
    tracks: Vec<vad::Track>,
    window_len: usize,
    window_pos: usize,
    clip_hi: f32,
    clip_lo: f32,
    frames: u64,
}

impl Meter {
    fn new(header: &wav::Header) -> Self {
        let rate = u64::from(header.sample_rate);
        let (clip_hi, clip_lo) = header.clip_thresholds();
        let judged = usize::from(header.channels).min(2);
        Meter {
            channels: vec![Channel::default(); usize::from(header.channels)],
            hp: vec![HighPass::new(header.sample_rate); judged],
            window_hp: vec![0.0; judged],
            tracks: vec![vad::Track::default(); judged],
            window_len: ((rate * u64::from(WINDOW_MS) + 500) / 1000).max(1) as usize,
            window_pos: 0,
            clip_hi,
            clip_lo,
            frames: 0,
        }
    }

    /// Takes the first `n` frames of the current block, cut at window boundaries.
    fn push<R: Read>(&mut self, blocks: &wav::Blocks<R>, n: usize) {
        let mut start = 0;
        while start < n {
            let take = (n - start).min(self.window_len - self.window_pos);
            let range = start..start + take;
            let seg = |ch: usize| &blocks.channel(ch)[range.clone()];
            let (hi, lo) = (self.clip_hi, self.clip_lo);
            // The judged channels in one pass with their high-pass; any others scanned alone.
            let judged = self.hp.len();
            let mut measured = [Measured::default(); 2];
            if let Ok(hp) = <&mut [HighPass; 2]>::try_from(&mut self.hp[..]) {
                measured = measure(hp, [seg(0), seg(1)], hi, lo);
            } else if let Ok(hp) = <&mut [HighPass; 1]>::try_from(&mut self.hp[..]) {
                [measured[0]] = measure(hp, [seg(0)], hi, lo);
            }
            for (ch, acc) in self.channels.iter_mut().enumerate() {
                let m = if ch < judged {
                    measured[ch]
                } else {
                    let (sq, peak, full) = scan(seg(ch), hi, lo);
                    Measured {
                        sq,
                        peak,
                        full,
                        hp_sq: 0.0,
                    }
                };
                acc.sum_sq += f64::from(m.sq);
                acc.peak = acc.peak.max(m.peak);
                if m.full > 0 {
                    acc.run.feed(seg(ch), hi, lo, &mut acc.clipped);
                } else {
                    acc.run.end(&mut acc.clipped);
                }
            }
            for (e, m) in self.window_hp.iter_mut().zip(&measured) {
                *e += f64::from(m.hp_sq);
            }
            self.window_pos += take;
            start += take;
            if self.window_pos == self.window_len {
                self.close_window();
            }
        }
        self.frames += n as u64;
    }

    fn close_window(&mut self) {
        let len = self.window_pos;
        if len == 0 {
            return;
        }
        for (track, e) in self.tracks.iter_mut().zip(&mut self.window_hp) {
            track.power.push((*e / len as f64) as f32);
            track.window_len = self.window_len as u32;
            track.last_len = len as u32;
            *e = 0.0;
        }
        self.window_pos = 0;
    }

    fn finish(mut self, header: &wav::Header, notes: Vec<String>) -> AudioFacts {
        self.close_window();
        let frames = self.frames;
        let rate = u64::from(header.sample_rate);
        let share = |part: u64| {
            if frames == 0 {
                0.0
            } else {
                part as f64 / frames as f64
            }
        };
        let (activity, both, either) = vad::decide(&self.tracks, header.sample_rate);
        let channel_stats = self
            .channels
            .iter_mut()
            .enumerate()
            .map(|(ch, acc)| {
                acc.run.end(&mut acc.clipped);
                let act = activity.get(ch);
                ChannelStats {
                    rms_dbfs: dbfs(if frames == 0 {
                        0.0
                    } else {
                        acc.sum_sq / frames as f64
                    }),
                    peak_dbfs: dbfs(f64::from(acc.peak) * f64::from(acc.peak)),
                    clipping_share: share(acc.clipped),
                    silence_share: act.map(|a| share(a.silent_frames)),
                    talk_time_ms: act.map(|a| ms(a.talk_frames, rate)),
                    active_level_dbfs: act.and_then(|a| a.active_dbfs),
                }
            })
            .collect();
        AudioFacts {
            analyser_version: ANALYSER_VERSION,
            format: header.encoding.name().to_string(),
            sample_rate: header.sample_rate,
            channels: header.channels,
            bits_per_sample: header.bits_per_sample,
            frames,
            duration_ms: ms(frames, rate),
            channel_stats,
            crosstalk_share: if either == 0 {
                0.0
            } else {
                both as f64 / either as f64
            },
            notes,
        }
    }
}

/// Frames → milliseconds, rounded to nearest.
fn ms(frames: u64, rate: u64) -> i64 {
    ((u128::from(frames) * 1000 + u128::from(rate / 2)) / u128::from(rate.max(1))) as i64
}

/// Mean square power → dBFS, floored so silence stays a finite number.
fn dbfs(power: f64) -> f64 {
    if power > 0.0 {
        (10.0 * power.log10()).max(DBFS_FLOOR)
    } else {
        DBFS_FLOOR
    }
}

/// Sum of squares, peak magnitude and full-scale count of a window segment. Eight independent lanes
/// let the compiler vectorise; a segment is at most one window, so `f32` sums lose nothing that
/// matters before they are added into `f64` totals.
fn scan(xs: &[f32], hi: f32, lo: f32) -> (f32, f32, u32) {
    let mut sq = [0f32; 8];
    let mut peak = [0f32; 8];
    let mut clipped = [0u32; 8];
    let (chunks, rest) = xs.as_chunks::<8>();
    for chunk in chunks {
        for i in 0..8 {
            let x = chunk[i];
            sq[i] += x * x;
            peak[i] = peak[i].max(x.abs());
            clipped[i] += u32::from(x >= hi || x <= lo);
        }
    }
    for &x in rest {
        sq[0] += x * x;
        peak[0] = peak[0].max(x.abs());
        clipped[0] += u32::from(x >= hi || x <= lo);
    }
    (
        sq.iter().sum(),
        peak.iter().fold(0f32, |a, &b| a.max(b)),
        clipped.iter().sum(),
    )
}
