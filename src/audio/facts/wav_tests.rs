//! Reading what recorders write, and refusing what they don't: encodings, chunk layouts,
//! truncated and damaged files (which must fail with a clear error, never panic).

use std::io::Cursor;

use hound::SampleFormat;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::g711::{ALAW, MULAW};
use super::tests::{RATE, pcm16, sine, spec, wav};
use super::*;

/// A RIFF/WAVE file from raw chunks, padded as the format requires.
fn riff(chunks: &[(&[u8; 4], &[u8])]) -> Vec<u8> {
    let mut body = b"WAVE".to_vec();
    for (id, data) in chunks {
        body.extend_from_slice(*id);
        body.extend_from_slice(&(data.len() as u32).to_le_bytes());
        body.extend_from_slice(data);
        if data.len() % 2 == 1 {
            body.push(0);
        }
    }
    let mut out = b"RIFF".to_vec();
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(&body);
    out
}

/// A `fmt ` chunk body for 8-bit G.711 (`tag` 7 = μ-law, 6 = A-law).
fn g711_fmt(tag: u16, channels: u16, rate: u32) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&tag.to_le_bytes());
    f.extend_from_slice(&channels.to_le_bytes());
    f.extend_from_slice(&rate.to_le_bytes());
    f.extend_from_slice(&(rate * u32::from(channels)).to_le_bytes());
    f.extend_from_slice(&channels.to_le_bytes());
    f.extend_from_slice(&8u16.to_le_bytes());
    f.extend_from_slice(&0u16.to_le_bytes());
    f
}

#[test]
fn g711_tables_match_the_reference_decoder() {
    assert_eq!((MULAW[0xff], MULAW[0x7f]), (0, 0));
    assert_eq!((MULAW[0x80], MULAW[0x00]), (32124, -32124));
    assert_eq!((MULAW[0xfe], MULAW[0x7e]), (8, -8));
    assert_eq!((ALAW[0xd5], ALAW[0x55]), (8, -8));
    assert_eq!((ALAW[0xaa], ALAW[0x2a]), (32256, -32256));
}

#[test]
fn mulaw_and_alaw_wavs_are_decoded_and_analysed() {
    for (tag, format, hi, lo, silence) in [
        (7, "mulaw", 0x80, 0x00, 0xff),
        (6, "alaw", 0xaa, 0x2a, 0xd5),
    ] {
        // One second of an extreme-code square wave on channel 0, near-silence on channel 1.
        let mut data = Vec::new();
        for i in 0..8000 {
            data.push(if (i / 4) % 2 == 0 { hi } else { lo });
            data.push(silence);
        }
        let bytes = riff(&[
            (b"fmt ", &g711_fmt(tag, 2, RATE)),
            (b"fact", &[0; 4]),
            (b"data", &data),
        ]);
        let f = analyze_bytes(&bytes).unwrap();
        assert_eq!(
            (f.format.as_str(), f.bits_per_sample, f.frames),
            (format, 8, 8000)
        );
        let (a, b) = (&f.channel_stats[0], &f.channel_stats[1]);
        assert_eq!(
            (a.clipping_share, a.talk_time_ms),
            (1.0, Some(1000)),
            "{format}"
        );
        assert!(
            a.peak_dbfs > -0.2 && a.peak_dbfs < 0.0,
            "{format}: {}",
            a.peak_dbfs
        );
        assert!(
            b.rms_dbfs < -70.0 && b.silence_share == Some(1.0),
            "{format}"
        );
    }
}

#[test]
fn chunks_before_the_data_chunk_are_skipped_including_odd_padding() {
    let bytes = riff(&[
        (b"LIST", b"INFOISFT\x03\x00\x00\x00ab\x00"),
        (b"fmt ", &g711_fmt(7, 1, RATE)),
        (b"junk", b"odd"),
        (b"data", &[0xff; 800]),
    ]);
    let f = analyze_bytes(&bytes).unwrap();
    assert_eq!((f.frames, f.duration_ms), (800, 100));
}

#[test]
fn unsupported_codecs_are_named_in_the_error() {
    let mut fmt = g711_fmt(0x11, 1, RATE);
    fmt[14] = 4;
    let bytes = riff(&[(b"fmt ", &fmt), (b"data", &[0; 100])]);
    let err = analyze_bytes(&bytes).unwrap_err();
    assert!(matches!(err, FactsError::Unsupported(_)), "{err}");
    assert!(
        err.to_string().contains("IMA ADPCM WAV (format tag 17"),
        "{err}"
    );
}

#[test]
fn empty_and_random_input_is_not_wav() {
    let err = analyze_bytes(&[]).unwrap_err();
    assert!(matches!(err, FactsError::NotWav(_)), "{err}");
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    for len in [1, 11, 12, 44, 5000] {
        let mut junk = vec![0u8; len];
        rng.fill(&mut junk[..]);
        let err = analyze_bytes(&junk).unwrap_err();
        assert_eq!(
            err.to_string(),
            "not a WAV file (RIFF header missing)",
            "{len} bytes"
        );
    }
    let html = b"<html><body>403 Forbidden</body></html>";
    assert!(matches!(analyze_bytes(html), Err(FactsError::NotWav(_))));
}

#[test]
fn a_truncated_data_chunk_is_corrupt_and_says_how_much_is_missing() {
    let bytes = wav(pcm16(2, RATE), 16_000, |_, _| 0.1);
    let cut = &bytes[..44 + 30_001];
    let err = analyze_bytes(cut).unwrap_err();
    assert!(matches!(err, FactsError::Corrupt(_)), "{err}");
    assert!(
        err.to_string()
            .contains("truncated data chunk: header says 64000 bytes, found 30001"),
        "{err}"
    );
}

#[test]
fn every_prefix_of_a_wav_fails_cleanly() {
    let bytes = wav(pcm16(2, RATE), 100, |_, _| 0.1);
    for len in 0..bytes.len() {
        assert!(
            analyze_bytes(&bytes[..len]).is_err(),
            "prefix of {len} bytes accepted"
        );
    }
    assert!(analyze_bytes(&bytes).is_ok());
}

#[test]
fn damaged_headers_never_panic() {
    let tone = sine(500.0, 0.3, RATE);
    let mut mulaw = vec![0x80u8; 400];
    mulaw[..4].copy_from_slice(&[0x00, 0xff, 0x7f, 0x10]);
    let originals = [
        (wav(pcm16(2, RATE), 400, |i, _| tone(i)), 44),
        (
            wav(spec(2, RATE, 24, SampleFormat::Int), 400, |i, _| tone(i)),
            68,
        ),
        (
            riff(&[
                (b"fmt ", &g711_fmt(7, 2, RATE)),
                (b"fact", &[0; 4]),
                (b"data", &mulaw),
            ]),
            70,
        ),
    ];
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    for (good, header_len) in &originals {
        for _ in 0..2000 {
            let mut bytes = good.clone();
            for _ in 0..rng.random_range(1..4) {
                bytes[rng.random_range(0..*header_len)] = rng.random();
            }
            let _ = analyze_bytes(&bytes);
            let _ = derive_mono16k(&bytes[..], Cursor::new(Vec::new()));
            let all = Derivative::ALL.map(|d| (d, Cursor::new(Vec::new())));
            let _ = derive(&bytes[..], all.into());
        }
    }
}

/// Offset of the `data` chunk's size field in a WAV.
fn data_size_at(bytes: &[u8]) -> usize {
    bytes.windows(4).position(|w| w == b"data").unwrap() + 4
}

fn set_u32(bytes: &mut [u8], at: usize, v: u32) {
    bytes[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

#[test]
fn streamed_and_zero_size_headers_are_read_to_the_end_and_noted() {
    let tone = sine(440.0, 0.5, RATE);
    let good = wav(pcm16(2, RATE), 12_000, |i, _| tone(i));
    let want = analyze_bytes(&good).unwrap();
    assert!(want.notes.is_empty());
    for size in [0, u32::MAX] {
        let mut bytes = good.clone();
        set_u32(&mut bytes, 4, size); // RIFF size
        let at = data_size_at(&bytes);
        set_u32(&mut bytes, at, size);
        let f = analyze_bytes(&bytes).unwrap();
        assert_eq!((f.frames, f.duration_ms), (12_000, 1500), "{size:#x}");
        assert_eq!(f.channel_stats, want.channel_stats, "{size:#x}");
        assert_eq!(f.notes.len(), 1, "{size:#x}");
        assert!(f.notes[0].contains("streamed"), "{:?}", f.notes);
        let info = derive_mono16k(&bytes[..], Cursor::new(Vec::new())).unwrap();
        assert_eq!((info.frames, info.duration_ms), (24_000, 1500));
    }
}

#[test]
fn a_wav_without_audio_is_empty_never_facts_of_zeros() {
    let mut bytes = wav(pcm16(2, RATE), 0, |_, _| 0.0);
    assert!(matches!(analyze_bytes(&bytes), Err(FactsError::Empty)));
    let at = data_size_at(&bytes);
    set_u32(&mut bytes, at, u32::MAX);
    assert!(matches!(analyze_bytes(&bytes), Err(FactsError::Empty)));
    let derived = derive_mono16k(&bytes[..], Cursor::new(Vec::new()));
    assert!(matches!(derived, Err(FactsError::Empty)), "{derived:?}");
}

#[test]
fn a_partial_last_frame_is_dropped_and_noted() {
    let tone = sine(440.0, 0.5, RATE);
    let good = wav(pcm16(2, RATE), 8000, |i, _| tone(i));
    // Declared size includes 3 stray bytes.
    let mut declared = good.clone();
    declared.extend_from_slice(&[1, 2, 3]);
    let at = data_size_at(&declared);
    set_u32(&mut declared, at, 32_003);
    // Streamed, ending mid-frame.
    let mut streamed = declared.clone();
    set_u32(&mut streamed, at, u32::MAX);
    for (bytes, notes) in [(declared, 1), (streamed, 2)] {
        let f = analyze_bytes(&bytes).unwrap();
        assert_eq!((f.frames, f.duration_ms), (8000, 1000));
        assert_eq!(f.notes.len(), notes, "{:?}", f.notes);
        assert!(
            f.notes
                .last()
                .unwrap()
                .contains("dropped a partial last frame of 3 byte(s)"),
            "{:?}",
            f.notes
        );
        let info = derive_mono16k(&bytes[..], Cursor::new(Vec::new())).unwrap();
        assert_eq!(info.frames, 16_000);
    }
}

#[test]
fn wave_format_extensible_pcm_is_read() {
    // 16-bit stereo PCM declared through WAVE_FORMAT_EXTENSIBLE (40-byte fmt chunk).
    let mut fmt = Vec::new();
    fmt.extend_from_slice(&0xfffeu16.to_le_bytes());
    fmt.extend_from_slice(&2u16.to_le_bytes());
    fmt.extend_from_slice(&RATE.to_le_bytes());
    fmt.extend_from_slice(&(RATE * 4).to_le_bytes());
    fmt.extend_from_slice(&4u16.to_le_bytes());
    fmt.extend_from_slice(&16u16.to_le_bytes());
    fmt.extend_from_slice(&22u16.to_le_bytes()); // cbSize
    fmt.extend_from_slice(&16u16.to_le_bytes()); // valid bits
    fmt.extend_from_slice(&3u32.to_le_bytes()); // channel mask
    fmt.extend_from_slice(&1u16.to_le_bytes()); // sub-format: PCM
    fmt.extend_from_slice(&[
        0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x80, 0x00, 0x00, 0xaa, 0x00, 0x38, 0x9b, 0x71,
    ]);
    let tone = sine(440.0, 0.5, RATE);
    let data: Vec<u8> = (0..8000)
        .flat_map(|i| {
            let s = ((tone(i) * 32768.0).round() as i16).to_le_bytes();
            [s[0], s[1], 0, 0]
        })
        .collect();
    let f = analyze_bytes(&riff(&[(b"fmt ", &fmt), (b"data", &data)])).unwrap();
    assert_eq!(
        (f.format.as_str(), f.channels, f.bits_per_sample, f.frames),
        ("pcm_s16le", 2, 16, 8000)
    );
    assert_eq!(f.channel_stats[0].talk_time_ms, Some(1000));
    assert_eq!(f.channel_stats[1].talk_time_ms, Some(0));
}

#[test]
fn an_odd_chunk_without_its_pad_byte_is_read_past() {
    // `LIST` of 13 bytes with no pad byte after it, as some writers leave it.
    let mut bytes = b"RIFF\0\0\0\0WAVE".to_vec();
    bytes.extend_from_slice(b"LIST");
    bytes.extend_from_slice(&13u32.to_le_bytes());
    bytes.extend_from_slice(b"INFOISFT\x01\0\0\0a");
    for (id, body) in [(b"fmt ", g711_fmt(6, 1, RATE)), (b"data", vec![0xd5; 800])] {
        bytes.extend_from_slice(id);
        bytes.extend_from_slice(&(body.len() as u32).to_le_bytes());
        bytes.extend_from_slice(&body);
    }
    let f = analyze_bytes(&bytes).unwrap();
    assert_eq!(
        (f.format.as_str(), f.frames, f.duration_ms),
        ("alaw", 800, 100)
    );
}

/// Mono and stereo take a one-pass path through whole frames; it decodes exactly what the
/// channel-by-channel path decodes, for every sample width.
#[test]
fn frame_by_frame_deinterleaving_equals_channel_by_channel() {
    fn check<const W: usize>(
        bytes: &[u8],
        channels: usize,
        decode: impl Fn([u8; W]) -> f32 + Copy,
    ) {
        let frames = bytes.len() / (W * channels);
        let bytes = &bytes[..frames * W * channels];
        let mut fast = vec![vec![f32::NAN; frames]; channels];
        let mut strided = vec![vec![f32::NAN; frames]; channels];
        wav::deinterleave(bytes, &mut fast, decode);
        wav::deinterleave_strided(bytes.as_chunks::<W>().0, &mut strided, decode);
        let bits = |p: &[Vec<f32>]| -> Vec<Vec<u32>> {
            p.iter()
                .map(|c| c.iter().map(|x| x.to_bits()).collect())
                .collect()
        };
        assert_eq!(
            bits(&fast),
            bits(&strided),
            "{W}-byte samples, {channels} channel(s)"
        );
    }
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let bytes: Vec<u8> = (0..4099).map(|_| rng.random()).collect();
    for channels in 1..=3 {
        check::<1>(&bytes, channels, |[b]| {
            f32::from(MULAW[usize::from(b)]) / 32768.0
        });
        check::<2>(&bytes, channels, |b| {
            f32::from(i16::from_le_bytes(b)) / 32768.0
        });
        check::<3>(&bytes, channels, |[a, b, c]| {
            i32::from_le_bytes([0, a, b, c]) as f32 / 2_147_483_648.0
        });
        check::<4>(&bytes, channels, |b| {
            i32::from_le_bytes(b) as f32 / 2_147_483_648.0
        });
    }
}
