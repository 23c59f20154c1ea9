//! The scanner finds the same secrets however the stream is cut, reports each once, and keeps
//! its memory bounded.

mod support;

use std::ops::ControlFlow;

use gitgate_scan::rules::BUILTIN_RULES;
use gitgate_scan::scanner::BLOCK_LEN;
use gitgate_scan::{FirstFinding, FnSink, RuleSet, Scanner, scan_bytes};
use support::fakes::{self, Rng};
use support::{assert_same_findings_at_every_split, ids, scan_parts, secret_text};

#[test]
fn every_rule_finds_the_same_secrets_at_every_split_point() {
    let rules = RuleSet::builtin().unwrap();
    for spec in BUILTIN_RULES {
        for seed in 0..2 {
            let sample = fakes::sample(spec.id, &mut Rng::new(seed + 100));
            let findings = assert_same_findings_at_every_split(&rules, sample.text.as_bytes(), 400);
            assert!(!findings.is_empty(), "{}", spec.id);
        }
    }
}

/// A document with secrets of many kinds close together, some sharing lines.
fn mixed_document(rng: &mut Rng) -> String {
    let mut doc = String::from("# deploy settings\n");
    for id in [
        "github-pat-classic",
        "aws-secret-access-key",
        "slack-webhook-url",
        "jwt",
        "generic-secret-quoted",
        "private-key-ec",
        "database-url-password",
        "stripe-secret-key",
        "telegram-bot-token",
        "generic-secret-unquoted",
    ] {
        doc.push_str(&fakes::sample(id, rng).text);
        doc.push_str("\n// unrelated code: let total = items.iter().sum::<u32>();\n");
    }
    doc
}

#[test]
fn a_document_with_many_secrets_gives_identical_findings_at_every_split() {
    let rules = RuleSet::builtin().unwrap();
    let doc = mixed_document(&mut Rng::new(7));
    let findings = assert_same_findings_at_every_split(&rules, doc.as_bytes(), usize::MAX);
    assert!(findings.len() >= 11, "{:?}\n{doc}", ids(&findings));
}

#[test]
fn every_three_way_split_of_a_short_token_line_agrees() {
    let rules = RuleSet::builtin().unwrap();
    let (token, _) = fakes::token("gitlab-pat", &mut Rng::new(3)).unwrap();
    let text = format!("a {token} b\n");
    let bytes = text.as_bytes();
    let whole = scan_bytes(&rules, bytes);
    assert_eq!(whole.len(), 1);
    for i in 0..=bytes.len() {
        for j in i..=bytes.len() {
            let parts = [&bytes[..i], &bytes[i..j], &bytes[j..]];
            assert_eq!(scan_parts(&rules, &parts), whole, "split at {i} and {j}");
        }
    }
}

#[test]
fn offsets_lines_and_columns_are_absolute_across_chunks() {
    let rules = RuleSet::builtin().unwrap();
    let (token, _) = fakes::token("stripe-secret-key", &mut Rng::new(4)).unwrap();
    let text = format!("first line\nsecond line\n\tkey: {token}\n");
    let bytes = text.as_bytes();
    let parts: Vec<&[u8]> = bytes.chunks(5).collect();
    let findings = scan_parts(&rules, &parts);
    assert_eq!(findings.len(), 1);
    let f = &findings[0];
    let start = text.find(&token).unwrap() as u64;
    assert_eq!((f.start, f.end), (start, start + token.len() as u64));
    assert_eq!(f.secret, start..start + token.len() as u64);
    assert_eq!((f.line, f.column), (3, 7));
    assert_eq!(f.fingerprint, rules.fingerprint(token.as_bytes()));
}

#[test]
fn a_secret_across_the_internal_block_boundary_of_one_large_chunk_is_found() {
    let rules = RuleSet::builtin().unwrap();
    let (token, _) = fakes::token("anthropic-api-key", &mut Rng::new(5)).unwrap();
    let filler = "let x = 1;\n".repeat(BLOCK_LEN / 11);
    let cut = BLOCK_LEN - filler.len();
    let mut text = filler.clone();
    text.push_str(&" ".repeat(cut.saturating_sub(20)));
    text.push_str(&token);
    text.push('\n');
    let findings = scan_bytes(&rules, text.as_bytes());
    assert_eq!(ids(&findings), ["anthropic-api-key"]);
    assert_eq!(secret_text(text.as_bytes(), &findings[0]), token);
    assert_eq!(findings[0].line, filler.matches('\n').count() as u64 + 1);
}

#[test]
fn a_sink_that_breaks_stops_the_scan_at_the_first_secret() {
    let rules = RuleSet::builtin().unwrap();
    let doc = mixed_document(&mut Rng::new(8));
    let mut scanner = Scanner::new(&rules);
    let mut first = FirstFinding::default();
    let mut flow = ControlFlow::Continue(());
    for chunk in doc.as_bytes().chunks(64) {
        flow = scanner.feed(chunk, &mut first);
        if flow.is_break() {
            break;
        }
    }
    assert!(flow.is_break());
    assert!(scanner.is_stopped());
    assert_eq!(&*first.0.unwrap().rule_id, "github-pat-classic");
    let mut later = Vec::new();
    assert!(scanner.feed(b"more", &mut later).is_break());
    assert!(scanner.finish(&mut later).is_break());
    assert!(later.is_empty());
}

#[test]
fn a_closure_sink_collects_everything() {
    let rules = RuleSet::builtin().unwrap();
    let doc = mixed_document(&mut Rng::new(9));
    let mut count = 0;
    let mut sink = FnSink(|_| {
        count += 1;
        ControlFlow::Continue(())
    });
    let mut scanner = Scanner::new(&rules);
    let _ = scanner.feed(doc.as_bytes(), &mut sink);
    let _ = scanner.finish(&mut sink);
    assert_eq!(count, scan_bytes(&rules, doc.as_bytes()).len());
}

#[test]
fn memory_stays_within_one_block_and_the_carry_whatever_the_chunk_size() {
    let rules = RuleSet::builtin().unwrap();
    let limit = BLOCK_LEN + rules.carry_len();
    let mut rng = Rng::new(10);
    let line = "-----BEGIN PGP PRIVATE KEY BLOCK----- password = token; let secret = x;\n";
    let big = line.repeat(4 * 1024 * 1024 / line.len());
    let mut scanner = Scanner::new(&rules);
    let mut findings = Vec::new();
    let mut fed = 0;
    while fed < big.len() {
        let n = rng.range(1, 3 * BLOCK_LEN).min(big.len() - fed);
        let _ = scanner.feed(&big.as_bytes()[fed..fed + n], &mut findings);
        fed += n;
        assert!(
            scanner.buffered_len() <= limit,
            "{} > {limit}",
            scanner.buffered_len()
        );
    }
    let _ = scanner.finish(&mut findings);
    assert!(findings.is_empty());
}

#[test]
fn the_settled_offset_never_decreases_and_no_secret_starts_before_it_later() {
    let rules = RuleSet::builtin().unwrap();
    let doc = mixed_document(&mut Rng::new(11));
    let mut scanner = Scanner::new(&rules);
    let mut findings = Vec::new();
    let mut settled = 0;
    for chunk in doc.as_bytes().chunks(7) {
        let before = findings.len();
        let _ = scanner.feed(chunk, &mut findings);
        for f in &findings[before..] {
            assert!(
                f.secret.start >= settled,
                "{} reported after settling {settled}",
                f.rule_id
            );
        }
        let now = scanner.settled_offset();
        assert!(now >= settled && now <= scanner.offset());
        settled = now;
    }
    let _ = scanner.finish(&mut findings);
    assert_eq!(scanner.settled_offset(), u64::MAX);
}

#[test]
fn a_secret_named_by_two_keywords_is_reported_once() {
    let rules = RuleSet::builtin().unwrap();
    let text = "client_secret_token = \"Hq7-vR2pXw9mZk4TtY\"\n";
    let findings = assert_same_findings_at_every_split(&rules, text.as_bytes(), usize::MAX);
    assert_eq!(findings.len(), 1);
    assert_eq!(&*findings[0].rule_id, "generic-secret-quoted");
}

#[test]
fn the_same_token_twice_is_reported_twice_at_its_two_offsets() {
    let rules = RuleSet::builtin().unwrap();
    let (token, _) = fakes::token("github-pat-classic", &mut Rng::new(12)).unwrap();
    let text = format!("{token}\n{token}\n");
    let findings = scan_bytes(&rules, text.as_bytes());
    assert_eq!(findings.len(), 2);
    assert_eq!(findings[0].fingerprint, findings[1].fingerprint);
    assert_eq!((findings[0].line, findings[1].line), (1, 2));
}

#[test]
fn secret_ranges_merge_overlaps_for_masking() {
    let rules = RuleSet::builtin().unwrap();
    let doc = mixed_document(&mut Rng::new(13));
    let findings = scan_bytes(&rules, doc.as_bytes());
    let ranges = gitgate_scan::secret_ranges(&findings);
    assert!(!ranges.is_empty());
    for pair in ranges.windows(2) {
        assert!(pair[0].end < pair[1].start);
    }
    for f in &findings {
        assert!(
            ranges
                .iter()
                .any(|r| r.start <= f.secret.start && f.secret.end <= r.end)
        );
    }
}
