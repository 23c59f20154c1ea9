//! Helpers shared by the integration tests.

#![allow(dead_code)]

pub mod corpus_cases;
pub mod fakes;

use gitgate_scan::{Finding, RuleSet, Scanner, scan_bytes};

/// Feeds `parts` in order and returns the findings.
pub fn scan_parts(rules: &RuleSet, parts: &[&[u8]]) -> Vec<Finding> {
    let mut findings = Vec::new();
    let mut scanner = Scanner::new(rules);
    for part in parts {
        let _ = scanner.feed(part, &mut findings);
    }
    let _ = scanner.finish(&mut findings);
    findings
}

/// Asserts that `text` gives the same findings, in the same order, whole, split in two at
/// every offset (or at `max_splits` evenly spread offsets for long texts), and fed one byte at
/// a time. Returns the findings.
pub fn assert_same_findings_at_every_split(
    rules: &RuleSet,
    text: &[u8],
    max_splits: usize,
) -> Vec<Finding> {
    let whole = scan_bytes(rules, text);
    let step = (text.len() / max_splits.max(1)).max(1);
    let mut at = 0;
    while at <= text.len() {
        let (a, b) = text.split_at(at);
        let split = scan_parts(rules, &[a, b]);
        assert_eq!(split, whole, "split at byte {at} of {}", text.len());
        at += step;
    }
    let bytes: Vec<&[u8]> = text.chunks(1).collect();
    assert_eq!(scan_parts(rules, &bytes), whole, "one byte at a time");
    whole
}

/// The rule ids of `findings`, sorted and deduplicated.
pub fn ids(findings: &[Finding]) -> Vec<String> {
    let mut ids: Vec<String> = findings.iter().map(|f| f.rule_id.to_string()).collect();
    ids.sort();
    ids.dedup();
    ids
}

/// The text of a finding's secret.
pub fn secret_text<'a>(text: &'a [u8], finding: &Finding) -> &'a str {
    std::str::from_utf8(&text[finding.secret.start as usize..finding.secret.end as usize]).unwrap()
}
