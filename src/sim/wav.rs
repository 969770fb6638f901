//! Streamed synthesis of the simulated call recordings (REFERENCE.md §4.5).
//!
//! Every byte of a recording is a pure function of `(recording seed, byte offset)`: a small turn
//! schedule is precomputed per recording and each sample is derived from it, so a download can be
//! generated chunk by chunk (or for any `Range`) without ever holding the file in memory, and the
//! bytes are identical however the file is cut.

use std::sync::OnceLock;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sha2::{Digest, Sha256};

/// Samples per second per channel (narrow-band telephony).
pub const SAMPLE_RATE: u32 = 8000;
/// Caller/agent each on their own channel.
pub const CHANNELS: u16 = 2;
/// 16-bit PCM, two channels.
const BYTES_PER_FRAME: u64 = 4;
/// Canonical RIFF/WAVE header with a single `fmt ` and `data` chunk.
pub const HEADER_LEN: u64 = 44;
/// Frames per millisecond of audio.
pub const FRAMES_PER_MS: u64 = SAMPLE_RATE as u64 / 1000;
/// Sine lookup table size (power of two; indexed by the top bits of a 32-bit phase).
const TABLE_BITS: u32 = 12;
/// Fade in/out at turn edges so turns do not click (20 ms).
const RAMP_FRAMES: u64 = 160;
/// Largest data chunk a RIFF header can describe.
const MAX_FRAMES: u64 = (u32::MAX as u64 - 36) / BYTES_PER_FRAME;
/// Relative weights of the harmonics of the voiced sound.
const HARMONICS: [f32; 4] = [1.0, 0.6, 0.35, 0.2];

/// One stretch of voiced sound on one channel.
#[derive(Clone, Debug)]
struct Turn {
    start: u64,
    end: u64,
    /// Fundamental frequency as a 32-bit phase increment per frame.
    f0_inc: u32,
    /// Syllable-rate amplitude modulation as a phase increment per frame.
    syllable_inc: u32,
    gain: f32,
}

/// Everything needed to produce the bytes of one recording: its length and turn schedule.
#[derive(Clone, Debug)]
pub struct AudioPlan {
    seed: u64,
    frames: u64,
    /// Voiced turns per channel, sorted and non-overlapping within a channel.
    turns: [Vec<Turn>; 2],
}

fn sine_table() -> &'static [f32] {
    static TABLE: OnceLock<Vec<f32>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let n = 1usize << TABLE_BITS;
        (0..n)
            .map(|i| (i as f64 / n as f64 * std::f64::consts::TAU).sin() as f32)
            .collect()
    })
}

/// Phase increment per frame for a frequency in Hz (full circle = 2^32).
fn phase_inc(hz: f64) -> u32 {
    (hz / f64::from(SAMPLE_RATE) * 4_294_967_296.0) as u32
}

/// SplitMix64 finaliser: a cheap, well-mixed hash used for noise and seed derivation.
pub fn mix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl AudioPlan {
    /// Plans a recording of `frames` stereo frames; the schedule depends only on `seed`.
    pub fn new(seed: u64, frames: u64) -> Self {
        let frames = frames.min(MAX_FRAMES);
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let sr = u64::from(SAMPLE_RATE);
        let base_f0 = [
            rng.random_range(100.0..250.0),
            rng.random_range(100.0..250.0),
        ];
        let mut turns: [Vec<Turn>; 2] = [Vec::new(), Vec::new()];
        let mut last_end = [0u64; 2];
        let mut speaker = rng.random_range(0..2usize);
        let mut t = rng.random_range(sr * 3 / 10..sr * 3 / 2);
        while t < frames {
            let start = t.max(last_end[speaker]);
            if start >= frames {
                break;
            }
            let len = rng.random_range(sr..8 * sr);
            let end = (start + len).min(frames);
            let f0: f64 = base_f0[speaker] * rng.random_range(0.9..1.1);
            turns[speaker].push(Turn {
                start,
                end,
                f0_inc: phase_inc(f0),
                syllable_inc: phase_inc(rng.random_range(3.0..6.0)),
                gain: rng.random_range(4000.0..7500.0),
            });
            last_end[speaker] = end;
            let overlap = rng.random_bool(0.12);
            let same_speaker = !overlap && rng.random_bool(0.15);
            t = if overlap {
                // The other party starts talking before this turn is over.
                end.saturating_sub(rng.random_range(sr / 5..sr))
                    .max(start + 1)
            } else {
                end + rng.random_range(sr / 5..sr * 3 / 2)
            };
            if !same_speaker {
                speaker = 1 - speaker;
            }
        }
        AudioPlan {
            seed,
            frames,
            turns,
        }
    }

    /// The first `frames` frames of this recording as a file of their own: the same samples,
    /// a header announcing the shorter length (what a recording still in progress holds).
    pub fn prefix(mut self, frames: u64) -> Self {
        self.frames = self.frames.min(frames);
        self
    }

    /// Number of stereo frames (samples per channel).
    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// Total file size in bytes, header included.
    pub fn len(&self) -> u64 {
        Self::len_for_frames(self.frames)
    }

    /// File size of a recording of `frames` frames, without planning its audio.
    pub fn len_for_frames(frames: u64) -> u64 {
        HEADER_LEN + frames.min(MAX_FRAMES) * BYTES_PER_FRAME
    }

    /// Never true: even a zero-length recording has its header.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The 44-byte PCM WAVE header.
    pub fn header(&self) -> [u8; HEADER_LEN as usize] {
        let data_len = (self.frames * BYTES_PER_FRAME) as u32;
        let block_align = CHANNELS * 2;
        let mut h = [0u8; HEADER_LEN as usize];
        h[0..4].copy_from_slice(b"RIFF");
        h[4..8].copy_from_slice(&(36 + data_len).to_le_bytes());
        h[8..12].copy_from_slice(b"WAVE");
        h[12..16].copy_from_slice(b"fmt ");
        h[16..20].copy_from_slice(&16u32.to_le_bytes());
        h[20..22].copy_from_slice(&1u16.to_le_bytes());
        h[22..24].copy_from_slice(&CHANNELS.to_le_bytes());
        h[24..28].copy_from_slice(&SAMPLE_RATE.to_le_bytes());
        h[28..32].copy_from_slice(&(SAMPLE_RATE * u32::from(block_align)).to_le_bytes());
        h[32..34].copy_from_slice(&block_align.to_le_bytes());
        h[34..36].copy_from_slice(&16u16.to_le_bytes());
        h[36..40].copy_from_slice(b"data");
        h[40..44].copy_from_slice(&data_len.to_le_bytes());
        h
    }

    /// Fills `buf` with the file bytes starting at `offset`; returns how many bytes were written
    /// (fewer than `buf.len()` only at the end of the file).
    pub fn read_at(&self, offset: u64, buf: &mut [u8]) -> usize {
        let total = self.len();
        if offset >= total {
            return 0;
        }
        let n = (buf.len() as u64).min(total - offset) as usize;
        let mut pos = offset;
        let mut written = 0usize;
        if pos < HEADER_LEN {
            let header = self.header();
            let take = ((HEADER_LEN - pos) as usize).min(n);
            buf[..take].copy_from_slice(&header[pos as usize..pos as usize + take]);
            written += take;
            pos += take as u64;
        }
        if written == n {
            return n;
        }
        let data_pos = pos - HEADER_LEN;
        let mut frame = data_pos / BYTES_PER_FRAME;
        let mut skip = (data_pos % BYTES_PER_FRAME) as usize;
        let table = sine_table();
        let mut cursor = [
            self.turns[0].partition_point(|t| t.end <= frame),
            self.turns[1].partition_point(|t| t.end <= frame),
        ];
        while written < n {
            let left = self.sample(0, frame, &mut cursor[0], table);
            let right = self.sample(1, frame, &mut cursor[1], table);
            let mut bytes = [0u8; 4];
            bytes[..2].copy_from_slice(&left.to_le_bytes());
            bytes[2..].copy_from_slice(&right.to_le_bytes());
            let take = (4 - skip).min(n - written);
            buf[written..written + take].copy_from_slice(&bytes[skip..skip + take]);
            written += take;
            skip = 0;
            frame += 1;
        }
        n
    }

    /// One sample: low line noise plus, inside a turn, a harmonic voiced sound with a
    /// syllable-rate envelope. `cursor` only speeds up the turn lookup; it never changes the value.
    fn sample(&self, ch: usize, frame: u64, cursor: &mut usize, table: &[f32]) -> i16 {
        let noise_hash = mix64(self.seed ^ frame.wrapping_mul(0xD6E8_FEB8_6659_FD93) ^ ch as u64);
        let mut value = ((noise_hash >> 57) as f32) - 64.0;
        let turns = &self.turns[ch];
        while *cursor < turns.len() && turns[*cursor].end <= frame {
            *cursor += 1;
        }
        if let Some(turn) = turns.get(*cursor).filter(|t| t.start <= frame) {
            let local = frame - turn.start;
            let shift = 32 - TABLE_BITS;
            let phase = (local as u32).wrapping_mul(turn.f0_inc);
            let mut voiced = 0.0f32;
            for (k, weight) in HARMONICS.iter().enumerate() {
                let p = phase.wrapping_mul(k as u32 + 1);
                voiced += weight * table[(p >> shift) as usize];
            }
            let syllable =
                table[((local as u32).wrapping_mul(turn.syllable_inc) >> shift) as usize];
            let envelope = 0.25 + 0.75 * (0.5 + 0.5 * syllable);
            let edge = local.min(turn.end - 1 - frame).min(RAMP_FRAMES);
            let ramp = edge as f32 / RAMP_FRAMES as f32;
            value += voiced * envelope * ramp * turn.gain;
        }
        value.clamp(-32768.0, 32767.0) as i16
    }

    /// Lowercase hex SHA-256 of the whole file, generated in small chunks.
    pub fn sha256_hex(&self) -> String {
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 64 * 1024];
        let mut offset = 0u64;
        loop {
            let n = self.read_at(offset, &mut buf);
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            offset += n as u64;
        }
        hex::encode(hasher.finalize())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn whole(plan: &AudioPlan) -> Vec<u8> {
        let mut buf = vec![0u8; plan.len() as usize];
        assert_eq!(plan.read_at(0, &mut buf), buf.len());
        buf
    }

    #[test]
    fn wav_parses_as_stereo_8khz_16bit_with_expected_sample_count() {
        let plan = AudioPlan::new(7, 8000 * 12 + 3);
        let bytes = whole(&plan);
        let reader = hound::WavReader::new(std::io::Cursor::new(bytes)).expect("valid wav");
        let spec = reader.spec();
        assert_eq!(spec.channels, 2);
        assert_eq!(spec.sample_rate, 8000);
        assert_eq!(spec.bits_per_sample, 16);
        assert_eq!(spec.sample_format, hound::SampleFormat::Int);
        assert_eq!(reader.duration() as u64, 8000 * 12 + 3);
        assert_eq!(reader.len() as u64, 2 * (8000 * 12 + 3));
    }

    #[test]
    fn chunked_and_ranged_reads_equal_the_whole_file() {
        let plan = AudioPlan::new(99, 8000 * 20);
        let reference = whole(&plan);
        for chunk in [1usize, 3, 7, 1000, 4093, 65536] {
            let mut out = Vec::with_capacity(reference.len());
            let mut buf = vec![0u8; chunk];
            let mut offset = 0u64;
            loop {
                let n = plan.read_at(offset, &mut buf);
                if n == 0 {
                    break;
                }
                out.extend_from_slice(&buf[..n]);
                offset += n as u64;
            }
            assert_eq!(out, reference, "chunk size {chunk}");
        }
        for (start, len) in [
            (0u64, 10usize),
            (43, 5),
            (45, 1),
            (50_001, 777),
            (reference.len() as u64 - 3, 10),
        ] {
            let mut buf = vec![0u8; len];
            let n = plan.read_at(start, &mut buf);
            let end = (start as usize + len).min(reference.len());
            assert_eq!(&buf[..n], &reference[start as usize..end]);
        }
        assert_eq!(plan.read_at(reference.len() as u64, &mut [0u8; 8]), 0);
    }

    #[test]
    fn sha256_matches_hash_of_whole_file() {
        let plan = AudioPlan::new(5, 8000 * 3);
        let expected = hex::encode(Sha256::digest(whole(&plan)));
        assert_eq!(plan.sha256_hex(), expected);
    }

    #[test]
    fn same_seed_gives_same_audio_and_different_seed_differs() {
        let a = whole(&AudioPlan::new(1, 8000 * 10));
        let b = whole(&AudioPlan::new(1, 8000 * 10));
        let c = whole(&AudioPlan::new(2, 8000 * 10));
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn audio_alternates_speech_and_quiet_on_each_channel() {
        let plan = AudioPlan::new(11, 8000 * 60);
        let bytes = whole(&plan);
        let reader = hound::WavReader::new(std::io::Cursor::new(bytes)).expect("valid wav");
        let samples: Vec<i16> = reader
            .into_samples::<i16>()
            .map(|s| s.expect("sample"))
            .collect();
        for ch in 0..2 {
            // RMS per 100 ms window: some windows speech-loud, some near the noise floor.
            let windows: Vec<f64> = samples
                .chunks(1600)
                .map(|w| {
                    let sq: f64 = w
                        .iter()
                        .skip(ch)
                        .step_by(2)
                        .map(|&s| f64::from(s).powi(2))
                        .sum();
                    (sq / 800.0).sqrt()
                })
                .collect();
            assert!(
                windows.iter().any(|&r| r > 1000.0),
                "channel {ch} has speech"
            );
            assert!(windows.iter().any(|&r| r < 60.0), "channel {ch} has pauses");
            assert!(
                windows.iter().all(|&r| r < 16000.0),
                "channel {ch} does not clip"
            );
        }
    }
}
