use super::*;

fn hash() -> PiiMode {
    PiiMode::Hash(SecretString::from("customer-secret"))
}

/// Every shape a contact value was seen or could be sent in, with a piece of it that must not
/// survive the transform.
const SHAPES: [(&str, &str); 17] = [
    ("+14155550100", "4155550100"),
    ("+1 (415) 555-0100", "555-0100"),
    ("tel:+14155550100", "4155550100"),
    ("TEL:+1-415-555-0100;ext=12", "555-0100"),
    (
        "sip:+14155550100@sip.carrier.example;user=phone",
        "4155550100",
    ),
    ("sips:jane.doe@corp.example", "jane.doe"),
    ("Jane Doe <jane.doe@corp.example>", "jane.doe"),
    ("\"Doe, Jane\" <sip:jane.doe@corp.example>", "Doe"),
    ("mailto:jane.doe@corp.example?subject=hi", "jane.doe"),
    ("chat.user@email.com", "chat.user"),
    ("+121****1219", "1219"),
    ("4100", "4100"),
    ("x4100", "4100"),
    ("facebook:123456789012345", "123456789012345"),
    (
        "https://wxcc.example/chat/sales?email=jane@corp.example",
        "jane",
    ),
    ("Jane Doe", "Jane"),
    ("  +14155550100  ", "4155550100"),
];

#[test]
fn every_shape_of_a_contact_value_is_hashed() {
    for (value, clear) in SHAPES {
        let out = hash().apply(value);
        assert!(out.starts_with("h:") && out.len() == 18, "{value} -> {out}");
        assert!(!out.contains(clear), "{value} -> {out}");
    }
}

#[test]
fn every_shape_of_a_contact_value_is_masked() {
    for (value, clear) in SHAPES {
        let out = PiiMode::Mask.apply(value);
        assert!(out.starts_with("***"), "{value} -> {out}");
        assert!(!out.contains(clear) || clear == "1219", "{value} -> {out}");
    }
    let m = |v| PiiMode::Mask.apply(v);
    assert_eq!(m("+14155550100"), "***0100");
    assert_eq!(m("+121****1219"), "***1219");
    assert_eq!(m("tel:+1-415-555-0100;ext=12"), "***0100");
    assert_eq!(m("sip:+14155550100@sip.carrier.example"), "***0100");
    assert_eq!(m("jane@corp.example"), "***@corp.example");
    assert_eq!(m("Jane Doe <Jane.Doe@Corp.Example>"), "***@corp.example");
    assert_eq!(m("4100"), "***", "an extension is hidden whole");
    assert_eq!(m("Jane Doe"), "***");
    assert_eq!(PiiMode::Keep.apply("tel:+14155550100"), "tel:+14155550100");
}

#[test]
fn the_same_caller_hashes_the_same_in_every_notation() {
    let a = hash().apply("+14155550100");
    for v in [
        "+1 (415) 555-0100",
        "tel:+14155550100",
        "tel:+1-415-555-0100;phone-context=example",
        "sip:+14155550100@sip.carrier.example;user=phone",
        "Caller <tel:+14155550100>",
    ] {
        assert_eq!(hash().apply(v), a, "{v}");
    }
    assert_ne!(a, hash().apply("+14155550101"));
    let e = hash().apply("jane.doe@corp.example");
    for v in [
        "Jane.Doe@Corp.Example",
        "Jane Doe <jane.doe@corp.example>",
        "mailto:jane.doe@corp.example",
        "sip:jane.doe@corp.example:5061;transport=tls",
    ] {
        assert_eq!(hash().apply(v), e, "{v}");
    }
    let other_key = PiiMode::Hash(SecretString::from("another"));
    assert_ne!(a, other_key.apply("+14155550100"), "keyed");
}

#[test]
fn hashes_of_plain_numbers_and_addresses_are_unchanged_from_earlier_releases() {
    // Lakes written before every shape was covered keep joining with new rows.
    let key = PiiMode::Hash(SecretString::from("customer-secret"));
    let mac = |s: &str| {
        let mut m = Hmac::<Sha256>::new_from_slice(b"customer-secret").unwrap();
        m.update(s.as_bytes());
        format!("h:{}", &hex::encode(m.finalize().into_bytes())[..16])
    };
    assert_eq!(key.apply("+1 (415) 555-0100"), mac("+14155550100"));
    assert_eq!(key.apply("Chat.User@Email.com"), mac("chat.user@email.com"));
    assert_eq!(key.apply("+121****1219"), mac("+121****1219"));
}

#[test]
fn only_agent_ids_and_empty_values_pass_unchanged() {
    for v in ["e0c7611b-8035-443a-b7a8-dca9f8b8289b", "", "   "] {
        assert_eq!(hash().apply(v), v);
        assert_eq!(PiiMode::Mask.apply(v), v);
    }
    // Not quite a UUID: transformed.
    assert!(
        hash()
            .apply("e0c7611b8035443ab7a8dca9f8b8289b")
            .starts_with("h:")
    );
    assert!(hash().apply("Sales Queue").starts_with("h:"));
    let once = hash().apply("tel:+14155550100");
    assert_eq!(hash().apply(&once), once, "hashing is idempotent");
    let raw = r#"{"attributes":{"origin":"tel:+14155550100"}}"#;
    let once = hash().apply_to_json(raw);
    assert_eq!(hash().apply_to_json(&once), once);
}

#[test]
fn quarantined_records_are_protected_whatever_the_json_type() {
    let raw = r#"{"id":"t1","attributes":{"origin":14155550100,"queue":{"name":"Sales"},
        "destination":{"uri":"tel:+18005550199","display":"Jane Roe <jane.roe@corp.example>"},
        "participants":["+121****1219","e0c7611b-8035-443a-b7a8-dca9f8b8289b",14155550177,
            ["sip:+14155550166@carrier.example"]],
        "Customer":{"name":"Jane Roe","phoneNumber":"+1 415 555 0155","vip":true},
        "context":{"ANI":"+14155550144"},"dnis":{"+14155550122":"main line"}}}"#;
    for mode in [hash(), PiiMode::Mask] {
        let out = mode.apply_to_json(raw);
        for clear in [
            "4155550100",
            "8005550199",
            "jane.roe",
            "Roe",
            "1219",
            "4155550177",
            "4155550166",
            "555 0155",
            "4155550144",
            "4155550122",
            "main line",
        ] {
            assert!(
                !out.contains(clear) || (clear == "1219" && matches!(mode, PiiMode::Mask)),
                "{clear} in {out}"
            );
        }
        for kept in [
            "Sales",
            "e0c7611b-8035-443a-b7a8-dca9f8b8289b",
            "t1",
            "true",
            "\"uri\"",
            "\"phoneNumber\"",
        ] {
            assert!(out.contains(kept), "{kept} not in {out}");
        }
    }
    assert_eq!(PiiMode::Keep.apply_to_json(raw), raw);
    assert_eq!(
        hash().apply_to_json("not json +14155550100"),
        "[withheld: not JSON, PII protection is on]"
    );
}
