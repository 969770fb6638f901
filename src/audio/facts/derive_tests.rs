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
            duration_ms: 2000,
            clipped: 0,
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
fn channel_derivatives_put_each_party_in_its_own_16k_file() {
    let tone = sine(1000.0, 0.5, RATE);
    let input = wav(
        pcm16(2, RATE),
        8000,
        |i, ch| if ch == 0 { tone(i) } else { 0.0 },
    );
    let (mut a, mut b) = (Cursor::new(Vec::new()), Cursor::new(Vec::new()));
    let results = derive(
        &input[..],
        vec![
            (Derivative::Channel2, &mut b),
            (Derivative::Channel1, &mut a),
        ],
    )
    .unwrap();
    let want = DerivedInfo {
        sample_rate: 16_000,
        channels: 1,
        frames: 16_000,
        duration_ms: 1000,
        clipped: 0,
    };
    assert_eq!(
        results.iter().map(|(k, _)| *k).collect::<Vec<_>>(),
        [Derivative::Channel2, Derivative::Channel1],
        "results come back in the order asked"
    );
    for (_, r) in &results {
        assert_eq!(r.as_ref().unwrap(), &want);
    }
    let (fa, fb) = (
        analyze_bytes(a.get_ref()).unwrap(),
        analyze_bytes(b.get_ref()).unwrap(),
    );
    assert_eq!(
        (fa.channels, fa.sample_rate, fa.frames),
        (1, 16_000, 16_000)
    );
    close(fa.channel_stats[0].rms_dbfs, -9.03, 0.5, "first channel");
    assert_eq!(fb.channel_stats[0].rms_dbfs, DBFS_FLOOR);
}

#[test]
fn one_pass_gives_the_mix_and_both_channels() {
    let (t1, t2) = (sine(440.0, 0.5, RATE), sine(1000.0, 0.25, RATE));
    let input = wav(
        pcm16(2, RATE),
        12_000,
        |i, ch| if ch == 0 { t1(i) } else { t2(i) },
    );
    let (mut m, mut a, mut b) = (
        Cursor::new(Vec::new()),
        Cursor::new(Vec::new()),
        Cursor::new(Vec::new()),
    );
    let results = derive(
        &input[..],
        vec![
            (Derivative::Mono16k, &mut m),
            (Derivative::Channel1, &mut a),
            (Derivative::Channel2, &mut b),
        ],
    )
    .unwrap();
    assert!(
        results
            .iter()
            .all(|(_, r)| r.as_ref().unwrap().frames == 24_000)
    );
    let level = |c: &Cursor<Vec<u8>>| analyze_bytes(c.get_ref()).unwrap().channel_stats[0].rms_dbfs;
    close(level(&a), -9.03, 0.5, "channel 1");
    close(level(&b), -15.05, 0.5, "channel 2");
    // Uncorrelated tones at half gain: 10·log10((0.25² + 0.125²)/2) = -14.08 dBFS.
    close(level(&m), -14.08, 0.5, "mix");
}

#[test]
fn a_mono_recording_has_no_second_channel_but_still_a_mix() {
    let input = wav(pcm16(1, RATE), 100, |_, _| 0.0);
    let results = derive(
        &input[..],
        vec![
            (Derivative::Mono16k, Cursor::new(Vec::new())),
            (Derivative::Channel2, Cursor::new(Vec::new())),
        ],
    )
    .unwrap();
    assert!(results[0].1.is_ok());
    assert!(
        matches!(&results[1].1, Err(FactsError::Unsupported(m)) if m.contains("channel 2")),
        "{:?}",
        results[1].1
    );
}

#[test]
fn input_that_is_not_wav_fails_every_derivative() {
    let err = derive(
        &b"<html>AccessDenied</html>"[..],
        vec![(Derivative::Mono16k, Cursor::new(Vec::new()))],
    );
    assert!(matches!(err, Err(FactsError::NotWav(_))), "{err:?}");
}

#[test]
fn the_mix_made_from_both_channels_equals_the_mix_resampled_directly() {
    let (t1, t2) = (sine(440.0, 0.5, RATE), sine(1333.0, 0.3, RATE));
    let input = wav(
        pcm16(2, RATE),
        20_011,
        |i, ch| {
            if ch == 0 { t1(i) } else { t2(i) }
        },
    );
    let mut alone = Cursor::new(Vec::new());
    derive_mono16k(&input[..], &mut alone).unwrap();
    let (mut c1, mut shared, mut c2) = (
        Cursor::new(Vec::new()),
        Cursor::new(Vec::new()),
        Cursor::new(Vec::new()),
    );
    derive(
        &input[..],
        vec![
            (Derivative::Channel1, &mut c1),
            (Derivative::Mono16k, &mut shared),
            (Derivative::Channel2, &mut c2),
        ],
    )
    .unwrap();
    let samples = |c: &Cursor<Vec<u8>>| -> Vec<i16> {
        hound::WavReader::new(Cursor::new(c.get_ref()))
            .unwrap()
            .into_samples::<i16>()
            .map(Result::unwrap)
            .collect()
    };
    let (a, b) = (samples(&alone), samples(&shared));
    assert_eq!(a.len(), b.len());
    assert_eq!(a.len(), 40_022);
    let worst = a.iter().zip(&b).map(|(x, y)| (x - y).abs()).max().unwrap();
    assert!(worst <= 1, "differs by {worst} LSB");
}
