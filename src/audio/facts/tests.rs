//! Exact expectations on synthetic signals; every WAV is generated in memory.

use std::f64::consts::TAU;
use std::io::Cursor;

use hound::{SampleFormat, WavSpec};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::*;

pub(super) const RATE: u32 = 8000;

pub(super) fn spec(channels: u16, sample_rate: u32, bits: u16, format: SampleFormat) -> WavSpec {
    WavSpec {
        channels,
        sample_rate,
        bits_per_sample: bits,
        sample_format: format,
    }
}

pub(super) fn pcm16(channels: u16, sample_rate: u32) -> WavSpec {
    spec(channels, sample_rate, 16, SampleFormat::Int)
}

/// A WAV in memory; `sample(frame, channel)` is a normalised value, quantised like a recorder
/// would (full scale = 2^(bits-1), clamped).
pub(super) fn wav(spec: WavSpec, frames: usize, sample: impl Fn(usize, usize) -> f64) -> Vec<u8> {
    let mut cursor = Cursor::new(Vec::new());
    let mut w = hound::WavWriter::new(&mut cursor, spec).unwrap();
    for i in 0..frames {
        for ch in 0..usize::from(spec.channels) {
            let x = sample(i, ch);
            let full = (1i64 << (spec.bits_per_sample - 1)) as f64;
            let q = (x * full).round().clamp(-full, full - 1.0) as i64;
            match (spec.sample_format, spec.bits_per_sample) {
                (SampleFormat::Float, _) => w.write_sample(x as f32),
                (_, 8) => w.write_sample(q as i8),
                (_, 16) => w.write_sample(q as i16),
                _ => w.write_sample(q as i32),
            }
            .unwrap();
        }
    }
    w.finalize().unwrap();
    cursor.into_inner()
}

pub(super) fn sine(freq: f64, amplitude: f64, rate: u32) -> impl Fn(usize) -> f64 {
    move |i| amplitude * (TAU * freq * i as f64 / f64::from(rate)).sin()
}

pub(super) fn close(actual: f64, expected: f64, tolerance: f64, what: &str) {
    assert!(
        (actual - expected).abs() <= tolerance,
        "{what}: {actual} not within {tolerance} of {expected}"
    );
}

#[test]
fn sine_at_minus_6_dbfs_on_one_channel_reads_its_level_and_the_other_as_silence() {
    let tone = sine(1000.0, 0.5, RATE);
    let bytes = wav(
        pcm16(2, RATE),
        16_000,
        |i, ch| if ch == 0 { tone(i) } else { 0.0 },
    );
    let f = analyze_bytes(&bytes).unwrap();
    assert_eq!(
        (
            f.format.as_str(),
            f.sample_rate,
            f.channels,
            f.bits_per_sample
        ),
        ("pcm_s16le", 8000, 2, 16)
    );
    assert_eq!((f.frames, f.duration_ms), (16_000, 2000));
    let (a, b) = (&f.channel_stats[0], &f.channel_stats[1]);
    close(a.rms_dbfs, -9.03, 0.05, "rms");
    close(a.peak_dbfs, -6.02, 0.01, "peak");
    close(a.silence_share.unwrap(), 0.0, 1.0 / 100.0, "silence share");
    close(a.talk_time_ms.unwrap() as f64, 2000.0, 20.0, "talk time");
    close(a.active_level_dbfs.unwrap(), -9.03, 0.2, "active level");
    assert_eq!(a.clipping_share, 0.0);
    assert_eq!((b.rms_dbfs, b.peak_dbfs), (DBFS_FLOOR, DBFS_FLOOR));
    assert_eq!((b.silence_share, b.talk_time_ms), (Some(1.0), Some(0)));
    assert_eq!(b.active_level_dbfs, None);
    assert_eq!(f.crosstalk_share, 0.0);
}

#[test]
fn pure_silence_has_floor_levels_and_no_talk() {
    let f = analyze_bytes(&wav(pcm16(2, RATE), 8000, |_, _| 0.0)).unwrap();
    for c in &f.channel_stats {
        assert_eq!(
            (c.rms_dbfs, c.peak_dbfs, c.silence_share),
            (DBFS_FLOOR, DBFS_FLOOR, Some(1.0))
        );
        assert_eq!((c.talk_time_ms, c.clipping_share), (Some(0), 0.0));
    }
    assert_eq!((f.duration_ms, f.crosstalk_share), (1000, 0.0));
}

#[test]
fn full_scale_samples_count_as_clipped_and_others_do_not() {
    // One second of a full-scale square wave, then one second of a sine at half scale.
    let tone = sine(440.0, 0.5, RATE);
    let bytes = wav(pcm16(1, RATE), 16_000, |i, _| match i {
        0..8000 if (i / 20) % 2 == 0 => 1.0,
        0..8000 => -1.0,
        _ => tone(i),
    });
    let f = analyze_bytes(&bytes).unwrap();
    assert_eq!(f.channel_stats[0].clipping_share, 0.5);
    close(f.channel_stats[0].peak_dbfs, 0.0, 0.001, "peak");
}

#[test]
fn an_overdriven_sine_clips_where_it_exceeds_full_scale() {
    // |2 sin θ| ≥ 1 for two thirds of every cycle (runs of ~13 samples at 197 Hz); an odd
    // frequency keeps the phases spread.
    let tone = sine(197.0, 2.0, RATE);
    let f = analyze_bytes(&wav(pcm16(1, RATE), 80_000, |i, _| tone(i))).unwrap();
    close(
        f.channel_stats[0].clipping_share,
        2.0 / 3.0,
        0.01,
        "clipping",
    );
}

#[test]
fn alternating_talk_gives_crosstalk_as_a_share_of_talk_time_and_two_seconds_each() {
    let tone = sine(300.0, 0.1, RATE);
    let bytes = wav(pcm16(2, RATE), 24_000, |i, ch| match (i / 8000, ch) {
        (0, 0) | (1, 1) | (2, _) => tone(i),
        _ => 0.0,
    });
    let f = analyze_bytes(&bytes).unwrap();
    close(f.crosstalk_share, 1.0 / 3.0, 0.01, "crosstalk");
    for c in &f.channel_stats {
        close(c.talk_time_ms.unwrap() as f64, 2000.0, 20.0, "talk time");
        close(c.silence_share.unwrap(), 1.0 / 3.0, 0.01, "silence share");
    }
}

#[test]
fn short_pauses_count_as_talk_but_not_long_ones() {
    // 0.5 s tone, 0.1 s pause, 0.5 s tone, 0.5 s pause, 0.4 s tone.
    let tone = sine(300.0, 0.1, RATE);
    let f = analyze_bytes(&wav(pcm16(1, RATE), 16_000, |i, _| match i {
        4000..4800 | 8800..12_800 => 0.0,
        _ => tone(i),
    }))
    .unwrap();
    // The high-pass rings for a few ms after an abrupt stop: up to one window more.
    let c = &f.channel_stats[0];
    close(c.talk_time_ms.unwrap() as f64, 1510.0, 10.0, "talk time");
    close(c.silence_share.unwrap(), 0.29, 0.011, "silence share");
}

#[test]
fn eight_bit_twenty_four_bit_and_float_wavs_are_analysed() {
    let tone = sine(1000.0, 0.5, RATE);
    for (spec, format) in [
        (spec(1, RATE, 8, SampleFormat::Int), "pcm_u8"),
        (spec(1, RATE, 24, SampleFormat::Int), "pcm_s24le"),
        (spec(1, RATE, 32, SampleFormat::Int), "pcm_s32le"),
        (spec(1, RATE, 32, SampleFormat::Float), "float32"),
    ] {
        let f = analyze_bytes(&wav(spec, 8000, |i, _| tone(i))).unwrap();
        assert_eq!(f.format, format);
        assert_eq!(
            (f.bits_per_sample, f.duration_ms),
            (spec.bits_per_sample, 1000)
        );
        let c = &f.channel_stats[0];
        close(c.rms_dbfs, -9.03, 0.1, format);
        close(c.peak_dbfs, -6.02, 0.01, format);
        assert_eq!(
            (c.clipping_share, c.talk_time_ms),
            (0.0, Some(1000)),
            "{format}"
        );
    }
}

#[test]
fn analyze_many_keeps_input_order() {
    let inputs: Vec<Vec<u8>> = (1..=12)
        .map(|k| {
            if k == 5 {
                b"nope".to_vec()
            } else {
                wav(pcm16(2, RATE), 800 * k, |_, _| 0.2)
            }
        })
        .collect();
    let results = analyze_many(inputs.iter().map(|b| &b[..]).collect());
    assert_eq!(results.len(), 12);
    for (k, r) in (1..=12).zip(&results) {
        match r {
            Ok(f) => assert_eq!(f.duration_ms, 100 * k as i64),
            Err(e) => assert!(k == 5 && matches!(e, FactsError::NotWav(_)), "{k}: {e}"),
        }
    }
}

#[test]
fn duration_mismatch_is_audio_minus_capture_window() {
    let f = analyze_bytes(&wav(pcm16(1, RATE), 16_000, |_, _| 0.0)).unwrap();
    assert_eq!(
        duration_mismatch_ms(&f, Some(1_000), Some(2_500)),
        Some(500)
    );
    assert_eq!(
        duration_mismatch_ms(&f, Some(1_000), Some(3_300)),
        Some(-300)
    );
    assert_eq!(duration_mismatch_ms(&f, None, Some(3_300)), None);
    assert_eq!(duration_mismatch_ms(&f, Some(1), None), None);
}

#[test]
fn header_duration_reads_the_header_and_the_object_size_not_the_samples() {
    // 2 s of stereo 16-bit at 8 kHz: 44-byte header, 4 bytes a frame.
    let bytes = wav(pcm16(2, RATE), 16_000, |_, _| 0.0);
    let size = bytes.len() as u64;
    assert_eq!(header_duration_ms(&bytes[..64], size).unwrap(), 2_000);
    // A copy cut short by its writer (header still promising 2 s) is as long as its bytes.
    assert_eq!(
        header_duration_ms(&bytes[..64], 44 + 4 * 4_000).unwrap(),
        500
    );
    // A header from a streaming writer (no length) runs to the end of the object.
    let mut streamed = bytes.clone();
    streamed[40..44].copy_from_slice(&u32::MAX.to_le_bytes());
    assert_eq!(header_duration_ms(&streamed[..44], size).unwrap(), 2_000);
    assert!(matches!(
        header_duration_ms(b"<html>AccessDenied</html>", 25),
        Err(FactsError::NotWav(_))
    ));
}

/// `cargo test --release --lib audio::facts -- --ignored --nocapture`
#[test]
#[ignore = "throughput measurement; run in release"]
fn throughput_of_analysis_and_derivation() {
    let minutes = 30;
    let frames = RATE as usize * 60 * minutes;
    let tone = sine(300.0, 0.3, RATE);
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let noise: Vec<f64> = (0..4096).map(|_| rng.random_range(-0.002..0.002)).collect();
    let input = wav(pcm16(2, RATE), frames, |i, ch| {
        let talking = (i / 12_000 + ch) % 3 != 0;
        noise[(i * 7 + ch) % 4096] + if talking { tone(i) } else { 0.0 }
    });
    let hours = minutes as f64 / 60.0;
    let mb = input.len() as f64 / 1e6;
    let t = std::time::Instant::now();
    let f = analyze_bytes(&input).unwrap();
    let secs = t.elapsed().as_secs_f64();
    eprintln!(
        "analyze: {:.1} audio-hours per CPU-second ({:.0} MB/s of 8 kHz stereo 16-bit), crosstalk {:.3}",
        hours / secs,
        mb / secs,
        f.crosstalk_share
    );
    let t = std::time::Instant::now();
    derive_mono16k(&input[..], Cursor::new(Vec::new())).unwrap();
    let secs = t.elapsed().as_secs_f64();
    eprintln!(
        "derive_mono16k: {:.2} audio-hours per CPU-second",
        hours / secs
    );
    let t = std::time::Instant::now();
    let all = Derivative::ALL.map(|d| (d, Cursor::new(Vec::new())));
    derive(&input[..], all.into()).unwrap();
    let secs = t.elapsed().as_secs_f64();
    eprintln!(
        "derive (mix + both channels, 16 kHz): {:.2} audio-hours per CPU-second",
        hours / secs
    );
}

#[test]
fn the_block_high_pass_matches_the_filter_run_sample_by_sample() {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let xs: Vec<f32> = (0..1003)
        .map(|i| 0.3 + 0.5 * (i as f32 * 0.05).sin() + rng.random_range(-0.1..0.1))
        .collect();
    let mut reference = HighPass::new(RATE);
    reference.x1 = xs[0];
    let expected: f32 = xs.iter().map(|&x| reference.step(x).powi(2)).sum();
    // Uneven pieces, as window and block boundaries cut them; both code paths.
    let (mut dispatched, mut portable) = ([HighPass::new(RATE)], [HighPass::new(RATE)]);
    let (mut a, mut b) = (0f32, 0f32);
    for piece in xs.chunks(37) {
        a += measure(&mut dispatched, [piece], 1.0, -1.0)[0].hp_sq;
        b += measure_blocks(&mut portable, [piece], 1.0, -1.0)[0].hp_sq;
    }
    for got in [a, b] {
        assert!(
            (got - expected).abs() <= expected * 1e-4,
            "{got} vs {expected}"
        );
    }
}

/// The fused pass over window segments ([`measure`]: its dispatched, AVX2 and portable code,
/// one channel and two) gives bit for bit what the separate reference passes give: [`scan`], and
/// the block high-pass run on one channel alone.
#[test]
fn the_fused_pass_equals_scan_and_the_high_pass_bit_for_bit() {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let len = 20_011;
    // Speech-like with a DC offset, noise, and runs at full scale so clipping lanes count.
    let channel = |rng: &mut ChaCha8Rng, f: f32| -> Vec<f32> {
        (0..len)
            .map(|i| {
                if i % 389 < 5 {
                    if i % 2 == 0 { 1.0 } else { -1.0 }
                } else {
                    (0.05 + 0.6 * (i as f32 * f).sin() + rng.random_range(-0.3f32..0.3))
                        .clamp(-1.0, 1.0)
                }
            })
            .collect()
    };
    let xs = [channel(&mut rng, 0.031), channel(&mut rng, 0.017)];
    // 16-bit PCM's thresholds (within one LSB of full scale).
    let (hi, lo) = (1.0 - 2.0 / 32768.0, -1.0 + 1.0 / 32768.0);
    let bits = |m: &[Measured]| -> Vec<[u32; 4]> {
        m.iter()
            .map(|m| [m.sq.to_bits(), m.peak.to_bits(), m.full, m.hp_sq.to_bits()])
            .collect()
    };
    let mut reference = [HighPass::new(RATE); 2];
    let (mut two, mut two_portable) = ([HighPass::new(RATE); 2], [HighPass::new(RATE); 2]);
    let (mut one, mut one_portable) = ([HighPass::new(RATE)], [HighPass::new(RATE)]);
    // The AVX2 code, where the CPU has it (the dispatched code may be AVX-512's).
    #[cfg(target_arch = "x86_64")]
    let (avx2, mut two_avx2) = (
        std::arch::is_x86_feature_detected!("avx2"),
        [HighPass::new(RATE); 2],
    );
    let (mut start, mut full) = (0, 0);
    while start < len {
        // Pieces of any length, empty ones included, as window and block boundaries cut them.
        let take = rng.random_range(0..=170).min(len - start);
        let seg = [&xs[0][start..start + take], &xs[1][start..start + take]];
        let want: Vec<Measured> = (0..2)
            .map(|c| {
                let (sq, peak, full) = scan(seg[c], hi, lo);
                let hp_sq = reference[c].energy_blocks(seg[c]);
                Measured {
                    sq,
                    peak,
                    full,
                    hp_sq,
                }
            })
            .collect();
        full += want[0].full;
        let want = bits(&want);
        assert_eq!(bits(&measure(&mut two, seg, hi, lo)), want, "at {start}");
        assert_eq!(
            bits(&measure_blocks(&mut two_portable, seg, hi, lo)),
            want,
            "at {start}"
        );
        #[cfg(target_arch = "x86_64")]
        if avx2 {
            // SAFETY: the CPU has been found to support AVX2.
            let got = unsafe { measure_avx2(&mut two_avx2, seg, hi, lo) };
            assert_eq!(bits(&got), want, "at {start}");
        }
        assert_eq!(bits(&measure(&mut one, [seg[0]], hi, lo)), want[..1]);
        assert_eq!(
            bits(&measure_blocks(&mut one_portable, [seg[0]], hi, lo)),
            want[..1]
        );
        start += take;
    }
    assert!(full > 0, "the signal reaches full scale");
}
