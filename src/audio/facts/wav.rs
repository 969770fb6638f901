//! Just enough RIFF/WAVE to stream a recording: walk the chunks to `data`, then decode blocks of
//! frames into one `f32` buffer per channel, normalised so that full scale is 1.0.
//!
//! hound writes our derived files, but its reader does not fit analysis: it refuses G.711 without
//! saying which format tag it saw, reports a short data chunk as a bare I/O error (we must say how
//! many bytes were missing), and decodes one sample per call where we want blocks. The header walk
//! below accepts what hound accepts (PCM 8/16/24/32-bit, 32-bit float, WAVE_FORMAT_EXTENSIBLE) plus
//! G.711 μ-law and A-law (format tags 7 and 6), which telephony recorders commonly write: decoding
//! them is one table lookup per sample (`g711.rs`).

use std::io::{self, Read};

use super::g711::{ALAW, MULAW};
use super::{FactsError, Result};

/// Bytes read per block: large enough to amortise calls, small enough that memory stays flat
/// (the decoded buffers hold the same number of samples as `f32`).
const BLOCK_BYTES: usize = 64 * 1024;
/// A `fmt ` chunk is 16 to 40 bytes; anything far larger is a damaged header, not a format.
const MAX_FMT_BYTES: u32 = 1024;
/// Tail shared by the KSDATAFORMAT_SUBTYPE GUIDs; their first two bytes are the format tag.
const SUBTYPE_GUID_TAIL: [u8; 14] = [
    0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x80, 0x00, 0x00, 0xaa, 0x00, 0x38, 0x9b, 0x71,
];

/// How samples are stored, as the `fmt ` chunk declares them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Encoding {
    U8,
    S16,
    S24,
    S32,
    F32,
    MuLaw,
    ALaw,
}

impl Encoding {
    /// The name written to Parquet (`AudioFacts::format`).
    pub(super) fn name(self) -> &'static str {
        match self {
            Encoding::U8 => "pcm_u8",
            Encoding::S16 => "pcm_s16le",
            Encoding::S24 => "pcm_s24le",
            Encoding::S32 => "pcm_s32le",
            Encoding::F32 => "float32",
            Encoding::MuLaw => "mulaw",
            Encoding::ALaw => "alaw",
        }
    }
}

/// What the header says about the data chunk that follows it.
#[derive(Debug, Clone, Copy)]
pub(super) struct Header {
    pub encoding: Encoding,
    pub channels: u16,
    pub sample_rate: u32,
    /// Significant bits per sample (`wValidBitsPerSample` for WAVE_FORMAT_EXTENSIBLE).
    pub bits_per_sample: u16,
    /// Bytes per frame (one sample of every channel).
    pub block_align: u16,
    /// Length of the data chunk in bytes, as declared; `None` when the header says 0 or
    /// 0xFFFFFFFF, which writers streaming to a pipe leave there: the data runs to the end.
    pub data_len: Option<u32>,
}

impl Header {
    /// Whole frames the header promises, if it gives a length.
    pub(super) fn frames(&self) -> Option<u64> {
        self.data_len
            .map(|len| u64::from(len) / u64::from(self.block_align))
    }

    /// Normalised thresholds at or beyond which a sample counts as clipped: within one LSB of
    /// positive or negative full scale. Float data has no LSB, so only ±1.0 and beyond count;
    /// G.711 counts its extreme code. For 32-bit integers "one LSB" is below `f32` resolution, so
    /// the band is the last `f32` step.
    pub(super) fn clip_thresholds(&self) -> (f32, f32) {
        match self.encoding {
            Encoding::F32 => (1.0, -1.0),
            Encoding::MuLaw => g711_thresholds(&MULAW),
            Encoding::ALaw => g711_thresholds(&ALAW),
            _ => {
                let lsb = 2f64.powi(1 - i32::from(self.bits_per_sample));
                ((1.0 - 2.0 * lsb) as f32, (-1.0 + lsb) as f32)
            }
        }
    }
}

fn g711_thresholds(table: &[i16; 256]) -> (f32, f32) {
    let max = table.iter().map(|v| v.unsigned_abs()).max().unwrap_or(1);
    let x = f32::from(max) / 32768.0;
    (x, -x)
}

/// Reads the RIFF header and every chunk up to the start of the sample data. Unknown chunks
/// (`LIST`, `fact`, vendor metadata) are skipped without being held in memory. The RIFF size is
/// not used (streaming writers leave 0 or 0xFFFFFFFF there), and an odd-sized chunk without its
/// pad byte (some writers forget it) is read as the next chunk begins.
pub(super) fn read_header<R: Read>(reader: &mut R) -> Result<Header> {
    let mut riff = [0u8; 12];
    let got = read_full(reader, &mut riff)?;
    if got == 0 {
        return Err(FactsError::NotWav("not a WAV file (input is empty)".into()));
    }
    match (&riff[0..4], got) {
        (b"RIFF", 12) => {}
        (b"RIFF", _) => return Err(FactsError::Corrupt("truncated RIFF header".into())),
        (b"RIFX", _) => {
            return Err(FactsError::Unsupported("big-endian RIFX WAV".into()));
        }
        (b"RF64", _) => {
            return Err(FactsError::Unsupported(
                "RF64 WAV (files over 4 GiB) is not analysed yet".into(),
            ));
        }
        _ => {
            return Err(FactsError::NotWav(
                "not a WAV file (RIFF header missing)".into(),
            ));
        }
    }
    if &riff[8..12] != b"WAVE" {
        return Err(FactsError::NotWav(format!(
            "not a WAV file (RIFF form type is {:?}, not \"WAVE\")",
            String::from_utf8_lossy(&riff[8..12])
        )));
    }
    let mut fmt: Option<Header> = None;
    // The first byte of the next chunk header, when an odd chunk had no pad byte.
    let mut carried: Option<u8> = None;
    loop {
        let mut chunk = [0u8; 8];
        let start = match carried.take() {
            Some(b) => {
                chunk[0] = b;
                1
            }
            None => 0,
        };
        match start + read_full(reader, &mut chunk[start..])? {
            8 => {}
            0 => {
                return Err(FactsError::Corrupt(
                    "no data chunk before end of file".into(),
                ));
            }
            _ => return Err(FactsError::Corrupt("truncated chunk header".into())),
        }
        let id = [chunk[0], chunk[1], chunk[2], chunk[3]];
        let len = u32::from_le_bytes([chunk[4], chunk[5], chunk[6], chunk[7]]);
        match &id {
            b"fmt " => fmt = Some(read_fmt(reader, len)?),
            b"data" => {
                let mut header = fmt.ok_or_else(|| {
                    FactsError::Corrupt("data chunk comes before the fmt chunk".into())
                })?;
                header.data_len = (len != 0 && len != u32::MAX).then_some(len);
                return Ok(header);
            }
            _ => {
                skip(reader, u64::from(len), &id)?;
                if len & 1 == 1 {
                    carried = skip_pad(reader)?;
                }
            }
        }
    }
}

/// Reads the pad byte after an odd-sized chunk. A pad is zero, and a chunk id never starts with
/// a zero byte; anything else is the next chunk's first byte, returned to be used as such.
fn skip_pad<R: Read>(reader: &mut R) -> Result<Option<u8>> {
    let mut pad = [0u8; 1];
    Ok(match read_full(reader, &mut pad)? {
        1 if pad[0] != 0 => Some(pad[0]),
        _ => None,
    })
}

fn read_fmt<R: Read>(reader: &mut R, len: u32) -> Result<Header> {
    if !(16..=MAX_FMT_BYTES).contains(&len) {
        return Err(FactsError::Corrupt(format!("fmt chunk of {len} bytes")));
    }
    // Chunks are padded to an even length; `fmt ` chunks are even in practice (16, 18, 40).
    let mut buf = vec![0u8; (len + (len & 1)) as usize];
    if read_full(reader, &mut buf)? != buf.len() {
        return Err(FactsError::Corrupt("truncated fmt chunk".into()));
    }
    let u16_at = |i: usize| u16::from_le_bytes([buf[i], buf[i + 1]]);
    let u32_at = |i: usize| u32::from_le_bytes([buf[i], buf[i + 1], buf[i + 2], buf[i + 3]]);
    let mut tag = u16_at(0);
    let channels = u16_at(2);
    let sample_rate = u32_at(4);
    let block_align = u16_at(12);
    let mut bits = u16_at(14);
    if tag == 0xfffe {
        if len < 40 {
            return Err(FactsError::Corrupt(format!(
                "WAVE_FORMAT_EXTENSIBLE fmt chunk of {len} bytes (needs 40)"
            )));
        }
        if buf[26..40] != SUBTYPE_GUID_TAIL {
            return Err(FactsError::Unsupported(
                "WAVE_FORMAT_EXTENSIBLE with a vendor sub-format".into(),
            ));
        }
        tag = u16_at(24);
        let valid = u16_at(18);
        if valid > 0 && valid <= bits {
            bits = valid;
        }
    }
    if channels == 0 {
        return Err(FactsError::Corrupt(
            "fmt chunk declares zero channels".into(),
        ));
    }
    if sample_rate == 0 {
        return Err(FactsError::Corrupt(
            "fmt chunk declares a sample rate of 0 Hz".into(),
        ));
    }
    if block_align == 0 || block_align % channels != 0 {
        return Err(FactsError::Corrupt(format!(
            "block align {block_align} does not fit {channels} channels"
        )));
    }
    let container = block_align / channels;
    let encoding = match (tag, container, bits) {
        (1, 1, 1..=8) => Encoding::U8,
        (1, 2, 9..=16) => Encoding::S16,
        (1, 3, 17..=24) => Encoding::S24,
        (1, 4, 17..=32) => Encoding::S32,
        (3, 4, 32) => Encoding::F32,
        (7, 1, 8) => Encoding::MuLaw,
        (6, 1, 8) => Encoding::ALaw,
        _ => {
            return Err(FactsError::Unsupported(format!(
                "{} WAV (format tag {tag}, {bits} bits in {container} bytes) is not analysed",
                tag_name(tag)
            )));
        }
    };
    Ok(Header {
        encoding,
        channels,
        sample_rate,
        bits_per_sample: bits,
        block_align,
        data_len: None,
    })
}

fn tag_name(tag: u16) -> &'static str {
    match tag {
        1 => "PCM",
        2 => "MS ADPCM",
        3 => "IEEE float",
        6 => "A-law",
        7 => "mu-law",
        0x11 => "IMA ADPCM",
        0x31 => "GSM 6.10",
        0x55 => "MP3",
        _ => "this",
    }
}

fn skip<R: Read>(reader: &mut R, len: u64, id: &[u8; 4]) -> Result<()> {
    let skipped = io::copy(&mut reader.by_ref().take(len), &mut io::sink())?;
    if skipped != len {
        return Err(FactsError::Corrupt(format!(
            "truncated {:?} chunk before the data chunk",
            String::from_utf8_lossy(id)
        )));
    }
    Ok(())
}

/// Reads until `buf` is full or the input ends; returns the bytes read.
fn read_full<R: Read>(reader: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// Streams the data chunk as blocks of de-interleaved, normalised samples. Buffers are reused, so
/// memory is a few hundred KiB whatever the duration.
pub(super) struct Blocks<R> {
    reader: R,
    header: Header,
    /// Bytes of whole frames still to read; `u64::MAX` when reading to the end of the stream.
    remaining: u64,
    /// Bytes of a partial last frame, dropped (known once the data ends).
    partial: u64,
    frames: u64,
    bytes: Vec<u8>,
    planar: Vec<Vec<f32>>,
}

impl<R: Read> Blocks<R> {
    /// `reader` must be positioned at the first byte of the data chunk (after `read_header`).
    pub(super) fn new(reader: R, header: Header) -> Self {
        let align = usize::from(header.block_align);
        let (remaining, partial) = match header.data_len {
            Some(len) => {
                let partial = u64::from(len) % align as u64;
                (u64::from(len) - partial, partial)
            }
            None => (u64::MAX, 0),
        };
        // No larger than the data: zeroing a full block's buffers for each short recording was
        // a visible cost.
        let in_data = usize::try_from(remaining / align as u64).unwrap_or(usize::MAX);
        let frames = (BLOCK_BYTES / align).min(in_data).max(1);
        Blocks {
            reader,
            header,
            remaining,
            partial,
            frames: 0,
            bytes: vec![0; frames * align],
            planar: vec![vec![0.0; frames]; usize::from(header.channels)],
        }
    }

    /// Decodes the next block; returns its length in frames, 0 at the end of the data chunk. A
    /// data chunk shorter than its header says is `Corrupt`: the file was cut off.
    pub(super) fn next_block(&mut self) -> Result<usize> {
        let want = self.remaining.min(self.bytes.len() as u64) as usize;
        if want == 0 {
            return Ok(0);
        }
        let align = usize::from(self.header.block_align);
        let mut got = read_full(&mut self.reader, &mut self.bytes[..want])?;
        if got < want {
            match self.header.data_len {
                Some(declared) => {
                    let found = u64::from(declared) - self.partial - self.remaining + got as u64;
                    return Err(FactsError::Corrupt(format!(
                        "truncated data chunk: header says {declared} bytes, found {found} \
                         (re-download the recording; if it stays short, the source file is damaged)"
                    )));
                }
                None => {
                    // Streamed: the data ends with the input, maybe mid-frame.
                    self.partial = (got % align) as u64;
                    got -= got % align;
                    self.remaining = 0;
                }
            }
        } else if self.remaining != u64::MAX {
            self.remaining -= want as u64;
        }
        let frames = got / align;
        self.frames += frames as u64;
        let bytes = &self.bytes[..got];
        let planar = &mut self.planar;
        match self.header.encoding {
            Encoding::U8 => deinterleave::<1>(bytes, planar, |[b]| (f32::from(b) - 128.0) / 128.0),
            Encoding::S16 => deinterleave::<2>(bytes, planar, |b| {
                f32::from(i16::from_le_bytes(b)) / 32768.0
            }),
            Encoding::S24 => deinterleave::<3>(bytes, planar, |[a, b, c]| {
                i32::from_le_bytes([0, a, b, c]) as f32 / 2_147_483_648.0
            }),
            Encoding::S32 => deinterleave::<4>(bytes, planar, |b| {
                i32::from_le_bytes(b) as f32 / 2_147_483_648.0
            }),
            Encoding::F32 => deinterleave::<4>(bytes, planar, |b| finite(f32::from_le_bytes(b))),
            Encoding::MuLaw => deinterleave::<1>(bytes, planar, |[b]| {
                f32::from(MULAW[usize::from(b)]) / 32768.0
            }),
            Encoding::ALaw => deinterleave::<1>(bytes, planar, |[b]| {
                f32::from(ALAW[usize::from(b)]) / 32768.0
            }),
        }
        Ok(frames)
    }

    /// Frames decoded so far.
    pub(super) fn frames(&self) -> u64 {
        self.frames
    }

    /// What was repaired to read the data, in words, once the data has been read: a streamed
    /// length, a partial last frame. Empty for a file read exactly as its header says.
    pub(super) fn repairs(&self) -> Vec<String> {
        let mut notes = Vec::new();
        if self.header.data_len.is_none() {
            notes.push(
                "data chunk size 0 or 0xFFFFFFFF (streamed WAV): read to the end of the file"
                    .to_string(),
            );
        }
        if self.partial > 0 {
            notes.push(format!(
                "dropped a partial last frame of {} byte(s) ({}-byte frames)",
                self.partial, self.header.block_align
            ));
        }
        notes
    }

    /// Samples of channel `ch` in the last block (valid up to the length `next_block` returned).
    pub(super) fn channel(&self, ch: usize) -> &[f32] {
        &self.planar[ch]
    }
}

/// NaN carries no level and would poison every sum: it reads as silence. ±∞ reads as full scale.
fn finite(x: f32) -> f32 {
    if x.is_finite() {
        x
    } else if x.is_nan() {
        0.0
    } else {
        x.signum()
    }
}

/// Splits interleaved `W`-byte samples into per-channel buffers. Generic over the decoder so
/// each encoding compiles to its own tight loop (no per-sample dispatch). Mono and stereo (nearly
/// every recording) take one pass over whole frames, which the compiler vectorises; more channels
/// take one strided pass per channel.
#[inline(always)]
pub(super) fn deinterleave<const W: usize>(
    bytes: &[u8],
    planar: &mut [Vec<f32>],
    decode: impl Fn([u8; W]) -> f32,
) {
    let (samples, _) = bytes.as_chunks::<W>();
    match planar {
        [mono] => {
            for (o, s) in mono.iter_mut().zip(samples) {
                *o = decode(*s);
            }
        }
        [left, right] => {
            let (frames, _) = samples.as_chunks::<2>();
            for ((l, r), [a, b]) in left.iter_mut().zip(right.iter_mut()).zip(frames) {
                *l = decode(*a);
                *r = decode(*b);
            }
        }
        _ => deinterleave_strided(samples, planar, decode),
    }
}

/// [`deinterleave`] one channel at a time: any number of channels.
#[inline(always)]
pub(super) fn deinterleave_strided<const W: usize>(
    samples: &[[u8; W]],
    planar: &mut [Vec<f32>],
    decode: impl Fn([u8; W]) -> f32,
) {
    let channels = planar.len();
    for (ch, out) in planar.iter_mut().enumerate() {
        let src = samples.iter().skip(ch).step_by(channels);
        for (o, s) in out.iter_mut().zip(src) {
            *o = decode(*s);
        }
    }
}
