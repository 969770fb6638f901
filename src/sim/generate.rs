//! Deterministic generation of the simulated history from the seed.
//!
//! Proportions follow what a mid-size contact center looks like and, more importantly, what the
//! reference says a client must cope with (REFERENCE.md §3.4, §4, §7): tasks without `owner`,
//! `captureRequested: null`, missing `reasonCode`, unknown extra fields, identical `createdTime`s,
//! consult recordings, segments, virtual-agent legs, telephony tasks whose capture is not there yet.

use chrono::NaiveTime;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde_json::json;

use super::SimConfig;
use super::cast::{
    Cast, FIRST_NAMES, LAST_NAMES, REASONS, make_cast, mask_number, other_agent, pick, sub_rng,
    uuid,
};
use super::clock::{DAY_MS, OPEN_LISTING_DELAY_MS, TaskTimeline, availability_delay_ms};
use super::world::{RecordingKind, SimRecording, SimTask, SimTranscription, World};

/// Recordings and transcripts produced alongside a task.
#[derive(Default)]
struct Captures {
    recordings: Vec<SimRecording>,
    transcriptions: Vec<SimTranscription>,
}

/// Talk time in ms: log-normal around the configured median, capped at the configured maximum.
fn talk_ms(rng: &mut ChaCha8Rng, cfg: &SimConfig) -> i64 {
    let u1: f64 = rng.random_range(f64::EPSILON..1.0);
    let u2: f64 = rng.random();
    let z = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
    let max = f64::from(cfg.max_call_secs.max(1));
    let secs = (f64::from(cfg.median_call_secs.max(1)) * (0.7 * z).exp()).clamp(max.min(3.0), max);
    ((secs * 1000.0) as i64 - rng.random_range(0..1000)).max(1000)
}

/// Builds the world for `cfg`; only the seed, dates, volumes and call lengths matter.
pub fn generate(cfg: &SimConfig) -> World {
    let (org_id, cast) = make_cast(cfg.seed);
    let mut tasks = Vec::new();
    let mut captures = Captures::default();
    let first_day_ms = cfg
        .start
        .and_time(NaiveTime::MIN)
        .and_utc()
        .timestamp_millis();
    let per_day = cfg.calls_per_day as usize;
    for day in 0..cfg.days {
        let mut rng = sub_rng(cfg.seed, 1000 + u64::from(day));
        let day_ms = first_day_ms + i64::from(day) * DAY_MS;
        let mut times: Vec<i64> = (0..per_day)
            .map(|_| {
                let offset = if rng.random_bool(0.8) {
                    rng.random_range(7 * 3_600_000..19 * 3_600_000)
                } else {
                    rng.random_range(0..DAY_MS)
                };
                day_ms + offset
            })
            .collect();
        times.sort_unstable();
        // Groups of tasks created in the same millisecond exercise `from`/`to` boundary handling.
        for i in 1..times.len() {
            if rng.random_bool(0.04) || i == times.len() / 2 {
                times[i] = times[i - 1];
            }
        }
        // A few tasks at the very end of the last day are still open.
        let open_from = if day + 1 == cfg.days {
            per_day.saturating_sub((per_day / 50).max(1))
        } else {
            per_day
        };
        for (i, &created_ms) in times.iter().enumerate() {
            let task = make_task(
                &mut rng,
                cfg,
                &cast,
                created_ms,
                i >= open_from,
                &mut captures,
            );
            tasks.push(task);
        }
    }
    tasks.sort_by(|a, b| (a.created_ms, &a.id).cmp(&(b.created_ms, &b.id)));
    if cfg.odd_contacts {
        odd_contacts(&mut tasks, &mut captures.recordings);
    }
    World::from_parts(
        cfg.seed,
        first_day_ms + i64::from(cfg.days) * DAY_MS,
        org_id,
        tasks,
        captures.recordings,
        captures.transcriptions,
    )
}

fn make_task(
    rng: &mut ChaCha8Rng,
    cfg: &SimConfig,
    cast: &Cast,
    created_ms: i64,
    open: bool,
    captures: &mut Captures,
) -> SimTask {
    let id = uuid(rng);
    let channel = match rng.random::<f64>() {
        r if r < 0.70 => "telephony",
        r if r < 0.85 => "chat",
        r if r < 0.95 => "email",
        _ => "social",
    };
    let (queue, dnis) = pick(rng, &cast.queues).clone();
    let agent = pick(rng, &cast.agents).clone();
    let reason_code = rng
        .random_bool(0.6)
        .then(|| pick(rng, &REASONS).to_string());
    let phone = format!("+1415555{:04}", rng.random_range(0..10_000));
    let email = format!(
        "{}.{}{}@example.com",
        pick(rng, &FIRST_NAMES).to_lowercase(),
        pick(rng, &LAST_NAMES).to_lowercase(),
        rng.random_range(1..100)
    );
    let mut extra = serde_json::Map::new();
    if rng.random_bool(0.03) {
        extra.insert(
            "context".into(),
            json!({"language": "en-US", "customerSegment": pick(rng, &["gold", "silver", "bronze"]), "ivrPath": [1, 3]}),
        );
    }
    if rng.random_bool(0.02) {
        extra.insert("isVip".into(), json!(true));
    }
    let queue_ms: i64 = rng.random_range(5_000..240_000);
    let mut task = SimTask {
        id,
        created_ms,
        last_updated_ms: created_ms,
        channel_type: channel.to_string(),
        status: "completed".to_string(),
        capture_requested: Some(false),
        owner: Some(agent),
        queue,
        origin: phone.clone(),
        destination: dnis.clone(),
        direction: "inbound".to_string(),
        reason_code,
        extra_attributes: extra,
        // Queued on arrival; the branches below fill in the rest.
        timeline: TaskTimeline {
            queued_ms: Some(created_ms),
            ..TaskTimeline::default()
        },
    };
    match channel {
        "chat" => {
            task.origin = email;
            task.destination = format!(
                "https://wxcc.example/chat/{}",
                task.queue.name.to_lowercase().replace(' ', "-")
            );
        }
        "email" => {
            task.origin = email;
            task.destination = "support@wxcc.example".to_string();
            if rng.random_bool(0.1) {
                task.direction = "outbound".to_string();
                std::mem::swap(&mut task.origin, &mut task.destination);
            }
        }
        "social" => {
            task.origin = format!(
                "facebook:{}",
                rng.random_range(100_000_000_000_000u64..999_999_999_999_999)
            );
            task.destination = "https://www.facebook.com/wxccexample".to_string();
        }
        _ => {}
    }
    if open {
        let status = *pick(rng, &["created", "queued", "offered", "assigned"]);
        task.status = status.to_string();
        if matches!(status, "created" | "queued") {
            task.owner = None;
        }
        task.capture_requested = None;
        task.last_updated_ms = created_ms + rng.random_range(1_000..120_000);
        // Reaches its open status at `last_updated_ms` and never closes.
        task.timeline = TaskTimeline::default();
        return task;
    }
    if rng.random_bool(0.10) {
        task.status = "abandoned".to_string();
        task.owner = None;
        task.capture_requested = if rng.random_bool(0.8) {
            Some(false)
        } else {
            None
        };
        task.last_updated_ms = created_ms + queue_ms;
        task.timeline.ended_ms = Some(task.last_updated_ms);
        task.timeline.closed_ms = Some(task.last_updated_ms);
        return task;
    }
    if channel != "telephony" {
        let duration_ms = match channel {
            "email" => rng.random_range(3_600_000..48 * 3_600_000),
            _ => talk_ms(rng, cfg) * 2,
        };
        task.last_updated_ms = created_ms + queue_ms + duration_ms;
        task.timeline.assigned_ms = Some(created_ms + queue_ms);
        task.timeline.ended_ms = Some(task.last_updated_ms);
        task.timeline.closed_ms = Some(task.last_updated_ms);
        task.capture_requested = match rng.random::<f64>() {
            r if r < 0.85 => Some(false),
            r if r < 0.95 => Some(true),
            _ => None,
        };
        if task.capture_requested == Some(true) {
            let (source, file) = match channel {
                "chat" => ("chat", "chatTranscript.json"),
                "email" => ("email", "emailTranscript.json"),
                _ => ("social", "facebookTranscript.json"),
            };
            let conversation: String = (0..17)
                .map(|_| char::from(*pick(rng, b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")))
                .collect();
            captures.transcriptions.push(SimTranscription {
                id: conversation,
                task_id: task.id.clone(),
                object_key: uuid(rng),
                source: source.to_string(),
                provider: "CISCO".to_string(),
                file_name: file.to_string(),
                start_ms: created_ms,
                create_ms: task.last_updated_ms + rng.random_range(10_000..600_000),
                language_code: "en-US".to_string(),
            });
        }
        return task;
    }
    telephony(rng, cfg, cast, &mut task, queue_ms, captures);
    task
}

/// One recorded leg before it gets its id and audio seed.
struct Leg {
    kind: RecordingKind,
    call_type: &'static str,
    start_ms: i64,
    stop_ms: i64,
    participants: Vec<String>,
}

fn recording(rng: &mut ChaCha8Rng, task_id: &str, file_no: usize, leg: Leg) -> SimRecording {
    let (channel1, channel2, sensitive) = match leg.kind {
        RecordingKind::Consult => ("Agent", "Agent", None),
        RecordingKind::VirtualAgent => ("VA", "Caller", Some(false)),
        _ => ("Caller", "Agent", None),
    };
    SimRecording {
        id: uuid(rng),
        task_id: task_id.to_string(),
        call_type: leg.call_type.to_string(),
        start_ms: leg.start_ms,
        stop_ms: leg.stop_ms,
        channel1: channel1.to_string(),
        channel2: channel2.to_string(),
        segment: leg.kind == RecordingKind::Segment,
        file_name: format!("recording-{file_no}.wav"),
        participants: leg.participants,
        sensitive,
        kind: leg.kind,
        audio_seed: rng.random(),
        available_ms: 0,
    }
}

/// Completes a telephony task that reached the end of its life and adds its captures.
fn telephony(
    rng: &mut ChaCha8Rng,
    cfg: &SimConfig,
    cast: &Cast,
    task: &mut SimTask,
    queue_ms: i64,
    captures: &mut Captures,
) {
    let created_ms = task.created_ms;
    if rng.random_bool(0.04) {
        // Self-service in the IVR: never reached an agent, nothing recorded.
        task.owner = None;
        task.last_updated_ms = created_ms + rng.random_range(20_000..180_000);
        task.timeline = TaskTimeline {
            ended_ms: Some(task.last_updated_ms),
            closed_ms: Some(task.last_updated_ms),
            ..TaskTimeline::default()
        };
        return;
    }
    match rng.random::<f64>() {
        r if r < 0.06 => task.direction = "outbound".to_string(),
        r if r < 0.12 => task.direction = "outdial".to_string(),
        _ => {}
    }
    if task.direction != "inbound" {
        std::mem::swap(&mut task.origin, &mut task.destination);
    }
    task.capture_requested = match rng.random::<f64>() {
        r if r < 0.92 => Some(true),
        r if r < 0.97 => Some(false),
        _ => None,
    };
    let va_ms = if task.direction == "inbound" && rng.random_bool(0.08) {
        rng.random_range(10_000..60_000)
            .min(i64::from(cfg.max_call_secs.max(1)) * 1000)
    } else {
        0
    };
    let ring_ms = rng.random_range(500..3_000);
    let talk = talk_ms(rng, cfg);
    let main_start = created_ms + va_ms + queue_ms + ring_ms;
    let main_stop = main_start + talk;
    task.last_updated_ms = main_stop + rng.random_range(10_000..120_000);
    task.timeline = TaskTimeline {
        queued_ms: Some(created_ms + va_ms),
        offered_ms: Some(created_ms + va_ms + queue_ms),
        assigned_ms: Some(main_start),
        ended_ms: Some(main_stop),
        closed_ms: Some(task.last_updated_ms),
    };
    if rng.random_bool(0.05) {
        // Updated again after closure (REFERENCE.md §3.4: not a reliable closed time).
        task.last_updated_ms += rng.random_range(3_600_000..72 * 3_600_000);
    }
    // ~2% were requested but are not available yet.
    if task.capture_requested != Some(true) || rng.random_bool(0.02) {
        return;
    }
    let owner = task.owner.clone().unwrap_or_else(|| cast.agents[0].clone());
    let customer = if task.direction == "inbound" {
        &task.origin
    } else {
        &task.destination
    };
    let masked = mask_number(customer);
    let mut legs = Vec::new();
    let transferred = talk >= 2_000 && rng.random_bool(0.10);
    let first_agent = if transferred {
        other_agent(rng, cast, &owner).clone()
    } else {
        owner.clone()
    };
    let mut participants = vec![first_agent.id.clone()];
    if transferred {
        participants.push(owner.id.clone());
    }
    participants.push(masked.clone());
    legs.push(Leg {
        kind: if transferred {
            RecordingKind::SplitMain
        } else {
            RecordingKind::Main
        },
        call_type: "main",
        start_ms: main_start,
        stop_ms: main_stop,
        participants,
    });
    if talk >= 3_000 && rng.random_bool(0.15) {
        let start_ms = main_start + (talk as f64 * rng.random_range(0.2..0.6)) as i64;
        let stop_ms = (start_ms + rng.random_range(15_000..120_000)).min(main_stop);
        let consulted = other_agent(rng, cast, &first_agent).id.clone();
        legs.push(Leg {
            kind: RecordingKind::Consult,
            call_type: "consult",
            start_ms,
            stop_ms,
            participants: vec![first_agent.id.clone(), consulted],
        });
    }
    if transferred {
        let split = main_start + (talk as f64 * rng.random_range(0.3..0.7)) as i64;
        for (start_ms, stop_ms, agent) in [
            (main_start, split, &first_agent),
            (split, main_stop, &owner),
        ] {
            legs.push(Leg {
                kind: RecordingKind::Segment,
                call_type: "main",
                start_ms,
                stop_ms,
                participants: vec![agent.id.clone(), masked.clone()],
            });
        }
    }
    if va_ms > 0 {
        legs.push(Leg {
            kind: RecordingKind::VirtualAgent,
            call_type: "va-main",
            start_ms: created_ms,
            stop_ms: created_ms + va_ms,
            participants: vec![cast.virtual_agent_id.clone(), masked.clone()],
        });
    }
    // Every capture appears some time after the call ended; the first leg is the main
    // recording, whose segments appear with it.
    // With `recordings_while_open` each leg is listed, growing, from shortly after it starts.
    let mut main_available_ms = main_stop;
    for (i, leg) in legs.into_iter().enumerate() {
        let mut rec = recording(rng, &task.id, i + 1, leg);
        let final_ms = if rec.kind == RecordingKind::Segment {
            main_available_ms
        } else {
            main_stop
                + availability_delay_ms(
                    rec.audio_seed,
                    cfg.late_capture_per_mille,
                    cfg.late_capture_hours,
                )
        };
        if i == 0 {
            main_available_ms = final_ms;
        }
        rec.available_ms = if cfg.recordings_while_open {
            final_ms.min(rec.start_ms + OPEN_LISTING_DELAY_MS)
        } else {
            final_ms
        };
        captures.recordings.push(rec);
    }
    if rng.random_bool(0.25) {
        captures.transcriptions.push(SimTranscription {
            id: cast.ccai_config_id.clone(),
            task_id: task.id.clone(),
            object_key: uuid(rng),
            source: "recording".to_string(),
            provider: "CISCO".to_string(),
            file_name: "voiceTranscript.json".to_string(),
            start_ms: main_start,
            create_ms: main_stop + rng.random_range(30_000..300_000),
            language_code: "en-US".to_string(),
        });
    }
}

/// Rewrites contact values into the other notations the API may use for them
/// ([`SimConfig::odd_contacts`]), by position only, so the rest of the world is unchanged.
fn odd_contacts(tasks: &mut [SimTask], recordings: &mut [SimRecording]) {
    fn spaced(number: &str) -> String {
        match number.strip_prefix("+1") {
            Some(n) if n.len() == 10 => format!("+1 ({}) {}-{}", &n[..3], &n[3..6], &n[6..]),
            _ => number.to_owned(),
        }
    }
    fn named(address: &str) -> String {
        let local = address.split('@').next().unwrap_or_default();
        let name: Vec<String> = local
            .split('.')
            .map(|w| {
                let w = w.trim_end_matches(|c: char| c.is_ascii_digit());
                let mut c = w.chars();
                c.next()
                    .map(|f| f.to_uppercase().chain(c).collect())
                    .unwrap_or_default()
            })
            .collect();
        format!("{} <{address}>", name.join(" "))
    }
    for (i, t) in tasks.iter_mut().enumerate() {
        let (o, d) = (t.origin.clone(), t.destination.clone());
        let is_address = |v: &str| v.contains('@');
        match (t.channel_type.as_str(), i % 4) {
            ("telephony", 0) => {
                (t.origin, t.destination) = (format!("tel:{o}"), format!("tel:{d}"))
            }
            ("telephony", 1) => {
                t.origin = format!("sip:{o}@sip.carrier.example;user=phone");
                t.destination = format!("sip:{d}@wxcc.example");
            }
            ("telephony", 2) => (t.origin, t.destination) = (spaced(&o), spaced(&d)),
            ("telephony", _) => t.origin = format!("\"Caller\" <tel:{o}>"),
            (_, k) => {
                for v in [&mut t.origin, &mut t.destination] {
                    if is_address(v) && !v.ends_with("wxcc.example") {
                        *v = if k % 2 == 0 {
                            named(v)
                        } else {
                            format!("mailto:{v}")
                        };
                    }
                }
            }
        }
    }
    for (i, r) in recordings.iter_mut().enumerate() {
        for p in r.participants.iter_mut().filter(|p| p.contains("****")) {
            *p = if i % 2 == 0 {
                format!("tel:{p}")
            } else {
                format!("sip:{p}@sip.carrier.example")
            };
        }
    }
}
