//! Derived files: 16 kHz mono for speech models, one file per channel for diarization.

use std::io::Cursor;

use super::tests::{RATE, close, pcm16, sine, wav};
use super::*;

#[test]
fn mono16k_of_8k_stereo_keeps_duration_and_tone_level() {
    let tone = sine(1000.0, 0.5, RATE);
    let input = wav(pcm16(2, RATE), 16_000, |i, _| tone(i));
    let mut out = Cursor::new(Vec::new());
    let info = derive_mono16k(&input[..], &mut out).unwrap();
    assert_eq!(
        info,
        DerivedInfo {
            sample_rate: 16_000,
            channels: 1,
            frames: 32_000,
            duration_ms: 2000
        }
    );
    let r = hound::WavReader::new(Cursor::new(out.get_ref())).unwrap();
    assert_eq!(r.spec(), pcm16(1, 16_000));
    assert_eq!(r.duration(), 32_000);
    let f = analyze_bytes(out.get_ref()).unwrap();
    close(
        f.channel_stats[0].rms_dbfs,
        -9.03,
        0.5,
        "level after resampling",
    );
}

#[test]
fn mono16k_from_other_rates_keeps_duration_within_a_millisecond() {
    for rate in [11_025, 22_050, 44_100, 48_000] {
        let tone = sine(1000.0, 0.5, rate);
        let frames = rate as usize * 3 / 2 + 17;
        let input = wav(pcm16(1, rate), frames, |i, _| tone(i));
        let mut out = Cursor::new(Vec::new());
        let info = derive_mono16k(&input[..], &mut out).unwrap();
        let f = analyze_bytes(out.get_ref()).unwrap();
        let input_ms = frames as f64 * 1000.0 / f64::from(rate);
        close(
            f.frames as f64 / 16.0,
            input_ms,
            1.0,
            &format!("{rate} Hz duration"),
        );
        assert_eq!(info.frames, f.frames);
        close(
            f.channel_stats[0].rms_dbfs,
            -9.03,
            0.5,
            &format!("{rate} Hz level"),
        );
    }
}

#[test]
fn mono16k_of_16k_mono_is_bit_exact() {
    let input = wav(pcm16(1, 16_000), 5000, |i, _| {
        ((i * 37) % 200) as f64 / 250.0 - 0.4
    });
    let mut out = Cursor::new(Vec::new());
    derive_mono16k(&input[..], &mut out).unwrap();
    assert_eq!(out.into_inner(), input);
}

#[test]
fn split_channels_puts_each_party_in_its_own_file() {
    let tone = sine(1000.0, 0.5, RATE);
    let input = wav(
        pcm16(2, RATE),
        8000,
        |i, ch| if ch == 0 { tone(i) } else { 0.0 },
    );
    let (mut a, mut b) = (Cursor::new(Vec::new()), Cursor::new(Vec::new()));
    let info = split_channels(&input[..], &mut a, &mut b).unwrap();
    assert_eq!(
        info,
        DerivedInfo {
            sample_rate: RATE,
            channels: 1,
            frames: 8000,
            duration_ms: 1000
        }
    );
    let (fa, fb) = (
        analyze_bytes(a.get_ref()).unwrap(),
        analyze_bytes(b.get_ref()).unwrap(),
    );
    assert_eq!((fa.channels, fa.sample_rate, fa.frames), (1, RATE, 8000));
    close(fa.channel_stats[0].rms_dbfs, -9.03, 0.05, "first channel");
    assert_eq!(fb.channel_stats[0].rms_dbfs, DBFS_FLOOR);
}

#[test]
fn split_channels_refuses_a_mono_recording() {
    let input = wav(pcm16(1, RATE), 100, |_, _| 0.0);
    let err = split_channels(&input[..], Cursor::new(Vec::new()), Cursor::new(Vec::new()));
    assert!(matches!(err, Err(FactsError::Unsupported(_))));
}
