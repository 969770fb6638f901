//! Audio facts analysis cost per audio hour (issue 17: at most 1.5× the analyser before the
//! voice-activity rework, commit `e71b131^`, vendored verbatim under `audio_facts/baseline/`).
//!
//! The input is a synthetic two-party call, deterministic: 8 kHz stereo 16-bit, turns of voiced
//! syllables with pauses, some overlap, a hold of silence every 15 minutes, each party leaking
//! into the other's channel 25 dB down after 30 ms (echo the analyser has to search for), and
//! line noise at about -65 dBFS. Both analysers read the same bytes from memory, alternately, and
//! each pass is timed in thread CPU time.
//!
//! Run: `cargo bench --bench audio_facts` (options: `--minutes 60`, `--passes 5`, `--write FILE`
//! to keep the synthetic call, e.g. for `wxcc audio analyze`).

use std::time::Duration;

use wxcc::audio::facts::{AudioFacts, analyze_bytes};

#[allow(dead_code, clippy::all)]
#[path = "audio_facts/baseline/facts.rs"]
mod baseline;

const RATE: u32 = 8000;

fn arg(name: &str, default: u32) -> u32 {
    std::env::args()
        .skip_while(|a| a != name)
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let minutes = arg("--minutes", 60);
    let passes = arg("--passes", 5).max(1);
    let wav = call(minutes);
    if let Some(path) = std::env::args().skip_while(|a| a != "--write").nth(1) {
        std::fs::write(&path, &wav).expect("writes the WAV");
        println!("wrote the synthetic call to {path}");
    }
    let hours = f64::from(minutes) / 60.0;
    println!(
        "audio facts: {minutes} min of 8 kHz stereo 16-bit ({:.0} MB), {passes} passes, thread CPU time",
        wav.len() as f64 / 1e6
    );
    let (mut old, mut new) = (Vec::new(), Vec::new());
    let mut facts = None;
    for _ in 0..passes {
        old.push(cpu(|| baseline::analyze_bytes(&wav).expect("baseline analyses")).0 / hours);
        let (secs, f) = cpu(|| analyze_bytes(&wav).expect("analyses"));
        new.push(secs / hours);
        facts = Some(f);
    }
    old.sort_by(f64::total_cmp);
    new.sort_by(f64::total_cmp);
    let median = |v: &[f64]| v[v.len() / 2];
    let range = |v: &[f64]| {
        format!(
            "{:.4}–{:.4} (median {:.4})",
            v[0],
            v[v.len() - 1],
            median(v)
        )
    };
    println!("  old (e71b131^): {} CPU-s per audio hour", range(&old));
    println!("  current:        {} CPU-s per audio hour", range(&new));
    println!(
        "  ratio current/old: {:.2}× by median, {:.2}× by best pass (goal ≤ 1.5×)",
        median(&new) / median(&old),
        new[0] / old[0]
    );
    if let Some(f) = facts {
        describe(&f);
    }
}

fn describe(f: &AudioFacts) {
    for (ch, s) in f.channel_stats.iter().enumerate() {
        println!(
            "  channel {}: talk {:.0} s, silence {:.2}, active level {:.1} dBFS, rms {:.1} dBFS",
            ch + 1,
            s.talk_time_ms.unwrap_or(0) as f64 / 1000.0,
            s.silence_share.unwrap_or(0.0),
            s.active_level_dbfs.unwrap_or(f64::NAN),
            s.rms_dbfs
        );
    }
    println!("  crosstalk share {:.3}", f.crosstalk_share);
}

/// Runs `f`, returning the CPU time of this thread in seconds and its result.
fn cpu<T>(f: impl FnOnce() -> T) -> (f64, T) {
    let start = thread_cpu();
    let out = std::hint::black_box(f());
    ((thread_cpu() - start).as_secs_f64(), out)
}

fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec to write to; the clock id is a constant Linux knows.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID)");
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// SplitMix64: a deterministic generator with no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `[lo, hi)`.
    fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// A two-party call as a WAV file in memory.
fn call(minutes: u32) -> Vec<u8> {
    let frames = (RATE * 60 * minutes) as usize;
    let secs = frames as f64 / f64::from(RATE);
    let mut rng = Rng(17);
    // Turns: who speaks from when to when. Gaps of 0.2–1.5 s, one turn in ten overlapping the
    // previous by up to a second; a minute of hold (both silent) every 15 minutes.
    let mut turns: [Vec<(f64, f64)>; 2] = [Vec::new(), Vec::new()];
    let (mut t, mut who) = (0.5, 0);
    while t < secs {
        if (t / 900.0).floor() != ((t + 12.0) / 900.0).floor() {
            t = (t / 900.0 + 1.0).floor() * 900.0 + 60.0;
        }
        let len = rng.range(1.5, 12.0);
        turns[who].push((t, (t + len).min(secs)));
        let gap = if rng.range(0.0, 1.0) < 0.1 {
            -rng.range(0.2, 1.0)
        } else {
            rng.range(0.2, 1.5)
        };
        t += len + gap;
        who = 1 - who;
    }
    let voices = [
        voice(&turns[0], frames, 110.0, 0.35, &mut rng),
        voice(&turns[1], frames, 190.0, 0.25, &mut rng),
    ];
    let echo_gain = 10f64.powf(-25.0 / 20.0) as f32;
    let echo_delay = (RATE as usize * 30) / 1000;
    let noise = 10f64.powf(-65.0 / 20.0) * 3f64.sqrt();
    let mut wav = header(frames);
    for i in 0..frames {
        for ch in 0..2 {
            let echo = if i >= echo_delay {
                voices[1 - ch][i - echo_delay] * echo_gain
            } else {
                0.0
            };
            let x = f64::from(voices[ch][i] + echo) + rng.range(-noise, noise);
            let s = (x * 32768.0).round().clamp(-32768.0, 32767.0) as i16;
            wav.extend_from_slice(&s.to_le_bytes());
        }
    }
    wav
}

/// One party's voice: syllables of 0.12–0.3 s (voiced, fundamental `f0` and four harmonics,
/// random loudness up to `peak`), with pauses of 0.1–0.6 s between phrases, during `turns`.
fn voice(turns: &[(f64, f64)], frames: usize, f0: f64, peak: f64, rng: &mut Rng) -> Vec<f32> {
    let mut out = vec![0f32; frames];
    let rate = f64::from(RATE);
    for &(start, end) in turns {
        let mut t = start;
        while t < end {
            let len = rng.range(0.12, 0.3);
            let loud = peak * rng.range(0.3, 1.0);
            let pitch = f0 * rng.range(0.85, 1.15);
            let (a, b) = ((t * rate) as usize, (((t + len).min(end)) * rate) as usize);
            for (i, o) in out.iter_mut().enumerate().take(b.min(frames)).skip(a) {
                let u = (i - a) as f64 / (len * rate);
                let env = (std::f64::consts::PI * u).sin().powi(2);
                let phase = std::f64::consts::TAU * pitch * i as f64 / rate;
                let v: f64 = [1.0, 0.6, 0.4, 0.25, 0.15]
                    .iter()
                    .enumerate()
                    .map(|(h, amp)| amp * (phase * (h + 1) as f64).sin())
                    .sum();
                *o = (loud * env * v / 2.4) as f32;
            }
            t += len;
            if rng.range(0.0, 1.0) < 0.2 {
                t += rng.range(0.1, 0.6);
            }
        }
    }
    out
}

/// A 44-byte PCM header for `frames` of 8 kHz stereo 16-bit.
fn header(frames: usize) -> Vec<u8> {
    let data = (frames * 4) as u32;
    let mut h = Vec::with_capacity(44 + frames * 4);
    h.extend_from_slice(b"RIFF");
    h.extend_from_slice(&(36 + data).to_le_bytes());
    h.extend_from_slice(b"WAVEfmt ");
    h.extend_from_slice(&16u32.to_le_bytes());
    h.extend_from_slice(&1u16.to_le_bytes());
    h.extend_from_slice(&2u16.to_le_bytes());
    h.extend_from_slice(&RATE.to_le_bytes());
    h.extend_from_slice(&(RATE * 4).to_le_bytes());
    h.extend_from_slice(&4u16.to_le_bytes());
    h.extend_from_slice(&16u16.to_le_bytes());
    h.extend_from_slice(b"data");
    h.extend_from_slice(&data.to_le_bytes());
    h
}
