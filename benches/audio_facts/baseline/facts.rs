//! Audio facts: level, silence, clipping, talk time and crosstalk of one recording, measured in a
//! single streaming pass so they can be computed as fast as recordings download.
//!
//! Analysis is pure and synchronous: it reads any `std::io::Read` block by block (memory does not
//! grow with duration) and never trusts the capture metadata for the format: the WAV header says
//! what the samples are (see REFERENCE §4.5: rate and codec are unconfirmed). Run it off the async
//! runtime (`spawn_blocking`, or [`analyze_many`] on rayon).
//!
//! Definitions, chosen to be stable columns in Parquet (never NaN, never infinite):
//! - Levels are dBFS of samples normalised to [-1, 1]: a full-scale sine is -3.01 dBFS RMS.
//!   Digital silence reads [`DBFS_FLOOR`] (-120 dBFS) instead of -∞.
//! - Activity is judged per analysis window of [`WINDOW_MS`] (20 ms): a window whose RMS is below
//!   [`SILENCE_DBFS`] (-50 dBFS) is silent. Phone-line noise sits around -60 to -70 dBFS; speech
//!   well above -40.
//! - Shares are over frames (time), so a short last window weighs what it lasts. An empty
//!   recording has every share 0.
//! - Talk time bridges pauses of at most [`BRIDGED_PAUSE_MS`] between active windows (the gaps
//!   between words count as talking), so `talk_time_ms` can exceed `(1 - silence_share) ×
//!   duration`; `silence_share` and `crosstalk_share` are unsmoothed.

use std::io::Read;

use rayon::prelude::*;
use serde::Serialize;

// Vendored for `benches/audio_facts.rs`: the analyser as of commit e71b131^, verbatim except
// these module lines (derivation and the unit tests are left out).
mod g711;
mod wav;

/// Level reported for digital silence, in dBFS.
pub const DBFS_FLOOR: f64 = -120.0;
/// Length of an analysis window, in milliseconds.
pub const WINDOW_MS: u32 = 20;
/// Windows quieter than this (RMS, dBFS) are silent.
pub const SILENCE_DBFS: f64 = -50.0;
/// Pauses up to this long between active windows still count as talk time.
pub const BRIDGED_PAUSE_MS: u32 = 200;

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
    #[error("I/O error on audio: {0}")]
    Io(#[from] std::io::Error),
}

pub type Result<T, E = FactsError> = std::result::Result<T, E>;

/// Facts about one recording, as its header and samples say.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AudioFacts {
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
    /// Share of time where at least two channels are active at once (people talking over each
    /// other, or echo of one party on the other's channel).
    pub crosstalk_share: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChannelStats {
    /// RMS over the whole channel, dBFS, floored at [`DBFS_FLOOR`].
    pub rms_dbfs: f64,
    /// Largest absolute sample, dBFS, floored at [`DBFS_FLOOR`].
    pub peak_dbfs: f64,
    /// Share of time in silent windows.
    pub silence_share: f64,
    /// Share of samples at full scale: integer PCM within one LSB of either end, float at or
    /// beyond ±1.0, G.711 at its extreme code.
    pub clipping_share: f64,
    /// Time in active windows plus bridged pauses.
    pub talk_time_ms: i64,
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
    Ok(meter.finish(&header))
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
    window_sq: f64,
    silent_frames: u64,
    talk_frames: u64,
    /// Silent frames since this channel was last active (a pause, if it speaks again).
    pause_frames: u64,
    has_spoken: bool,
}

/// Accumulates statistics block by block; state is a few numbers per channel.
struct Meter {
    channels: Vec<Channel>,
    window_len: usize,
    window_pos: usize,
    bridge_frames: u64,
    silence_power: f64,
    clip_hi: f32,
    clip_lo: f32,
    frames: u64,
    crosstalk_frames: u64,
}

impl Meter {
    fn new(header: &wav::Header) -> Self {
        let rate = u64::from(header.sample_rate);
        let (clip_hi, clip_lo) = header.clip_thresholds();
        Meter {
            channels: vec![Channel::default(); usize::from(header.channels)],
            window_len: ((rate * u64::from(WINDOW_MS) + 500) / 1000).max(1) as usize,
            window_pos: 0,
            bridge_frames: rate * u64::from(BRIDGED_PAUSE_MS) / 1000,
            silence_power: 10f64.powf(SILENCE_DBFS / 10.0),
            clip_hi,
            clip_lo,
            frames: 0,
            crosstalk_frames: 0,
        }
    }

    /// Takes the first `n` frames of the current block, cut at window boundaries.
    fn push<R: Read>(&mut self, blocks: &wav::Blocks<R>, n: usize) {
        let mut start = 0;
        while start < n {
            let take = (n - start).min(self.window_len - self.window_pos);
            for (ch, acc) in self.channels.iter_mut().enumerate() {
                let seg = &blocks.channel(ch)[start..start + take];
                let (sq, peak, clipped) = scan(seg, self.clip_hi, self.clip_lo);
                acc.window_sq += f64::from(sq);
                acc.peak = acc.peak.max(peak);
                acc.clipped += u64::from(clipped);
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
        let len = self.window_pos as u64;
        if len == 0 {
            return;
        }
        let mut active = 0;
        for acc in &mut self.channels {
            acc.sum_sq += acc.window_sq;
            let loud = acc.window_sq / len as f64 >= self.silence_power;
            acc.window_sq = 0.0;
            if loud {
                active += 1;
                acc.talk_frames += len;
                if acc.has_spoken && acc.pause_frames <= self.bridge_frames {
                    acc.talk_frames += acc.pause_frames;
                }
                acc.pause_frames = 0;
                acc.has_spoken = true;
            } else {
                acc.silent_frames += len;
                acc.pause_frames += len;
            }
        }
        if active >= 2 {
            self.crosstalk_frames += len;
        }
        self.window_pos = 0;
    }

    fn finish(mut self, header: &wav::Header) -> AudioFacts {
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
        let channel_stats = self
            .channels
            .iter()
            .map(|acc| ChannelStats {
                rms_dbfs: dbfs(if frames == 0 {
                    0.0
                } else {
                    acc.sum_sq / frames as f64
                }),
                peak_dbfs: dbfs(f64::from(acc.peak) * f64::from(acc.peak)),
                silence_share: share(acc.silent_frames),
                clipping_share: share(acc.clipped),
                talk_time_ms: ms(acc.talk_frames, rate),
            })
            .collect();
        AudioFacts {
            format: header.encoding.name().to_string(),
            sample_rate: header.sample_rate,
            channels: header.channels,
            bits_per_sample: header.bits_per_sample,
            frames,
            duration_ms: ms(frames, rate),
            channel_stats,
            crosstalk_share: share(self.crosstalk_frames),
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

/// Sum of squares, peak magnitude and clipped count of a window segment. Eight independent lanes
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
