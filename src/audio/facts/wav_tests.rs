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
        assert_eq!((a.clipping_share, a.talk_time_ms), (1.0, 1000), "{format}");
        assert!(
            a.peak_dbfs > -0.2 && a.peak_dbfs < 0.0,
            "{format}: {}",
            a.peak_dbfs
        );
        assert!(b.rms_dbfs < -70.0 && b.silence_share == 1.0, "{format}");
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
