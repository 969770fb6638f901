//! Specifications of the generated world: determinism, variety, and payload shapes that match
//! Cisco's samples in `fixtures/`.

use std::collections::{BTreeMap, HashSet};

use serde_json::Value;

use super::SimConfig;
use super::generate::generate;
use super::wav::{FRAMES_PER_MS, HEADER_LEN};
use super::world::RecordingKind;
use super::wxcc::render_tasks;

fn config(seed: u64) -> SimConfig {
    SimConfig {
        seed,
        days: 3,
        calls_per_day: 300,
        median_call_secs: 5,
        max_call_secs: 12,
        ..SimConfig::default()
    }
}

/// JSON type name of each key of an object.
fn key_types(v: &Value) -> BTreeMap<String, &'static str> {
    let kind = |v: &Value| match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    };
    v.as_object()
        .map(|o| o.iter().map(|(k, v)| (k.clone(), kind(v))).collect())
        .unwrap_or_default()
}

#[test]
fn same_seed_gives_identical_tasks_json_and_wav_sha() {
    let a = generate(&config(42));
    let b = generate(&config(42));
    assert_eq!(
        render_tasks(a.org_id(), a.tasks()),
        render_tasks(b.org_id(), b.tasks())
    );
    let (ra, rb) = (a.recordings(), b.recordings());
    assert_eq!(ra, rb);
    assert!(!ra.is_empty());
    assert_eq!(a.wav_sha256(ra[0]), b.wav_sha256(rb[0]));
}

#[test]
fn different_seed_gives_a_different_world() {
    let a = generate(&config(1));
    let b = generate(&config(2));
    assert_ne!(a.org_id(), b.org_id());
    assert_ne!(
        render_tasks(a.org_id(), a.tasks()),
        render_tasks(b.org_id(), b.tasks())
    );
    assert_ne!(
        a.wav_sha256(a.recordings()[0]),
        b.wav_sha256(b.recordings()[0])
    );
}

#[test]
fn tasks_are_sorted_unique_and_inside_the_simulated_days() {
    let cfg = config(3);
    let w = generate(&cfg);
    assert_eq!(w.tasks().len(), 900);
    let first = cfg
        .start
        .and_hms_opt(0, 0, 0)
        .map(|d| d.and_utc().timestamp_millis())
        .unwrap_or_default();
    let last = first + 3 * 86_400_000;
    for pair in w.tasks().windows(2) {
        assert!((pair[0].created_ms, &pair[0].id) < (pair[1].created_ms, &pair[1].id));
    }
    let ids: HashSet<_> = w.tasks().iter().map(|t| &t.id).collect();
    assert_eq!(ids.len(), 900);
    assert!(
        w.tasks()
            .iter()
            .all(|t| (first..last).contains(&t.created_ms))
    );
    assert!(w.tasks().iter().all(|t| t.last_updated_ms >= t.created_ms));
}

#[test]
fn world_contains_every_case_a_client_must_handle() {
    let w = generate(&config(42));
    let tasks = w.tasks();
    let count = |f: &dyn Fn(&super::SimTask) -> bool| tasks.iter().filter(|t| f(t)).count();
    let telephony = count(&|t| t.channel_type == "telephony");
    assert!(
        (500..760).contains(&telephony),
        "≈70% telephony, got {telephony}"
    );
    for channel in ["chat", "email", "social"] {
        assert!(
            count(&|t| t.channel_type == channel) > 10,
            "{channel} present"
        );
    }
    assert!(count(&|t| t.status == "abandoned") > 40);
    assert!(count(&|t| t.owner.is_none()) > 40);
    assert!(count(&|t| t.capture_requested.is_none()) > 3);
    assert!(count(&|t| t.reason_code.is_none()) > 100);
    assert!(count(&|t| !t.extra_attributes.is_empty()) > 3);
    assert!(
        count(&|t| ["created", "queued", "offered", "assigned"].contains(&t.status.as_str())) >= 3
    );
    let ties = tasks
        .windows(2)
        .filter(|p| p[0].created_ms == p[1].created_ms)
        .count();
    assert!(
        ties >= 3,
        "several tasks share a createdTime ms, got {ties}"
    );
    let all = w.all_recordings();
    let kinds = |k: RecordingKind| all.iter().filter(|r| r.kind == k).count();
    assert!(kinds(RecordingKind::Main) > 300);
    assert!(kinds(RecordingKind::Consult) > 10);
    assert!(kinds(RecordingKind::Segment) >= 4);
    assert!(kinds(RecordingKind::VirtualAgent) > 3);
    let recorded: HashSet<_> = all.iter().map(|r| r.task_id.as_str()).collect();
    let waiting = count(&|t| {
        t.capture_requested == Some(true)
            && t.channel_type == "telephony"
            && !recorded.contains(t.id.as_str())
    });
    assert!(waiting >= 1, "some requested captures are not there yet");
    assert!(
        tasks
            .iter()
            .any(|t| !w.transcriptions_for(&t.id).is_empty())
    );
}

#[test]
fn recordings_fit_their_task_and_have_the_documented_labels() {
    let w = generate(&config(9));
    for r in w.all_recordings() {
        let task = w.task(&r.task_id).expect("recording belongs to a task");
        assert_eq!(task.channel_type, "telephony");
        assert_eq!(task.capture_requested, Some(true));
        assert!(r.start_ms >= task.created_ms && r.stop_ms > r.start_ms);
        assert!(r.stop_ms - r.start_ms <= 12_000);
        let expected = match r.call_type.as_str() {
            "main" => ("Caller", "Agent"),
            "consult" => ("Agent", "Agent"),
            "va-main" => ("VA", "Caller"),
            other => panic!("unexpected callType {other}"),
        };
        assert_eq!((r.channel1.as_str(), r.channel2.as_str()), expected);
        assert_eq!(r.segment, r.kind == RecordingKind::Segment);
        let frames = (r.stop_ms - r.start_ms) as u64 * FRAMES_PER_MS;
        assert_eq!(w.wav_len(r), HEADER_LEN + 4 * frames);
        assert!(r.participants.iter().any(|p| p.contains("****")) || r.call_type == "consult");
    }
    let default_kinds: HashSet<_> = w.recordings().iter().map(|r| r.kind).collect();
    assert!(!default_kinds.contains(&RecordingKind::Segment));
    assert!(!default_kinds.contains(&RecordingKind::VirtualAgent));
}

#[test]
fn task_json_has_the_keys_and_types_of_the_cisco_sample() {
    let fixture: Value =
        serde_json::from_str(include_str!("../../fixtures/tasks-response.json")).expect("fixture");
    let sample_task = &fixture["data"][0];
    let sample_attrs = key_types(&sample_task["attributes"]);
    let w = generate(&config(42));
    let body: Value =
        serde_json::from_slice(&render_tasks(w.org_id(), w.tasks())).expect("valid JSON");
    assert_eq!(key_types(&body["meta"]), key_types(&fixture["meta"]));
    assert_eq!(
        key_types(&body).keys().collect::<Vec<_>>(),
        vec!["data", "meta"]
    );
    let optional = ["owner", "reasonCode"];
    let extras = ["context", "isVip"];
    for task in body["data"].as_array().expect("data array") {
        assert_eq!(key_types(task), key_types(sample_task));
        let attrs = key_types(&task["attributes"]);
        for (key, kind) in &sample_attrs {
            match attrs.get(key) {
                None => assert!(optional.contains(&key.as_str()), "{key} missing"),
                Some(&"null") => assert_eq!(key, "captureRequested"),
                Some(k) => assert_eq!(k, kind, "type of {key}"),
            }
        }
        for key in attrs.keys() {
            assert!(
                sample_attrs.contains_key(key) || extras.contains(&key.as_str()),
                "unexpected {key}"
            );
        }
        for named in ["owner", "queue"] {
            if let Some(v) = task["attributes"].get(named) {
                assert_eq!(key_types(v), key_types(&sample_task["attributes"][named]));
            }
        }
    }
}

#[test]
fn odd_contacts_change_only_the_notation_of_contact_values() {
    let plain = generate(&config(3));
    let odd = generate(&SimConfig {
        odd_contacts: true,
        ..config(3)
    });
    assert_eq!(plain.tasks().len(), odd.tasks().len());
    let mut shapes = HashSet::new();
    for (p, o) in plain.tasks().iter().zip(odd.tasks()) {
        assert_eq!((&p.id, p.created_ms), (&o.id, o.created_ms));
        for (a, b) in [(&p.origin, &o.origin), (&p.destination, &o.destination)] {
            // The same number or address is still in there, only written differently.
            let core = a.trim_start_matches('+');
            assert!(
                b.contains(core) || b.replace(['(', ')', ' ', '-'], "").contains(core),
                "{a} -> {b}"
            );
            for shape in ["tel:", "sip:", "mailto:", "<", " ("] {
                if b.contains(shape) {
                    shapes.insert(shape);
                }
            }
        }
    }
    assert_eq!(shapes.len(), 5, "{shapes:?}");
    let participants: Vec<&String> = odd
        .all_recordings()
        .iter()
        .flat_map(|r| &r.participants)
        .filter(|p| p.contains("****"))
        .collect();
    assert!(!participants.is_empty());
    assert!(
        participants
            .iter()
            .all(|p| p.starts_with("tel:") || p.starts_with("sip:"))
    );
}
