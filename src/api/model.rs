//! WxCC payload types (REFERENCE.md §3.4, §4.2), deliberately lenient: unknown fields are
//! ignored (Cisco adds fields, e.g. `transcription` broke the official extractor) and everything
//! the API has been seen to omit is optional (`owner` on abandoned calls, `captureRequested: null`).

use secrecy::SecretString;
use serde::Deserialize;

/// `GET /v1/tasks` response. `data` is kept raw so one odd record can be quarantined without
/// losing the page.
#[derive(Debug, Deserialize)]
pub struct TasksPage {
    #[serde(default)]
    pub meta: Option<Meta>,
    #[serde(default)]
    pub data: Vec<serde_json::Value>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Meta {
    pub org_id: Option<String>,
    pub url_expiration: Option<i64>,
}

/// One interaction: a call, chat, email or social conversation.
#[derive(Debug, Clone, Deserialize)]
pub struct Task {
    pub id: String,
    pub attributes: TaskAttributes,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskAttributes {
    #[serde(default)]
    pub owner: Option<Named>,
    #[serde(default)]
    pub queue: Option<Named>,
    #[serde(default)]
    pub channel_type: Option<String>,
    #[serde(default)]
    pub status: Option<String>,
    pub created_time: i64,
    #[serde(default)]
    pub last_updated_time: Option<i64>,
    /// `None` when the API sends `null`: not yet known.
    #[serde(default)]
    pub capture_requested: Option<bool>,
    #[serde(default)]
    pub origin: Option<String>,
    #[serde(default)]
    pub destination: Option<String>,
    #[serde(default)]
    pub direction: Option<String>,
    #[serde(default)]
    pub reason_code: Option<String>,
}

/// An `{id, name}` reference (owner, queue).
#[derive(Debug, Clone, Deserialize)]
pub struct Named {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
}

impl Task {
    /// Only telephony tasks have recordings, and `captureRequested: false` means none will
    /// exist; `null` (not yet known) is still asked about.
    pub fn may_have_recording(&self) -> bool {
        let voice = self
            .attributes
            .channel_type
            .as_deref()
            .is_some_and(|c| c.eq_ignore_ascii_case("telephony"));
        voice && self.attributes.capture_requested != Some(false)
    }
}

/// `POST /v1/captures/query` response.
#[derive(Debug, Deserialize)]
pub struct CapturesResponse {
    #[serde(default)]
    pub meta: Option<Meta>,
    #[serde(default)]
    pub data: Vec<serde_json::Value>,
}

/// Captures of one task. Unknown task ids come back with empty arrays, not an error.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskCaptures {
    pub task_id: String,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub recording: Vec<Recording>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub transcription: Vec<Transcription>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Recording {
    pub id: String,
    #[serde(default)]
    pub segment: Option<bool>,
    pub attributes: RecordingAttributes,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecordingAttributes {
    #[serde(default)]
    pub file_name: Option<String>,
    /// Pre-signed download URL: a bearer credential until it expires, so it is kept secret and
    /// never stored.
    #[serde(default)]
    pub file_path: Option<SecretString>,
    #[serde(default)]
    pub start_time: Option<i64>,
    #[serde(default)]
    pub stop_time: Option<i64>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub participants: Vec<String>,
    #[serde(default)]
    pub channel1: Option<String>,
    #[serde(default)]
    pub channel2: Option<String>,
    #[serde(default)]
    pub call_type: Option<String>,
    #[serde(default)]
    pub sensitive: Option<bool>,
}

/// Transcript entry. Note the capitalised `Source`/`Provider` keys and times sent as strings.
#[derive(Debug, Clone, Deserialize)]
pub struct Transcription {
    #[serde(default, rename = "Source")]
    pub source: Option<String>,
    #[serde(default, rename = "Provider")]
    pub provider: Option<String>,
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default, rename = "languageCode")]
    pub language_code: Option<String>,
    #[serde(default, rename = "startTime")]
    pub start_time: Option<serde_json::Value>,
}

fn null_as_empty<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Ok(Option::<Vec<T>>::deserialize(d)?.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    #[test]
    fn parses_the_cisco_tasks_sample() {
        let page: TasksPage =
            serde_json::from_str(include_str!("../../fixtures/tasks-response.json")).unwrap();
        assert_eq!(
            page.meta.unwrap().org_id.as_deref(),
            Some("3dae8fdd-06e2-411a-9035-51f3719f5b65")
        );
        let task: Task = serde_json::from_value(page.data[0].clone()).unwrap();
        assert_eq!(task.id, "93912f11-6017-404b-bf14-5331890b1797");
        assert_eq!(task.attributes.created_time, 1591702170000);
        let owner = task.attributes.owner.as_ref().unwrap();
        assert_eq!(owner.name.as_deref(), Some("Joseph Lambert"));
        assert_eq!(task.attributes.reason_code.as_deref(), Some("Credit"));
        assert!(
            !task.may_have_recording(),
            "email with captureRequested false"
        );
    }

    #[test]
    fn tolerates_missing_owner_null_capture_and_unknown_fields() {
        let task: Task = serde_json::from_str(
            r#"{"id":"t1","attributes":{"channelType":"telephony","status":"abandoned",
                "createdTime":1,"captureRequested":null,"context":{"x":1},"brandNew":true}}"#,
        )
        .unwrap();
        assert!(task.attributes.owner.is_none());
        assert_eq!(task.attributes.capture_requested, None);
        assert!(task.may_have_recording());
    }

    #[test]
    fn parses_both_capture_samples() {
        for sample in [
            include_str!("../../fixtures/captures-response.json"),
            include_str!("../../fixtures/captures-response.derived-concrete.json"),
        ] {
            let resp: CapturesResponse = serde_json::from_str(sample).unwrap();
            assert_eq!(resp.meta.unwrap().url_expiration, Some(30));
            for entry in resp.data {
                let tc: TaskCaptures = serde_json::from_value(entry).unwrap();
                for r in &tc.recording {
                    assert!(r.attributes.file_path.is_some());
                    assert!(r.attributes.start_time.is_some());
                }
                for t in &tc.transcription {
                    assert_eq!(t.provider.as_deref(), Some("CISCO"));
                }
            }
        }
        let resp: CapturesResponse = serde_json::from_str(include_str!(
            "../../fixtures/captures-response.derived-concrete.json"
        ))
        .unwrap();
        let first: TaskCaptures = serde_json::from_value(resp.data[0].clone()).unwrap();
        assert_eq!(first.recording.len(), 2);
        assert_eq!(
            first.recording[1].attributes.call_type.as_deref(),
            Some("consult")
        );
        let unknown: TaskCaptures = serde_json::from_value(resp.data[1].clone()).unwrap();
        assert!(unknown.recording.is_empty());
    }

    #[test]
    fn signed_urls_do_not_show_in_debug_output() {
        let r: Recording = serde_json::from_str(
            r#"{"id":"r","attributes":{"filePath":"https://h/x?X-Amz-Signature=topsecret"}}"#,
        )
        .unwrap();
        assert!(!format!("{r:?}").contains("topsecret"));
        assert!(
            r.attributes
                .file_path
                .unwrap()
                .expose_secret()
                .contains("topsecret")
        );
    }
}
