//! Talk, echo, noise and clipping on synthetic calls: each test states what a listener would
//! say (who talks when) and checks duration (±20 ms), talk per channel (±100 ms) and cross-talk.

use hound::SampleFormat;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::tests::{RATE, close, pcm16, sine, spec, wav};
use super::*;

/// A talker: voiced sound (140 Hz and harmonics) in syllables of random length and loudness,
/// dipping to -20 dB between them, as speech does. Deterministic per seed; `peak` is the
/// loudest syllable's amplitude.
fn talker(seed: u64, peak: f64) -> impl Fn(f64) -> f64 {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut syllables = Vec::new();
    let mut t = 0.0;
    while t < 30.0 {
        let len = rng.random_range(0.12..0.3);
        syllables.push((t, len, rng.random_range(0.3..1.0)));
        t += len;
    }
    let f0 = 120.0 + 40.0 * (seed % 3) as f64;
    move |t: f64| {
        let i = syllables.partition_point(|s| s.0 <= t).saturating_sub(1);
        let (start, len, loud) = syllables[i];
        let shape = (std::f64::consts::PI * (t - start) / len).sin().powi(2);
        let env = loud * (0.1 + 0.9 * shape);
        let voice: f64 = [1.0, 0.6, 0.4, 0.25, 0.15]
            .iter()
            .enumerate()
            .map(|(h, a)| a * (std::f64::consts::TAU * f0 * (h + 1) as f64 * t).sin())
            .sum();
        peak * env * voice / 2.4
    }
}

fn secs(i: usize) -> f64 {
    i as f64 / f64::from(RATE)
}

fn within(t: f64, spans: &[(f64, f64)]) -> bool {
    spans.iter().any(|&(a, b)| t >= a && t < b)
}

/// Asserts the facts every scenario shares: duration, talk per channel, cross-talk.
fn check(f: &AudioFacts, duration_ms: f64, talk_ms: &[f64], crosstalk: f64, what: &str) {
    close(
        f.duration_ms as f64,
        duration_ms,
        20.0,
        &format!("{what}: duration"),
    );
    for (ch, want) in talk_ms.iter().enumerate() {
        let got = f.channel_stats[ch].talk_time_ms.expect("analysed channel") as f64;
        close(
            got,
            *want,
            100.0,
            &format!("{what}: talk on channel {}", ch + 1),
        );
    }
    close(
        f.crosstalk_share,
        crosstalk,
        0.03,
        &format!("{what}: cross-talk"),
    );
}

#[test]
fn echo_of_the_other_party_20_to_30_db_down_is_not_talk() {
    // Caller on channel 1 talks 0–3 s and 5–6 s; agent on channel 2 talks 3–6 s; the caller
    // leaks into channel 2 after 40 ms, `rel` dB down.
    let (caller, agent) = (talker(1, 0.5), talker(2, 0.5));
    let delay = 0.040;
    for rel in [-20.0, -25.0, -30.0] {
        let gain = 10f64.powf(rel / 20.0);
        let caller_at = |t: f64| {
            if within(t, &[(0.0, 3.0), (5.0, 6.0)]) {
                caller(t)
            } else {
                0.0
            }
        };
        let bytes = wav(pcm16(2, RATE), 7 * RATE as usize, |i, ch| {
            let t = secs(i);
            match ch {
                0 => caller_at(t),
                _ => {
                    let own = if within(t, &[(3.0, 6.0)]) {
                        agent(t)
                    } else {
                        0.0
                    };
                    own + gain * caller_at(t - delay)
                }
            }
        });
        let f = analyze_bytes(&bytes).unwrap();
        let what = format!("echo at {rel} dB");
        // Both talk 5–6 s of the 6 s when someone talks.
        check(&f, 7000.0, &[4000.0, 3000.0], 1.0 / 6.0, &what);
        let agent = &f.channel_stats[1];
        assert!(
            agent.active_level_dbfs.unwrap() > -30.0,
            "{what}: {agent:?}"
        );
    }
}

#[test]
fn a_dc_offset_is_not_talk() {
    // -40 dBFS of DC on channel 1 all along, a talker on it 1–2.5 s; channel 2 DC only.
    let voice = talker(3, 0.5);
    let bytes = wav(pcm16(2, RATE), 4 * RATE as usize, |i, ch| {
        let t = secs(i);
        let dc = if ch == 0 { 0.01 } else { -0.01 };
        dc + if ch == 0 && within(t, &[(1.0, 2.5)]) {
            voice(t)
        } else {
            0.0
        }
    });
    let f = analyze_bytes(&bytes).unwrap();
    check(&f, 4000.0, &[1500.0, 0.0], 0.0, "DC offset");
    close(f.channel_stats[1].rms_dbfs, -40.0, 0.1, "DC level");
}

#[test]
fn white_noise_at_minus_47_dbfs_is_not_talk() {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let frames = 6 * RATE as usize;
    // Uniform noise of RMS a/√3.
    let a = 10f64.powf(-47.0 / 20.0) * 3f64.sqrt();
    let noise: Vec<f64> = (0..frames * 2).map(|_| rng.random_range(-a..a)).collect();
    let voice = talker(4, 0.3);
    let bytes = wav(pcm16(2, RATE), frames, |i, ch| {
        let t = secs(i);
        noise[i * 2 + ch]
            + if ch == 0 && within(t, &[(2.0, 4.0)]) {
                voice(t)
            } else {
                0.0
            }
    });
    let f = analyze_bytes(&bytes).unwrap();
    check(&f, 6000.0, &[2000.0, 0.0], 0.0, "noise at -47 dBFS");
    close(f.channel_stats[1].rms_dbfs, -47.0, 0.3, "noise level");
    assert_eq!(f.channel_stats[1].silence_share, Some(1.0));
}

#[test]
fn a_clean_full_scale_sine_is_not_clipped_and_is_talk() {
    for (spec, freq) in [
        (pcm16(1, RATE), 440.0),
        (pcm16(1, RATE), 1000.0),
        (spec(1, RATE, 32, SampleFormat::Float), 1000.0),
        (spec(1, RATE, 24, SampleFormat::Int), 97.0),
    ] {
        let tone = sine(freq, 1.0, RATE);
        let f = analyze_bytes(&wav(spec, 2 * RATE as usize, |i, _| tone(i))).unwrap();
        let c = &f.channel_stats[0];
        assert_eq!(c.clipping_share, 0.0, "{freq} Hz {spec:?}");
        close(c.rms_dbfs, -3.01, 0.05, "rms");
        check(&f, 2000.0, &[2000.0], 0.0, "full-scale sine");
    }
}

#[test]
fn clipping_is_runs_of_three_or_more_full_scale_samples() {
    // Every 20 samples: a 2-sample spike (not clipping), then a 4-sample plateau (clipping).
    let bytes = wav(pcm16(1, RATE), 8000, |i, _| match i % 20 {
        0 | 1 => 1.0,
        10..14 => -1.0,
        _ => 0.2,
    });
    let f = analyze_bytes(&bytes).unwrap();
    assert_eq!(f.channel_stats[0].clipping_share, 4.0 / 20.0);
}

#[test]
fn only_the_first_two_of_three_channels_are_judged_for_talk() {
    // Channel 1 talks 0–2 s, channel 2 1–3 s, channel 3 carries a loud tone all along.
    let (a, b) = (talker(5, 0.5), talker(6, 0.5));
    let tone = sine(500.0, 0.5, RATE);
    let bytes = wav(pcm16(3, RATE), 3 * RATE as usize, |i, ch| {
        let t = secs(i);
        match ch {
            0 if t < 2.0 => a(t),
            1 if t >= 1.0 => b(t),
            2 => tone(i),
            _ => 0.0,
        }
    });
    let f = analyze_bytes(&bytes).unwrap();
    check(&f, 3000.0, &[2000.0, 2000.0], 1.0 / 3.0, "three channels");
    let third = &f.channel_stats[2];
    assert_eq!(
        (
            third.talk_time_ms,
            third.silence_share,
            third.active_level_dbfs
        ),
        (None, None, None)
    );
    close(third.rms_dbfs, -9.03, 0.05, "third channel level");
}

#[test]
fn derivatives_report_the_clipping_they_add() {
    // A full-scale square wave overshoots when resampled: the 16-bit output limits it.
    let square = wav(pcm16(1, RATE), 8000, |i, _| {
        if (i / 40) % 2 == 0 { 1.0 } else { -1.0 }
    });
    let info = derive_mono16k(&square[..], std::io::Cursor::new(Vec::new())).unwrap();
    assert!(info.clipped > 0, "{info:?}");
    let tone = sine(440.0, 0.5, RATE);
    let clean = wav(pcm16(1, RATE), 8000, |i, _| tone(i));
    let info = derive_mono16k(&clean[..], std::io::Cursor::new(Vec::new())).unwrap();
    assert_eq!(info.clipped, 0);
}
