//! Text bodies: `text/*`, diffs and patches, raw files.

use gitgate_core::mask::{BodyKind, Place};

use crate::support::{
    Fake, assert_absent, assert_every_split, assert_splits, mask_whole, masking, splits_near,
};

const PATCH: &str = include_str!("../fixtures/text/add-config.patch");
const RAW_README: &[u8] = include_bytes!("../fixtures/github/raw-readme.txt");
const MARKDOWN: &[u8] = include_bytes!("../fixtures/github/markdown.html");

#[test]
fn a_text_body_is_masked_the_same_at_every_split() {
    let mut fake = Fake::new(1);
    let (pat, aws, slack) = (fake.github_pat(), fake.aws_key_id(), fake.slack_bot());
    let body = format!("token={pat}\nkey {aws} and {slack}\nbye\n");
    let (out, report) = mask_whole(masking(), BodyKind::Text, body.as_bytes());
    assert_eq!(
        String::from_utf8(out.clone()).expect("utf-8"),
        "token=ghp_****[gitgate:github-pat-classic]\n\
         key AKIA****[gitgate:aws-access-key-id] and xoxb-****[gitgate:slack-bot-token]\nbye\n"
    );
    assert_eq!(report.masked, 3);
    assert_eq!(report.secrets[0].offset, 6);
    assert_eq!(report.secrets[0].place, Place::Text);
    assert_every_split(masking(), BodyKind::Text, body.as_bytes(), &out);
    assert_absent(&out, &[&pat, &aws, &slack]);
}

#[test]
fn a_patch_keeps_its_lines_and_loses_its_secrets() {
    let mut fake = Fake::new(2);
    let (pat, aws) = (fake.github_pat(), fake.aws_key_id());
    let body = PATCH
        .replace("@GITHUB_TOKEN@", &pat)
        .replace("@AWS_ACCESS_KEY_ID@", &aws);
    let (out, _) = mask_whole(masking(), BodyKind::Text, body.as_bytes());
    let text = String::from_utf8(out.clone()).expect("utf-8");
    assert!(text.contains("+GITHUB_TOKEN=ghp_****[gitgate:github-pat-classic]\n"));
    assert!(text.contains("+AWS_ACCESS_KEY_ID=AKIA****[gitgate:aws-access-key-id]\n"));
    assert_eq!(text.lines().count(), body.lines().count());
    assert_absent(&out, &[&pat, &aws]);
    let splits = splits_near(body.as_bytes(), &[&pat, &aws], 24, 17);
    assert_splits(masking(), BodyKind::Text, body.as_bytes(), &out, splits);
}

#[test]
fn text_without_secrets_is_unchanged() {
    for body in [RAW_README, MARKDOWN, PATCH.as_bytes()] {
        assert_eq!(mask_whole(masking(), BodyKind::Text, body).0, body);
    }
}

#[test]
fn multibyte_text_around_a_secret_stays_valid_utf8_at_every_split() {
    let mut fake = Fake::new(3);
    let pat = fake.github_pat();
    let body = format!("clé «{pat}» 日本語 🔑\n");
    let (out, _) = mask_whole(masking(), BodyKind::Text, body.as_bytes());
    assert_eq!(
        String::from_utf8(out.clone()).expect("utf-8"),
        "clé «ghp_****[gitgate:github-pat-classic]» 日本語 🔑\n"
    );
    assert_every_split(masking(), BodyKind::Text, body.as_bytes(), &out);
}

#[test]
fn secrets_at_the_edges_of_the_body_are_masked() {
    let mut fake = Fake::new(4);
    let (first, last) = (fake.aws_key_id(), fake.stripe());
    let body = format!("{first} {last}");
    let (out, report) = mask_whole(masking(), BodyKind::Text, body.as_bytes());
    assert_eq!(
        out,
        b"AKIA****[gitgate:aws-access-key-id] sk_live_****[gitgate:stripe-secret-key]"
    );
    assert_eq!(report.masked, 2);
    assert_every_split(masking(), BodyKind::Text, body.as_bytes(), &out);
}
