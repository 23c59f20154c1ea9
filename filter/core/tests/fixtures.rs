//! Real receive-pack bodies captured from git (see `fixtures/make-fixtures.sh`), fed to the
//! parsers whole, one byte at a time, and split at every offset.
//!
//! The fixtures are embedded with `include_bytes!`, so these tests need no file system and run
//! unchanged under a WASI runner.

use gitgate_core::api::{Operation, RefVerdict, VerdictRequest, VerdictResponse};
use gitgate_core::config::FailureMode;
use gitgate_core::decision::CalloutResult;
use gitgate_core::gate::{BodyAction, BodyEncoding, Outcome, PushGate, PushMeta, ResumeAction};
use gitgate_core::pack::PackFramer;
use gitgate_core::receive_pack::{CommandSection, ObjectFormat, Parser, Progress};

const SHA1_CREATE: &[u8] = include_bytes!("fixtures/sha1-create.bin");
const SHA1_UPDATE_DELTAS: &[u8] = include_bytes!("fixtures/sha1-update-deltas.bin");
const SHA1_ATOMIC_OPTIONS: &[u8] = include_bytes!("fixtures/sha1-atomic-options.bin");
const SHA1_DELETE_ONLY: &[u8] = include_bytes!("fixtures/sha1-delete-only.bin");
const SHA1_MULTI_CREATE: &[u8] = include_bytes!("fixtures/sha1-multi-create.bin");
const SHA1_SHALLOW: &[u8] = include_bytes!("fixtures/sha1-shallow.bin");
const SHA1_SIGNED: &[u8] = include_bytes!("fixtures/sha1-signed.bin");
const SHA256_CREATE: &[u8] = include_bytes!("fixtures/sha256-create.bin");
const SHA256_UPDATE: &[u8] = include_bytes!("fixtures/sha256-update.bin");

const ALL: [(&str, &[u8]); 9] = [
    ("sha1-create", SHA1_CREATE),
    ("sha1-update-deltas", SHA1_UPDATE_DELTAS),
    ("sha1-atomic-options", SHA1_ATOMIC_OPTIONS),
    ("sha1-delete-only", SHA1_DELETE_ONLY),
    ("sha1-multi-create", SHA1_MULTI_CREATE),
    ("sha1-shallow", SHA1_SHALLOW),
    ("sha1-signed", SHA1_SIGNED),
    ("sha256-create", SHA256_CREATE),
    ("sha256-update", SHA256_UPDATE),
];

/// Every way to cut `bytes` into pieces that the tests use: whole, one byte at a time, and in
/// two at every offset.
fn splits(bytes: &[u8]) -> Vec<Vec<&[u8]>> {
    splits_at(bytes, 0..=bytes.len())
}

/// Whole, one byte at a time, and in two at each offset of `offsets`.
fn splits_at(bytes: &[u8], offsets: impl IntoIterator<Item = usize>) -> Vec<Vec<&[u8]>> {
    let mut all = vec![vec![bytes], bytes.chunks(1).collect()];
    for at in offsets {
        let (a, b) = bytes.split_at(at);
        all.push(vec![a, b]);
    }
    all
}

/// Split offsets for the slower whole-gate runs: every offset up to just past the command
/// section and in the last bytes (where the withheld tail and the pack trailer are), every
/// seventh offset in between.
fn gate_offsets(len: usize, section_end: usize) -> Vec<usize> {
    let dense_head = section_end + 80;
    let dense_tail = len.saturating_sub(80);
    (0..=len)
        .filter(|&at| at <= dense_head || at >= dense_tail || at % 7 == 0)
        .collect()
}

/// Parses the command section from `pieces`; returns it with the body offset where it ended.
fn parse(pieces: &[&[u8]]) -> CommandSection {
    let mut parser = Parser::default();
    let mut offset = 0usize;
    for piece in pieces {
        match parser.feed(piece).expect("valid fixture") {
            Progress::NeedMore => offset += piece.len(),
            Progress::Complete { consumed } => {
                let section = parser.section().expect("complete");
                assert_eq!(section.end_offset as usize, offset + consumed);
                return section;
            }
        }
    }
    panic!("the fixture's command section never completed");
}

/// Frames the pack that follows the section; asserts it ends exactly at the end of the body.
fn frame_pack(body: &[u8], section: &CommandSection, pieces: usize) {
    let start = section.end_offset as usize;
    let pack = &body[start..];
    let mut framer = PackFramer::new(section.object_format, start as u64);
    let size = pack.len().div_ceil(pieces.max(1)).max(1);
    for chunk in pack.chunks(size) {
        assert!(!framer.is_complete(), "the pack ended before the body did");
        framer.feed(chunk).expect("valid pack");
    }
    assert!(framer.is_complete(), "the pack did not end with the body");
}

#[test]
fn every_fixture_parses_identically_at_every_split() {
    for (name, body) in ALL {
        let whole = parse(&[body]);
        for pieces in splits(body) {
            assert_eq!(parse(&pieces), whole, "{name}");
        }
    }
}

#[test]
fn every_pack_ends_exactly_at_the_end_of_the_body() {
    for (name, body) in ALL {
        let section = parse(&[body]);
        if section.expects_pack() {
            for pieces in [1, 2, 3, 7, body.len()] {
                frame_pack(body, &section, pieces);
            }
        } else {
            assert_eq!(section.end_offset as usize, body.len(), "{name}");
        }
    }
}

#[test]
fn a_pack_split_at_every_offset_is_framed() {
    // sha1-create holds ofs-deltas, sha1-update-deltas a thin pack with ref-deltas.
    for body in [SHA1_CREATE, SHA1_UPDATE_DELTAS, SHA256_CREATE] {
        let section = parse(&[body]);
        let start = section.end_offset as usize;
        for at in gate_offsets(body.len(), start)
            .into_iter()
            .filter(|&at| at >= start)
        {
            let mut framer = PackFramer::new(section.object_format, start as u64);
            framer.feed(&body[start..at]).expect("prefix");
            framer.feed(&body[at..]).expect("rest");
            assert!(framer.is_complete());
        }
    }
}

#[test]
fn a_create_push_has_the_zero_old_id_and_real_git_caps() {
    let section = parse(&[SHA1_CREATE]);
    assert_eq!(section.commands.len(), 1);
    let command = &section.commands[0];
    assert_eq!(command.refname, "refs/heads/main");
    assert_eq!(command.operation(), Operation::Create);
    let caps = &section.capabilities;
    assert!(caps.report_status_v2 && caps.side_band_64k && caps.quiet);
    assert!(!caps.atomic && !caps.push_options);
    assert_eq!(caps.object_format, Some(ObjectFormat::Sha1));
    assert!(caps.agent.as_deref().is_some_and(|a| a.starts_with("git/")));
}

#[test]
fn an_update_push_is_an_update() {
    let section = parse(&[SHA1_UPDATE_DELTAS]);
    assert_eq!(section.commands[0].operation(), Operation::Update);
}

#[test]
fn an_atomic_push_carries_its_options_and_both_refs() {
    let section = parse(&[SHA1_ATOMIC_OPTIONS]);
    assert!(section.capabilities.atomic);
    assert!(section.capabilities.push_options);
    assert_eq!(section.push_options, ["ci.skip", "reviewer=alice"]);
    let names: Vec<_> = section
        .commands
        .iter()
        .map(|c| c.refname.as_str())
        .collect();
    assert_eq!(names, ["refs/heads/main", "refs/heads/agent/fix-123"]);
    assert_eq!(section.commands[1].operation(), Operation::Create);
}

#[test]
fn a_delete_only_push_ends_at_the_flush_without_a_pack() {
    let section = parse(&[SHA1_DELETE_ONLY]);
    assert_eq!(section.commands[0].operation(), Operation::Delete);
    assert!(!section.expects_pack());
    assert_eq!(section.end_offset as usize, SHA1_DELETE_ONLY.len());
}

#[test]
fn a_multi_ref_push_lists_tags_and_branches_in_order() {
    let section = parse(&[SHA1_MULTI_CREATE]);
    let names: Vec<_> = section
        .commands
        .iter()
        .map(|c| c.refname.as_str())
        .collect();
    assert_eq!(
        names,
        ["refs/tags/v1.0", "refs/heads/extra", "refs/heads/other"]
    );
}

#[test]
fn a_shallow_push_sends_its_shallow_line_first() {
    let section = parse(&[SHA1_SHALLOW]);
    assert_eq!(section.shallow.len(), 1);
    assert_eq!(section.shallow[0].len(), 40);
    assert_eq!(section.commands.len(), 1);
}

#[test]
fn a_signed_push_takes_its_commands_from_the_certificate() {
    let section = parse(&[SHA1_SIGNED]);
    assert!(section.signed);
    assert_eq!(section.commands.len(), 1);
    assert_eq!(section.commands[0].refname, "refs/heads/signed");
    assert_eq!(section.commands[0].operation(), Operation::Create);
}

#[test]
fn sha256_pushes_use_64_digit_ids() {
    for body in [SHA256_CREATE, SHA256_UPDATE] {
        let section = parse(&[body]);
        assert_eq!(section.object_format, ObjectFormat::Sha256);
        assert!(
            section
                .commands
                .iter()
                .all(|c| c.old.len() == 64 && c.new.len() == 64)
        );
    }
}

fn meta() -> PushMeta {
    PushMeta {
        request_id: "fixture".into(),
        repository: "demo.git".into(),
        identity: Some(gitgate_core::api::Identity {
            subject: "agent".into(),
            ..Default::default()
        }),
    }
}

/// Runs a fixture through the gate in `pieces`, answering the callout with `verdicts` after the
/// end of the body; returns what reached the upstream and the final answer, if any.
fn through_gate(pieces: &[&[u8]], verdicts: Vec<RefVerdict>) -> (Vec<u8>, Option<Vec<u8>>) {
    let mut gate = PushGate::new(meta(), BodyEncoding::Identity, FailureMode::Closed);
    let mut requests: Vec<VerdictRequest> = Vec::new();
    let mut dispatch = |request: &VerdictRequest| {
        requests.push(request.clone());
        true
    };
    let mut upstream = Vec::new();
    for piece in pieces {
        match gate.on_body(piece, false, &mut dispatch) {
            BodyAction::Forward(bytes) => upstream.extend(bytes),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(gate.on_body(b"", true, &mut dispatch), BodyAction::Wait);
    assert_eq!(requests.len(), 1);
    let json = serde_json::to_vec(&VerdictResponse {
        verdicts,
        ..VerdictResponse::default()
    })
    .expect("json");
    match gate.on_callout(CalloutResult::Response {
        status: Some(200),
        body: &json,
    }) {
        ResumeAction::Resume(held) => {
            upstream.extend(held);
            assert_eq!(gate.outcome(), &Outcome::Forwarded);
            (upstream, None)
        }
        ResumeAction::Respond(answer) => (upstream, Some(answer)),
        ResumeAction::Nothing => panic!("the gate was waiting"),
    }
}

#[test]
fn allowed_fixtures_reach_the_upstream_byte_for_byte_at_every_split() {
    for (name, body) in ALL {
        let section = parse(&[body]);
        let count = section.commands.len();
        let offsets = gate_offsets(body.len(), section.end_offset as usize);
        for pieces in splits_at(body, offsets) {
            let (upstream, answer) = through_gate(&pieces, vec![RefVerdict::Allow; count]);
            assert!(answer.is_none(), "{name}");
            assert_eq!(upstream, body, "{name}");
        }
    }
}

#[test]
fn refused_fixtures_leave_the_upstream_without_the_tail() {
    for (name, body) in ALL {
        let count = parse(&[body]).commands.len();
        let deny = RefVerdict::Deny {
            code: "gitgate:deny:test".into(),
            reason: "no".into(),
        };
        let (upstream, answer) = through_gate(&[body], vec![deny; count]);
        assert!(
            upstream.len() <= body.len() - gitgate_core::withhold::TAIL_LEN,
            "{name}"
        );
        let answer = answer.expect("a refusal");
        let text = String::from_utf8_lossy(&answer);
        assert_eq!(text.matches("ng refs/").count(), count, "{name}");
    }
}
