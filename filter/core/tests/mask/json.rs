//! JSON APIs of Git hosts: string values and base64 file contents, on recorded GitHub bodies.

use gitgate_core::mask::{BodyKind, Fallback, MaskingSection, Place};
use serde_json::Value;

use crate::support::{
    Fake, assert_absent, assert_every_split, assert_splits, decode_base64, find, github_base64,
    mask_in, mask_whole, masking, parse_json, shape, splits_near, with,
};

const SEARCH_ISSUES: &str = include_str!("../fixtures/github/search-issues.json");
const PAGINATE_ISSUES: &str = include_str!("../fixtures/github/paginate-issues.json");
const CREATE_FILE: &str = include_str!("../fixtures/github/create-file.json");
const COMBINED_STATUS: &str = include_str!("../fixtures/github/combined-status.json");
const CONTENTS_DIR: &str = include_str!("../fixtures/github/contents-dir.json");
const CONTENTS_FILE: &str = include_str!("../fixtures/github/contents-file.json");

const JSON: BodyKind = BodyKind::Json;

/// Masks a JSON body and checks what every JSON test checks: it parses, its shape is the
/// original's, and no secret is left.
fn masked(body: &str, secrets: &[&str]) -> (String, Value) {
    let (out, report) = mask_whole(masking(), JSON, body.as_bytes());
    let value = parse_json(&out);
    assert_eq!(
        shape(&value),
        shape(&parse_json(body.as_bytes())),
        "same structure"
    );
    assert_absent(&out, secrets);
    assert!(report.masked >= secrets.len() as u64);
    (String::from_utf8(out).expect("utf-8"), value)
}

#[test]
fn recorded_bodies_without_secrets_pass_byte_for_byte() {
    for body in [
        SEARCH_ISSUES,
        PAGINATE_ISSUES,
        CREATE_FILE,
        COMBINED_STATUS,
        CONTENTS_DIR,
        CONTENTS_FILE,
    ] {
        let (out, report) = mask_whole(masking(), JSON, body.as_bytes());
        assert_eq!(report.masked, 0);
        assert!(
            out == body.as_bytes(),
            "changed:\n{}",
            String::from_utf8_lossy(&out)
        );
    }
}

#[test]
fn an_issue_body_with_escapes_is_masked_and_keeps_its_other_escapes() {
    let mut fake = Fake::new(30);
    let (pat, aws) = (fake.github_pat(), fake.aws_key_id());
    // The token follows a `\n` escape: a scan of the raw text would see `nghp_...` and miss it.
    let body = SEARCH_ISSUES
        .replace(
            r"no pop \ud83d\ude2d",
            &format!(r"no pop \ud83d\ude2d\n{pat}\nthanks"),
        )
        .replace(r#"\"open sesame\""#, &format!(r#"\"{aws}\""#));
    let (out, value) = masked(&body, &[&pat, &aws]);
    assert!(out.contains(r"I\u2019ve waited all year long, but there was no pop \ud83d\ude2d\n"));
    assert_eq!(
        value["items"][0]["body"],
        "I\u{2019}ve waited all year long, but there was no pop \u{1f62d}\n\
         ghp_****[gitgate:github-pat-classic]\nthanks"
    );
    assert_eq!(
        value["items"][1]["body"],
        "I tried \"AKIA****[gitgate:aws-access-key-id]\" as seen on Wikipedia but no luck!"
    );
    let splits = splits_near(body.as_bytes(), &[&pat, &aws, r"\ud83d"], 16, 97);
    assert_splits(masking(), JSON, body.as_bytes(), out.as_bytes(), splits);
}

#[test]
fn a_token_written_with_unicode_escapes_is_found() {
    let mut fake = Fake::new(31);
    let pat = fake.github_pat();
    let escaped = format!(r"\u0067{}", &pat[1..]);
    let body = format!(r#"{{"title": "x", "body": "see {escaped} here"}}"#);
    let (out, value) = masked(&body, &[&pat]);
    assert_absent(out.as_bytes(), &[&escaped]);
    assert_eq!(
        value["body"],
        "see ghp_****[gitgate:github-pat-classic] here"
    );
    assert_every_split(masking(), JSON, body.as_bytes(), out.as_bytes());
}

#[test]
fn a_commit_message_and_a_status_description_are_masked() {
    let mut fake = Fake::new(32);
    let (stripe, slack) = (fake.stripe(), fake.slack_bot());
    let body = CREATE_FILE.replace(
        r#""message": "create test.txt""#,
        &format!(r#""message": "create test.txt\n\nkey: {stripe}""#),
    );
    let (out, value) = masked(&body, &[&stripe]);
    assert_eq!(
        value["commit"]["message"],
        "create test.txt\n\nkey: sk_live_****[gitgate:stripe-secret-key]"
    );
    let splits = splits_near(body.as_bytes(), &[&stripe], 16, 53);
    assert_splits(masking(), JSON, body.as_bytes(), out.as_bytes(), splits);

    let body = COMBINED_STATUS.replacen(
        "create-status failure test",
        &format!("failed: webhook {slack}"),
        1,
    );
    let (_, value) = masked(&body, &[&slack]);
    assert_eq!(
        value["statuses"][0]["description"],
        "failed: webhook xoxb-****[gitgate:slack-bot-token]"
    );
}

#[test]
fn a_password_next_to_its_key_is_found_by_the_generic_rules() {
    let mut fake = Fake::new(33);
    let password = fake.password();
    let body = PAGINATE_ISSUES.replacen(
        r#""body": null"#,
        &format!(r#""body": "config:\n  password: \"{password}\"\n""#),
        1,
    );
    let (out, value) = masked(&body, &[&password]);
    let text = value[0]["body"].as_str().expect("a string");
    assert!(
        text.starts_with("config:\n  password: \"****[gitgate:"),
        "{text}"
    );
    let splits = splits_near(body.as_bytes(), &[&password], 40, 211);
    assert_splits(masking(), JSON, body.as_bytes(), out.as_bytes(), splits);
}

/// A GitHub file answer whose `content` holds `file`.
fn contents_answer(file: &[u8]) -> String {
    let content = github_base64(file).replace('\n', "\\n");
    CONTENTS_FILE.replace(r"IyBoZWxsby13b3JsZA==\n", &content)
}

#[test]
fn base64_content_with_line_breaks_is_masked_and_still_decodes() {
    let mut fake = Fake::new(34);
    let (pat, aws) = (fake.github_pat(), fake.aws_key_id());
    let file = format!(
        "# deployment\nREGION=eu-west-1\nGITHUB_TOKEN={pat}\nAWS_ACCESS_KEY_ID={aws}\n\
         LOG_LEVEL=info\n"
    );
    let body = contents_answer(file.as_bytes());
    let (out, value) = masked(&body, &[&pat, &aws]);
    let content = value["content"].as_str().expect("a string");
    let lines: Vec<&str> = content.split_terminator('\n').collect();
    assert!(content.ends_with('\n'));
    assert!(
        lines[..lines.len() - 1].iter().all(|l| l.len() == 60),
        "60-character lines"
    );
    let decoded = String::from_utf8(decode_base64(content)).expect("utf-8");
    assert_eq!(
        decoded,
        "# deployment\nREGION=eu-west-1\nGITHUB_TOKEN=ghp_****[gitgate:github-pat-classic]\n\
         AWS_ACCESS_KEY_ID=AKIA****[gitgate:aws-access-key-id]\nLOG_LEVEL=info\n"
    );
    // The secrets do not appear base64-encoded either.
    for secret in [&pat, &aws] {
        assert!(
            !decode_base64(content)
                .windows(secret.len())
                .any(|w| w == secret.as_bytes())
        );
    }
    let (_, report) = mask_whole(masking(), JSON, body.as_bytes());
    assert!(report.secrets.iter().all(|s| s.place == Place::Base64Field));
    assert_every_split(masking(), JSON, body.as_bytes(), out.as_bytes());
}

#[test]
fn base64_content_without_line_breaks_keeps_its_single_line() {
    use base64::Engine;
    let mut fake = Fake::new(35);
    let pat = fake.github_pat();
    let file = format!("token: {pat}\n");
    let encoded = base64::engine::general_purpose::STANDARD.encode(&file);
    // GitLab's files API shape.
    let body = format!(
        r#"{{"file_name":"ci.yml","file_path":"ci.yml","size":{},"encoding":"base64","content":"{encoded}","ref":"main"}}"#,
        file.len()
    );
    let (out, value) = masked(&body, &[&pat]);
    let content = value["content"].as_str().expect("a string");
    assert!(!content.contains('\n'));
    assert_eq!(
        decode_base64(content),
        b"token: ghp_****[gitgate:github-pat-classic]\n"
    );
    assert_every_split(masking(), JSON, body.as_bytes(), out.as_bytes());
}

#[test]
fn large_base64_content_is_decoded_as_it_streams() {
    let mut fake = Fake::new(36);
    let secrets: Vec<String> = (0..4).map(|_| fake.github_pat()).collect();
    let mut file = Vec::new();
    for (i, secret) in secrets.iter().enumerate() {
        for line in 0..300 {
            file.extend(format!("line {i}.{line}: nothing to see here, move along\n").as_bytes());
        }
        file.extend(format!("TOKEN_{i}={secret}\n").as_bytes());
    }
    let body = contents_answer(&file);
    assert!(body.len() > 4 * 4096, "larger than the probe");
    let refs: Vec<&str> = secrets.iter().map(String::as_str).collect();
    let (out, value) = masked(&body, &refs);
    let decoded = decode_base64(value["content"].as_str().expect("a string"));
    assert_eq!(
        decoded
            .windows(b"ghp_****[gitgate:github-pat-classic]".len())
            .filter(|w| w == b"ghp_****[gitgate:github-pat-classic]")
            .count(),
        4
    );
    for chunk in [1000, 4096, 65536] {
        let cuts = vec![chunk; body.len() / chunk];
        assert!(mask_in(masking(), JSON, body.as_bytes(), &cuts) == out.as_bytes());
    }
    let around_probe = (4000..4300).chain((body.len() - 300)..body.len());
    assert_splits(
        masking(),
        JSON,
        body.as_bytes(),
        out.as_bytes(),
        around_probe,
    );
}

#[test]
fn fields_named_content_that_are_not_base64_are_ordinary_strings() {
    let mut fake = Fake::new(37);
    let pat = fake.github_pat();
    let reactions =
        r#"[{"id":1,"content":"+1"},{"id":2,"content":"heart"},{"id":3,"content":"confused"}]"#;
    assert_eq!(
        mask_whole(masking(), JSON, reactions.as_bytes()).0,
        reactions.as_bytes()
    );
    let comment = format!(r#"{{"content": "Here is the key: {pat}, please rotate", "n": 1}}"#);
    let (out, value) = masked(&comment, &[&pat]);
    assert_eq!(
        value["content"],
        "Here is the key: ghp_****[gitgate:github-pat-classic], please rotate"
    );
    assert_every_split(masking(), JSON, comment.as_bytes(), out.as_bytes());
}

#[test]
fn a_base64_field_that_turns_into_text_after_its_probe_stays_valid() {
    let mut fake = Fake::new(38);
    let pat = fake.github_pat();
    let body = format!(
        r#"{{"content": "{}then text \"quoted\" with {pat}", "x": true}}"#,
        "QUJD".repeat(1500)
    );
    let (out, value) = masked(&body, &[&pat]);
    let content = value["content"].as_str().expect("a string");
    assert!(content.starts_with("QUJD"));
    assert!(content.ends_with("ghp_****[gitgate:github-pat-classic]"));
    let splits = splits_near(body.as_bytes(), &["then", &pat], 8, 499);
    assert_splits(masking(), JSON, body.as_bytes(), out.as_bytes(), splits);
}

#[test]
fn keys_and_nested_values_are_masked_too() {
    let mut fake = Fake::new(39);
    let (aws, slack) = (fake.aws_key_id(), fake.slack_bot());
    let body = format!(r#"{{"a":[1,{{"{aws}":["x","{slack}"]}}],"b":-1.5e3,"c":null}}"#);
    let (out, _) = mask_whole(masking(), JSON, body.as_bytes());
    let value = parse_json(&out);
    assert_eq!(
        value,
        serde_json::json!({"a": [1, {"AKIA****[gitgate:aws-access-key-id]":
            ["x", "xoxb-****[gitgate:slack-bot-token]"]}], "b": -1.5e3, "c": null})
    );
    assert!(
        find(&out, b"-1.5e3").is_some(),
        "numbers are written as they came"
    );
    assert_absent(&out, &[&aws, &slack]);
    assert_every_split(masking(), JSON, body.as_bytes(), &out);
}

#[test]
fn nesting_past_the_limit_turns_the_rest_into_text() {
    let mut fake = Fake::new(40);
    let pat = fake.github_pat();
    let mut section = MaskingSection::default();
    section.json.max_depth = 4;
    let masking = with(section);
    let body = format!(r#"{{"a":[[[[["deep {pat}"]]]]]}}"#);
    let (out, report) = mask_whole(&masking, JSON, body.as_bytes());
    assert!(
        matches!(report.fallback, Some(Fallback::Json { offset: 8, .. })),
        "{report:?}"
    );
    assert_absent(&out, &[&pat]);
    assert_every_split(&masking, JSON, body.as_bytes(), &out);
}

#[test]
fn malformed_json_is_masked_as_text_from_where_it_breaks() {
    let mut fake = Fake::new(41);
    let (pat, aws) = (fake.github_pat(), fake.aws_key_id());
    for body in [
        format!(r#"{{"a": "bad \x escape {pat}", "b": "{aws}"}}"#),
        format!(r#"{{"a": "{aws}"]] "{pat}""#),
        format!(r#"{{"a": "unterminated {pat}"#),
        r#"{"a": "\u12"#.to_owned(),
        format!(r#"{{"content": "QUJD\x {pat}"}}"#),
        format!(r#"{{"content": "QUJD{}\x {pat}"}}"#, "QUJD".repeat(2000)),
    ] {
        let (out, _) = mask_whole(masking(), JSON, body.as_bytes());
        assert_absent(&out, &[&pat, &aws]);
        let splits = splits_near(body.as_bytes(), &[&pat, r"\x"], 6, 1009);
        assert_splits(masking(), JSON, body.as_bytes(), &out, splits);
    }
}

#[test]
fn escapes_survive_every_split() {
    let mut fake = Fake::new(42);
    let pat = fake.github_pat();
    let body = format!(r#"["\ud83d\ude2d\u00e9\"\\\/\b\f\n\r\t{pat}\u0021"]"#);
    let (out, value) = masked(&body, &[&pat]);
    assert_eq!(
        value[0],
        "\u{1f62d}\u{e9}\"\\/\u{8}\u{c}\n\r\tghp_****[gitgate:github-pat-classic]!"
    );
    assert!(out.starts_with(r#"["\ud83d\ude2d\u00e9\"\\\/\b\f\n\r\t"#));
    assert!(out.ends_with(r#"\u0021"]"#));
    assert_every_split(masking(), JSON, body.as_bytes(), out.as_bytes());
}

#[test]
fn lone_surrogates_are_kept_as_written() {
    let mut fake = Fake::new(43);
    let pat = fake.github_pat();
    let body = format!(r#"["\ud800{pat}\udc00x\ud83dy\ud83d\n\ud83d\ud83d\ude2d"]"#);
    let (out, _) = mask_whole(masking(), JSON, body.as_bytes());
    assert_eq!(
        String::from_utf8(out.clone()).expect("utf-8"),
        r#"["\ud800ghp_****[gitgate:github-pat-classic]\udc00x\ud83dy\ud83d\n\ud83d\ud83d\ude2d"]"#
    );
    assert_every_split(masking(), JSON, body.as_bytes(), &out);
}
