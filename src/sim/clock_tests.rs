//! Specifications of the simulated clock: what the API shows of the world at an instant.

use chrono::{DateTime, Utc};

use super::SimConfig;
use super::clock::{DAY_MS, HOUR_MS, MINUTE_MS};
use super::generate::generate;
use super::world::{RecordingKind, SimRecording, SimTask, World};
use super::wxcc::{render_tasks, render_tasks_at};

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

fn at(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).expect("instant in range")
}

/// A recorded call: its main recording and its task.
fn recorded_call(w: &World) -> (&SimRecording, &SimTask) {
    let rec = w
        .all_recordings()
        .iter()
        .find(|r| r.kind == RecordingKind::Main)
        .expect("a main recording");
    (rec, w.task(&rec.task_id).expect("its task"))
}

/// Every instant at which `t` changes, plus the instants just before them.
fn interesting_instants(t: &SimTask) -> Vec<i64> {
    let tl = &t.timeline;
    let mut out: Vec<i64> = [
        Some(t.created_ms),
        tl.queued_ms,
        tl.offered_ms,
        tl.assigned_ms,
        tl.ended_ms,
        tl.closed_ms,
        Some(t.last_updated_ms),
    ]
    .into_iter()
    .flatten()
    .flat_map(|ms| [ms - 1, ms, ms + 1])
    .collect();
    out.sort_unstable();
    out.dedup();
    out
}

#[test]
fn before_a_call_ends_its_task_is_open_with_capture_requested_null_and_no_recording() {
    let w = generate(&config(42));
    let (rec, task) = recorded_call(&w);
    let tl = task.timeline;
    let ended = tl.ended_ms.expect("the call ends");
    let during = at(ended - 1);
    let s = task.state_at(during).expect("created before");
    assert_eq!(s.status, "assigned");
    assert_eq!(s.capture_requested, None);
    assert_eq!(s.owner, task.owner.as_ref());
    assert_eq!(Some(s.last_updated_ms), tl.assigned_ms);
    assert!(
        w.recordings_for_at(&task.id, false, false, during)
            .is_empty()
    );
    assert!(w.recordings_for_at(&task.id, true, true, during).is_empty());
    assert!(!w.recordings_available_at(during).contains(&rec));
    let queued = task
        .state_at(at(tl.queued_ms.expect("queued")))
        .expect("exists");
    assert_eq!((queued.status, queued.owner), ("queued", None));
    assert_eq!(queued.capture_requested, None);
}

#[test]
fn after_the_call_ends_and_the_delay_passes_the_recording_appears() {
    let w = generate(&config(42));
    let (rec, task) = recorded_call(&w);
    let ended = task.timeline.ended_ms.expect("the call ends");
    assert_eq!(ended, rec.stop_ms);
    let delay = rec.available_ms - rec.stop_ms;
    assert!(
        (MINUTE_MS..10 * MINUTE_MS).contains(&delay) || (2 * HOUR_MS..6 * HOUR_MS).contains(&delay),
        "delay {delay} ms"
    );
    let after_end = task.state_at(at(ended)).expect("exists");
    assert_eq!(
        after_end.capture_requested,
        Some(true),
        "known once the call ended"
    );
    assert!(!rec.is_available_at(at(rec.available_ms - 1)));
    assert!(
        w.recordings_for_at(&task.id, false, false, at(rec.available_ms - 1))
            .is_empty()
    );
    assert!(rec.is_available_at(at(rec.available_ms)));
    assert!(
        w.recordings_available_at(at(rec.available_ms))
            .contains(&rec)
    );
    let closed = task.timeline.closed_ms.expect("closes");
    let done = task
        .state_at(at(closed.max(rec.available_ms)))
        .expect("exists");
    assert_eq!(done.status, "completed");
    assert_eq!(done.capture_requested, Some(true));
}

#[test]
fn a_few_recordings_become_available_hours_after_their_call() {
    let w = generate(&config(7));
    let all = w.all_recordings();
    let mut late = 0;
    for r in all {
        let task = w.task(&r.task_id).expect("task");
        let ended = task.timeline.ended_ms.expect("recorded calls end");
        let delay = r.available_ms - ended;
        if (2 * HOUR_MS..6 * HOUR_MS).contains(&delay) {
            late += 1;
        } else {
            assert!(
                (MINUTE_MS..10 * MINUTE_MS).contains(&delay),
                "delay {delay}"
            );
        }
        if r.kind == RecordingKind::Segment {
            let main = w
                .recordings_for(&r.task_id, false, false)
                .into_iter()
                .find(|m| m.kind == RecordingKind::SplitMain)
                .expect("stitched main");
            assert_eq!(
                r.available_ms, main.available_ms,
                "segments come with their main"
            );
        }
    }
    let share = f64::from(late) / all.len() as f64;
    assert!(
        (0.005..0.07).contains(&share),
        "≈3% late, got {late}/{}",
        all.len()
    );
}

#[test]
fn tasks_created_after_now_are_invisible_until_the_clock_passes_them() {
    let w = generate(&config(42));
    let task = &w.tasks()[w.tasks().len() / 2];
    let ids =
        |now: i64| -> Vec<String> { w.tasks_as_of(at(now)).into_iter().map(|t| t.id).collect() };
    assert!(task.state_at(at(task.created_ms - 1)).is_none());
    assert!(!ids(task.created_ms - 1).contains(&task.id));
    assert!(ids(task.created_ms).contains(&task.id));
    let expected: Vec<&String> = w
        .tasks()
        .iter()
        .filter(|t| t.created_ms <= task.created_ms)
        .map(|t| &t.id)
        .collect();
    assert_eq!(ids(task.created_ms).iter().collect::<Vec<_>>(), expected);
    let first = w.tasks()[0].created_ms;
    assert!(w.tasks_as_of(at(first - 1)).is_empty());
    assert!(w.recordings_available_at(at(first - 1)).is_empty());
}

#[test]
fn last_updated_time_moves_forward_across_the_end_of_a_call() {
    let w = generate(&config(42));
    let (_, task) = recorded_call(&w);
    let tl = task.timeline;
    let (ended, closed) = (tl.ended_ms.expect("ends"), tl.closed_ms.expect("closes"));
    let before = task.state_at(at(ended - 1)).expect("exists");
    let wrap_up = task.state_at(at(ended)).expect("exists");
    let after = task.state_at(at(closed)).expect("exists");
    assert!(before.last_updated_ms < wrap_up.last_updated_ms);
    assert_eq!(wrap_up.last_updated_ms, ended);
    assert!(wrap_up.last_updated_ms < after.last_updated_ms);
    assert_eq!(after.last_updated_ms, closed);
    assert!(closed - ended <= 2 * MINUTE_MS, "small wrap-up");
    // Some tasks are updated again long after closure (REFERENCE.md §3.4).
    let touched = w
        .tasks()
        .iter()
        .find(|t| t.timeline.closed_ms.is_some_and(|c| c < t.last_updated_ms))
        .expect("a task updated after closure");
    let c = touched.timeline.closed_ms.unwrap_or_default();
    let between = touched
        .state_at(at(touched.last_updated_ms - 1))
        .expect("exists");
    assert_eq!(between.last_updated_ms, c);
    assert_eq!(between.status, touched.status);
    let last = touched
        .state_at(at(touched.last_updated_ms))
        .expect("exists");
    assert_eq!(last, touched.final_state());
}

#[test]
fn task_states_follow_the_lifecycle_and_never_report_the_future() {
    let w = generate(&config(5));
    for task in w.tasks() {
        let tl = task.timeline;
        let steps: Vec<i64> = [
            Some(task.created_ms),
            tl.queued_ms,
            tl.offered_ms,
            tl.assigned_ms,
            tl.ended_ms,
            tl.closed_ms,
        ]
        .into_iter()
        .flatten()
        .collect();
        assert!(steps.windows(2).all(|p| p[0] <= p[1]), "ordered {steps:?}");
        assert!(tl.closed_ms.is_none_or(|c| c <= task.last_updated_ms));
        let mut previous = i64::MIN;
        for now in interesting_instants(task) {
            let Some(s) = task.state_at(at(now)) else {
                assert!(now < task.created_ms);
                continue;
            };
            assert!(s.last_updated_ms <= now, "no future lastUpdatedTime");
            assert!(
                s.last_updated_ms >= previous,
                "lastUpdatedTime never goes back"
            );
            previous = s.last_updated_ms;
            if matches!(s.status, "created" | "queued") {
                assert_eq!(s.owner, None);
            }
            let closed = tl.closed_ms.is_some_and(|c| now >= c);
            if closed {
                assert_eq!(
                    (s.status, s.owner),
                    (task.status.as_str(), task.owner.as_ref())
                );
                assert_eq!(s.capture_requested, task.capture_requested);
            } else {
                assert!(["created", "queued", "offered", "assigned"].contains(&s.status));
                if tl.ended_ms.is_none_or(|e| now < e) {
                    assert_eq!(s.capture_requested, None, "unknown while in progress");
                }
            }
        }
    }
}

#[test]
fn tasks_open_when_the_period_ends_stay_open() {
    let w = generate(&config(42));
    let open: Vec<&SimTask> = w
        .tasks()
        .iter()
        .filter(|t| t.timeline.closed_ms.is_none())
        .collect();
    assert!(!open.is_empty());
    let far = at(w.default_now().timestamp_millis() + 30 * DAY_MS);
    for t in open {
        let s = t.state_at(far).expect("exists");
        assert_eq!(s, t.final_state());
        assert_eq!(s.capture_requested, None);
        assert!(["created", "queued", "offered", "assigned"].contains(&s.status));
    }
}

#[test]
fn at_the_default_now_the_world_is_final_and_unchanged() {
    let cfg = config(42);
    let w = generate(&cfg);
    let now = w.default_now();
    let period_end = cfg
        .start
        .and_hms_opt(0, 0, 0)
        .map(|d| d.and_utc().timestamp_millis())
        .unwrap_or_default()
        + i64::from(cfg.days) * DAY_MS;
    assert!(now.timestamp_millis() >= period_end + DAY_MS);
    assert_eq!(w.tasks_as_of(now), w.tasks());
    assert_eq!(w.recordings_available_at(now), w.recordings());
    assert_eq!(
        render_tasks_at(w.org_id(), w.tasks(), now.timestamp_millis()),
        render_tasks(w.org_id(), w.tasks())
    );
    for t in w.tasks() {
        assert_eq!(
            w.transcriptions_for_at(&t.id, now),
            w.transcriptions_for(&t.id)
        );
        assert_eq!(
            w.recordings_for_at(&t.id, true, true, now),
            w.recordings_for(&t.id, true, true)
        );
    }
}

#[test]
fn same_seed_gives_the_same_answers_at_the_same_now() {
    let (a, b) = (generate(&config(11)), generate(&config(11)));
    assert_eq!(a.default_now(), b.default_now());
    let first = a.tasks()[0].created_ms;
    for offset in [
        0,
        3 * HOUR_MS,
        DAY_MS + 17 * HOUR_MS + 12_345,
        2 * DAY_MS + 23 * HOUR_MS,
    ] {
        let now = first + offset;
        assert_eq!(
            render_tasks_at(a.org_id(), a.tasks(), now),
            render_tasks_at(b.org_id(), b.tasks(), now)
        );
        assert_eq!(
            a.recordings_available_at(at(now)),
            b.recordings_available_at(at(now))
        );
    }
}

#[test]
fn the_world_evolves_between_two_instants() {
    let w = generate(&config(42));
    let first = w.tasks()[0].created_ms;
    let (t1, t2) = (at(first + DAY_MS), at(first + DAY_MS + 2 * HOUR_MS));
    let (s1, s2) = (w.tasks_as_of(t1), w.tasks_as_of(t2));
    assert!(s2.len() > s1.len(), "new tasks appeared");
    assert_eq!(
        s1.iter().map(|t| &t.id).collect::<Vec<_>>(),
        s2[..s1.len()].iter().map(|t| &t.id).collect::<Vec<_>>()
    );
    let changed = s1
        .iter()
        .zip(&s2)
        .filter(|(x, y)| x.last_updated_ms < y.last_updated_ms)
        .count();
    assert!(changed > 0, "tasks that existed got updated");
    assert!(
        s1.iter()
            .any(|t| t.status == "assigned" && t.timeline.closed_ms.is_some()),
        "some tasks are in progress"
    );
    let (r1, r2) = (w.recordings_available_at(t1), w.recordings_available_at(t2));
    assert!(r2.len() > r1.len());
    assert!(
        r1.iter().all(|r| r2.contains(r)),
        "captures do not disappear"
    );
}

#[test]
fn late_capture_share_and_delay_follow_the_config_and_leave_the_task_untouched() {
    let share = |per_mille: u64, hours: (u32, u32)| {
        let w = generate(&SimConfig {
            late_capture_per_mille: per_mille,
            late_capture_hours: hours,
            ..config(9)
        });
        let mut late = Vec::new();
        for r in w.all_recordings() {
            let delay = r.available_ms - r.stop_ms.max(main_stop(&w, r));
            if delay >= HOUR_MS {
                assert!(
                    (i64::from(hours.0) * HOUR_MS..=i64::from(hours.1) * HOUR_MS).contains(&delay),
                    "delay {delay}"
                );
                late.push(r.clone());
            } else {
                assert!(
                    (MINUTE_MS..10 * MINUTE_MS).contains(&delay),
                    "delay {delay}"
                );
            }
        }
        (w, late)
    };
    let (_, none) = share(0, (2, 6));
    assert!(none.is_empty());
    let (w, all) = share(1000, (20, 22));
    assert_eq!(all.len(), w.all_recordings().len());
    let (w, some) = share(200, (8, 8));
    let n = w.all_recordings().len();
    assert!(
        (n / 10..n * 3 / 10).contains(&some.len()),
        "≈20%: {}/{n}",
        some.len()
    );
    // Nothing about the task changes when its late capture appears.
    for rec in some
        .iter()
        .filter(|r| r.kind != RecordingKind::Segment)
        .take(20)
    {
        let task = w.task(&rec.task_id).expect("task");
        let (before, after) = (at(rec.available_ms - 1), at(rec.available_ms));
        assert!(!rec.is_available_at(before) && rec.is_available_at(after));
        assert_eq!(task.state_at(before), task.state_at(after));
        assert_eq!(task.as_of(before), task.as_of(after));
        assert_eq!(
            render_tasks_at(w.org_id(), [task], rec.available_ms - 1),
            render_tasks_at(w.org_id(), [task], rec.available_ms)
        );
    }
}

/// The end of the call a recording belongs to (segments appear with their main recording).
fn main_stop(w: &World, r: &SimRecording) -> i64 {
    w.task(&r.task_id)
        .and_then(|t| t.timeline.ended_ms)
        .unwrap_or(r.stop_ms)
}

#[test]
fn default_late_captures_are_unchanged() {
    let a = generate(&config(5));
    let b = generate(&SimConfig {
        late_capture_per_mille: 30,
        late_capture_hours: (2, 6),
        recordings_while_open: false,
        ..config(5)
    });
    assert_eq!(a.all_recordings(), b.all_recordings());
}

#[test]
fn with_recordings_while_open_a_call_is_listed_growing_from_a_second_after_it_connects() {
    let w = generate(&SimConfig {
        recordings_while_open: true,
        ..config(42)
    });
    let plain = generate(&config(42));
    assert_eq!(
        render_tasks(w.org_id(), w.tasks()),
        render_tasks(plain.org_id(), plain.tasks()),
        "tasks do not depend on the knob"
    );
    let rec = w
        .all_recordings()
        .iter()
        .find(|r| r.kind == RecordingKind::Main && r.stop_ms - r.start_ms > 3_000)
        .expect("a call over 3 s");
    let task = w.task(&rec.task_id).expect("task");
    assert_eq!(rec.available_ms, rec.start_ms + 1_000);
    assert!(rec.as_of(at(rec.start_ms + 999)).is_none());
    let mid = at(rec.start_ms + 2_500);
    assert_eq!(task.state_at(mid).map(|s| s.status), Some("assigned"));
    let partial = rec.as_of(mid).expect("listed while in progress");
    assert_eq!(partial.stop_ms, rec.start_ms + 2_500);
    assert!(w.recordings_as_of(mid).contains(&partial));
    assert!(w.recordings_available_at(mid).contains(&rec));
    assert_eq!(w.wav_len(&partial), 44 + 2_500 * 8 * 4);
    let (so_far, full) = (w.audio_plan(&partial), w.audio_plan(rec));
    let mut a = vec![0u8; so_far.len() as usize];
    let mut b = vec![0u8; full.len() as usize];
    so_far.read_at(0, &mut a);
    full.read_at(0, &mut b);
    assert_eq!(
        a[44..],
        b[44..a.len()],
        "the audio so far is a prefix of the final audio"
    );
    let done = rec.as_of(at(rec.stop_ms + 1)).expect("listed");
    assert_eq!(&done, rec);
    assert_eq!(
        w.wav_sha256(&done),
        plain.wav_sha256(
            plain
                .recording(&rec.id)
                .expect("same recording without the knob"),
        )
    );
}
