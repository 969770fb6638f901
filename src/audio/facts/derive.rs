//! Derived audio for machine learning: a 16 kHz mono mix (what speech models expect) and one
//! 16 kHz mono file per channel (diarization by channel: each party is on its own channel).
//!
//! Both stream block by block like the analysis, in one pass for every output. Outputs are
//! 16 kHz, 16-bit PCM: resampled (band-limited) from any other rate, rounded from 24/32-bit and
//! float input; a 16 kHz 16-bit mono input comes out bit-exact.
//! On error the writers hold a partial (but well-formed) WAV: discard it, don't store it.

use std::io::{Read, Seek, Write};

use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{Fft, FixedSync, Indexing, Resampler};

use super::wav::{self, Blocks};
use super::{FactsError, Result};

/// Rate of the speech-model derivative.
pub const ML_SAMPLE_RATE: u32 = 16_000;
/// Input frames per resampler call.
const RESAMPLE_CHUNK: usize = 4096;
/// Input rates whose ratio to 16 kHz reduces to a numerator above this would need FFT blocks too
/// long to be worth it; every common rate (8k, 11.025k, 22.05k, 44.1k, 48k, 96k) is far below.
const MAX_REDUCED_RATE: u32 = 9_600;
/// Frames of the longest derived file: a WAV's data chunk length is a u32 (less the header).
const MAX_OUTPUT_FRAMES: u64 = (u32::MAX as u64 - 64) / 2;
/// Normalised value from which a sample rounds beyond 32767 and is limited.
const FULL_SCALE_HI: f32 = 32_767.5 / 32_768.0;
/// Normalised value from which a sample rounds below -32768 and is limited.
const FULL_SCALE_LO: f32 = -32_768.5 / 32_768.0;

fn too_long(frames: u128) -> FactsError {
    FactsError::Unsupported(format!(
        "a derived file of {frames} frames would exceed the 4 GiB WAV limit"
    ))
}

/// Sample rates the derivatives accept; outside this a header is more likely damaged than real.
const INPUT_RATES: std::ops::RangeInclusive<u32> = 4_000..=384_000;

/// What a derived file holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DerivedInfo {
    pub sample_rate: u32,
    pub channels: u16,
    pub frames: u64,
    pub duration_ms: i64,
    /// Samples beyond 16-bit full scale, limited when written: clipping the derivation added
    /// (resampling overshoot of audio already at full scale, say).
    pub clipped: u64,
}

impl DerivedInfo {
    fn mono(sample_rate: u32, frames: u64, clipped: u64) -> Self {
        DerivedInfo {
            sample_rate,
            channels: 1,
            frames,
            duration_ms: super::ms(frames, u64::from(sample_rate)),
            clipped,
        }
    }
}

/// A derived file: which samples it holds. Every derivative is mono, 16 kHz, 16-bit PCM.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Derivative {
    /// All channels averaged (a party alone on one channel of a two-channel call therefore comes
    /// out 6 dB lower, but overlaps never clip): one file for a transcription model.
    Mono16k,
    /// The first channel alone (the capture's `channel1` party): diarization by channel.
    Channel1,
    /// The second channel alone (the capture's `channel2` party).
    Channel2,
}

impl Derivative {
    pub const ALL: [Derivative; 3] = [
        Derivative::Mono16k,
        Derivative::Channel1,
        Derivative::Channel2,
    ];

    /// Stable name: the `kind` column and the object key suffix (`<recording>.<name>.wav`).
    pub fn name(self) -> &'static str {
        match self {
            Derivative::Mono16k => "mono16k",
            Derivative::Channel1 => "ch1_16k",
            Derivative::Channel2 => "ch2_16k",
        }
    }

    /// The input channel it takes, or `None` for the mix of all channels.
    fn source(self) -> Option<usize> {
        match self {
            Derivative::Mono16k => None,
            Derivative::Channel1 => Some(0),
            Derivative::Channel2 => Some(1),
        }
    }
}

impl std::fmt::Display for Derivative {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Writes a 16 kHz, mono, 16-bit PCM WAV of `reader` (all channels averaged).
pub fn derive_mono16k<R: Read, W: Write + Seek>(reader: R, writer: W) -> Result<DerivedInfo> {
    let mut results = derive(reader, vec![(Derivative::Mono16k, writer)])?;
    results.pop().expect("one output asked, one result").1
}

/// Writes every requested derivative of `reader` in one pass: each is resampled band-limited to
/// 16 kHz with rubato's FFT resampler and lasts as long as the input, to the nearest output frame
/// (the resampler's delay is trimmed and its tail flushed).
///
/// Results come in the order of `outputs`. The outer error is the input's (not a WAV, corrupt,
/// I/O) or a failed write to any output: every output is then unusable. An inner error concerns
/// one output only, one that cannot be made from this input (the second channel of a mono
/// recording, say).
pub fn derive<R: Read, W: Write + Seek>(
    mut reader: R,
    outputs: Vec<(Derivative, W)>,
) -> Result<Vec<(Derivative, Result<DerivedInfo>)>> {
    let header = wav::read_header(&mut reader)?;
    let rate_in = header.sample_rate;
    let channels = usize::from(header.channels);
    let out_frames = |frames_in: u64| {
        (u128::from(frames_in) * u128::from(ML_SAMPLE_RATE) + u128::from(rate_in / 2))
            / u128::from(rate_in.max(1))
    };
    // A streamed header gives no length: write up to the format's limit, then set the length
    // once the input has ended.
    let expected = header.frames().map_or(MAX_OUTPUT_FRAMES, |f| {
        out_frames(f).min(u128::from(u64::MAX)) as u64
    });
    let mut results: Vec<(Derivative, Option<Result<DerivedInfo>>)> = Vec::new();
    let mut tracks = Vec::new();
    for (i, (kind, writer)) in outputs.into_iter().enumerate() {
        match Track::new(kind, writer, rate_in, channels, expected as u64) {
            Ok(track) => {
                results.push((kind, None));
                tracks.push((i, track));
            }
            Err(e) => results.push((kind, Some(Err(e)))),
        }
    }
    // Resampling is linear, so with both channel files asked for, the mix is the mean of their
    // resampled output: two resamplers do the work of three.
    let shared = SharedMix::plan(&mut tracks, channels);
    let mix_needed = shared.is_none() && tracks.iter().any(|(_, t)| t.source.is_none());
    let gain = 1.0 / channels as f32;
    let mut blocks = Blocks::new(reader, header);
    let mut mono: Vec<f32> = Vec::new();
    loop {
        let n = blocks.next_block()?;
        if n == 0 {
            break;
        }
        if mix_needed {
            mono.clear();
            mono.extend_from_slice(&blocks.channel(0)[..n]);
            for ch in 1..channels {
                for (m, x) in mono.iter_mut().zip(&blocks.channel(ch)[..n]) {
                    *m += x;
                }
            }
            if channels > 1 {
                mono.iter_mut().for_each(|m| *m *= gain);
            }
        }
        for (_, track) in &mut tracks {
            match track.source {
                Some(ch) => track.push(&blocks.channel(ch)[..n])?,
                None if shared.is_none() => track.push(&mono)?,
                None => {} // fed by `shared`
            }
        }
        if let Some(shared) = &shared {
            shared.feed(&mut tracks)?;
        }
    }
    if blocks.frames() == 0 {
        return Err(FactsError::Empty);
    }
    if header.frames().is_none() {
        let actual = out_frames(blocks.frames());
        if actual > u128::from(MAX_OUTPUT_FRAMES) {
            return Err(too_long(actual));
        }
        for (_, track) in &mut tracks {
            track.set_target(actual as u64);
        }
    }
    if let Some(shared) = &shared {
        for i in shared.channels {
            tracks[i].1.flush_resampler()?;
        }
        shared.feed(&mut tracks)?;
    }
    for (i, track) in tracks {
        results[i].1 = Some(Ok(track.finish()?));
    }
    Ok(results
        .into_iter()
        .map(|(kind, r)| (kind, r.expect("every output has a result")))
        .collect())
}

/// The mix written as the mean of the two channel tracks' resampled output (indices into the
/// track list: the mix, then channels 1 and 2).
struct SharedMix {
    mix: usize,
    channels: [usize; 2],
}

impl SharedMix {
    /// Sets the tracks up for sharing when a stereo input is resampled for the mix and both
    /// channels: the channel tracks keep a copy of their output, the mix track resamples nothing.
    fn plan<W: Write + Seek>(tracks: &mut [(usize, Track<W>)], channels: usize) -> Option<Self> {
        let find = |source| tracks.iter().position(|(_, t)| t.source == source);
        let (mix, c1, c2) = (find(None)?, find(Some(0))?, find(Some(1))?);
        if channels != 2 || tracks[mix].1.resampler.is_none() {
            return None;
        }
        tracks[mix].1.resampler = None;
        for i in [c1, c2] {
            tracks[i].1.tee = Some(Vec::new());
        }
        Some(SharedMix {
            mix,
            channels: [c1, c2],
        })
    }

    /// Writes the mean of what both channels have produced so far to the mix.
    fn feed<W: Write + Seek>(&self, tracks: &mut [(usize, Track<W>)]) -> Result<()> {
        let [c1, c2] = self.channels;
        let mut a = tracks[c1].1.tee.take().unwrap_or_default();
        let mut b = tracks[c2].1.tee.take().unwrap_or_default();
        let n = a.len().min(b.len());
        for (x, y) in a[..n].iter_mut().zip(&b[..n]) {
            *x = (*x + y) * 0.5;
        }
        let written = tracks[self.mix].1.out.write(&a[..n]);
        a.drain(..n);
        b.drain(..n);
        tracks[c1].1.tee = Some(a);
        tracks[c2].1.tee = Some(b);
        written
    }
}

/// One derivative being written: its source channel (or the mix) through an optional resampler.
struct Track<W: Write + Seek> {
    source: Option<usize>,
    resampler: Option<Mono16k>,
    out: Output<W>,
    /// A copy of the resampled output, for [`SharedMix`].
    tee: Option<Vec<f32>>,
}

impl<W: Write + Seek> Track<W> {
    fn new(
        kind: Derivative,
        writer: W,
        rate_in: u32,
        channels: usize,
        expected: u64,
    ) -> Result<Self> {
        let source = kind.source();
        if let Some(ch) = source
            && ch >= channels
        {
            return Err(FactsError::Unsupported(format!(
                "{kind} needs channel {} but the recording has {channels} channel(s)",
                ch + 1
            )));
        }
        let resampler = if rate_in == ML_SAMPLE_RATE {
            None
        } else {
            Some(Mono16k::new(rate_in, expected)?)
        };
        Ok(Track {
            source,
            resampler,
            out: Output::new(writer, ML_SAMPLE_RATE, expected)?,
            tee: None,
        })
    }

    fn push(&mut self, samples: &[f32]) -> Result<()> {
        let (out, tee) = (&mut self.out, &mut self.tee);
        let mut sink = |chunk: &[f32]| {
            if let Some(tee) = tee.as_mut() {
                tee.extend_from_slice(chunk);
            }
            out.write(chunk)
        };
        match self.resampler.as_mut() {
            Some(r) => r.push(samples, &mut sink),
            None => sink(samples),
        }
    }

    /// Sets the length the output ends with (known only at the end for a streamed input).
    fn set_target(&mut self, frames: u64) {
        self.out.target = frames;
        if let Some(r) = self.resampler.as_mut() {
            r.target = frames;
        }
    }

    /// Releases the resampler's tail (once; later calls do nothing).
    fn flush_resampler(&mut self) -> Result<()> {
        let Some(mut r) = self.resampler.take() else {
            return Ok(());
        };
        let (out, tee) = (&mut self.out, &mut self.tee);
        r.flush(&mut |chunk: &[f32]| {
            if let Some(tee) = tee.as_mut() {
                tee.extend_from_slice(chunk);
            }
            out.write(chunk)
        })
    }

    fn finish(mut self) -> Result<DerivedInfo> {
        self.flush_resampler()?;
        self.out.finish()
    }
}

/// A 16-bit mono WAV being written, capped at the frame count it should end with.
struct Output<W: Write + Seek> {
    writer: hound::WavWriter<W>,
    rate: u32,
    written: u64,
    clipped: u64,
    target: u64,
}

impl<W: Write + Seek> Output<W> {
    fn new(writer: W, rate: u32, target: u64) -> Result<Self> {
        // Also keeps hound's header arithmetic (rate × block size, in u32) from overflowing.
        if !INPUT_RATES.contains(&rate) {
            return Err(FactsError::Unsupported(format!(
                "deriving audio at {rate} Hz (expected {}..={} Hz)",
                INPUT_RATES.start(),
                INPUT_RATES.end()
            )));
        }
        // A WAV's data chunk length is a u32; hound would overflow past it.
        if target > MAX_OUTPUT_FRAMES {
            return Err(too_long(u128::from(target)));
        }
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: rate,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        Ok(Output {
            writer: hound::WavWriter::new(writer, spec).map_err(write_error)?,
            rate,
            written: 0,
            clipped: 0,
            target,
        })
    }

    /// Writes normalised samples, dropping any beyond the target length.
    fn write(&mut self, samples: &[f32]) -> Result<()> {
        let room = self.target.saturating_sub(self.written);
        let n = (samples.len() as u64).min(room) as usize;
        if n == 0 {
            return Ok(());
        }
        let mut w = self.writer.get_i16_writer(n as u32);
        let mut clipped = 0u64;
        for &x in &samples[..n] {
            clipped += u64::from(x >= FULL_SCALE_HI || x <= FULL_SCALE_LO);
            w.write_sample(to_i16(x));
        }
        self.clipped += clipped;
        w.flush().map_err(write_error)?;
        self.written += n as u64;
        Ok(())
    }

    fn finish(mut self) -> Result<DerivedInfo> {
        // `Mono16k::flush` normally reaches the target; if the resampler ever stopped short,
        // pad with silence so the promised length holds.
        let silence = [0f32; 1024];
        while self.written < self.target {
            self.write(&silence)?;
        }
        let info = DerivedInfo::mono(self.rate, self.written, self.clipped);
        self.writer.finalize().map_err(write_error)?;
        Ok(info)
    }
}

/// A normalised sample as 16-bit PCM, rounded half away from zero and clipped (NaN gives 0).
/// Adding ±0.5 and truncating (`as` saturates) is `round()` without the libm call, which cost a
/// fifth of the derivation's time; in f64 the addition is exact, so values just under one half
/// do not round up.
#[inline]
fn to_i16(x: f32) -> i16 {
    let v = f64::from(x) * 32768.0;
    (v + 0.5f64.copysign(v)) as i16
}

fn write_error(e: hound::Error) -> FactsError {
    match e {
        hound::Error::IoError(e) => FactsError::Io(e),
        other => FactsError::Unsupported(format!("writing derived WAV: {other}")),
    }
}

/// Streaming mono resampler to 16 kHz: feeds rubato fixed-size chunks and drops the leading
/// delay it introduces, so output frame 0 lines up with input frame 0.
struct Mono16k {
    fft: Fft<f32>,
    pending: Vec<f32>,
    out_buf: Vec<f32>,
    to_skip: usize,
    /// Frames released so far (after the skipped delay), and how many the input calls for.
    produced: u64,
    target: u64,
}

/// Where a resampler's output goes.
type Sink<'a> = dyn FnMut(&[f32]) -> Result<()> + 'a;

impl Mono16k {
    fn new(rate_in: u32, target: u64) -> Result<Self> {
        let reduced = rate_in / gcd(rate_in, ML_SAMPLE_RATE);
        if !INPUT_RATES.contains(&rate_in) || reduced > MAX_REDUCED_RATE {
            return Err(FactsError::Unsupported(format!(
                "resampling {rate_in} Hz to 16 kHz (ratio {reduced}:{})",
                ML_SAMPLE_RATE / gcd(rate_in, ML_SAMPLE_RATE)
            )));
        }
        let fft = Fft::<f32>::new(
            rate_in as usize,
            ML_SAMPLE_RATE as usize,
            RESAMPLE_CHUNK,
            1,
            FixedSync::Input,
        )
        .map_err(|e| FactsError::Unsupported(format!("resampling {rate_in} Hz: {e}")))?;
        Ok(Mono16k {
            pending: Vec::with_capacity(RESAMPLE_CHUNK * 2),
            out_buf: vec![0.0; fft.output_frames_max()],
            to_skip: fft.output_delay(),
            fft,
            produced: 0,
            target,
        })
    }

    fn push(&mut self, samples: &[f32], out: &mut Sink<'_>) -> Result<()> {
        self.pending.extend_from_slice(samples);
        let mut used = 0;
        while self.pending.len() - used >= self.fft.input_frames_next() {
            let indexing = Indexing::new().input_offset(used);
            let n_in = self.step(Some(&indexing), out)?;
            used += n_in;
        }
        self.pending.drain(..used);
        Ok(())
    }

    /// Feeds what is left, then silence, until the output reaches its target length.
    fn flush(&mut self, out: &mut Sink<'_>) -> Result<()> {
        let left = self.pending.len();
        self.pending
            .resize(self.fft.input_frames_next().max(left), 0.0);
        self.step(Some(&Indexing::new().partial_len(left)), out)?;
        // Each call with no input still releases buffered output; the bound only guards against
        // a resampler that stops producing.
        let mut idle_calls = 0;
        while self.produced < self.target && idle_calls < 4 {
            let before = self.produced;
            self.step(Some(&Indexing::new().partial_len(0)), out)?;
            idle_calls = if self.produced == before {
                idle_calls + 1
            } else {
                0
            };
        }
        Ok(())
    }

    /// One resampler call over `pending`; returns input frames consumed.
    fn step(&mut self, indexing: Option<&Indexing>, out: &mut Sink<'_>) -> Result<usize> {
        let frames_in = self.pending.len();
        let input =
            InterleavedSlice::new(&self.pending[..], 1, frames_in).map_err(resample_error)?;
        let frames_out = self.out_buf.len();
        let mut output = InterleavedSlice::new_mut(&mut self.out_buf[..], 1, frames_out)
            .map_err(resample_error)?;
        let (n_in, n_out) = self
            .fft
            .process_into_buffer(&input, &mut output, indexing)
            .map_err(resample_error)?;
        let skip = self.to_skip.min(n_out);
        self.to_skip -= skip;
        self.produced += (n_out - skip) as u64;
        out(&self.out_buf[skip..n_out])?;
        Ok(n_in)
    }
}

/// Resampler errors here mean a sizing bug on our side, not bad input; report, don't panic.
fn resample_error(e: impl std::fmt::Display) -> FactsError {
    FactsError::Unsupported(format!("resampler refused a buffer: {e}"))
}

fn gcd(mut a: u32, mut b: u32) -> u32 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a.max(1)
}

#[cfg(test)]
mod rounding_tests {
    use super::to_i16;

    #[test]
    fn samples_round_half_away_from_zero_and_clip() {
        let reference = |x: f32| (x * 32768.0).round().clamp(-32768.0, 32767.0) as i16;
        let just_under_half = 0.499_999_97_f32 / 32768.0;
        for x in [
            0.0,
            just_under_half,
            -just_under_half,
            0.5 / 32768.0,
            -0.5 / 32768.0,
            1.5 / 32768.0,
            0.999_99,
            1.0,
            -1.0,
            3.5,
            -7.0,
            f32::MAX,
            f32::MIN,
        ] {
            assert_eq!(to_i16(x), reference(x), "{x:e}");
        }
        assert_eq!(to_i16(f32::NAN), 0);
        // Every f32 in [-1.5, 1.5] on a coarse grid.
        for i in -300_000..=300_000 {
            let x = i as f32 / 200_000.0;
            assert_eq!(to_i16(x), reference(x), "{x:e}");
        }
    }
}
