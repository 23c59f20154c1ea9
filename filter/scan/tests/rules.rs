//! Every built-in rule finds its fakes and ignores its near misses.

mod support;

use std::collections::BTreeSet;

use gitgate_scan::rules::BUILTIN_RULES;
use gitgate_scan::{RuleSet, scan_bytes};
use regex_syntax::hir::{Class, Hir, HirKind, Look};
use support::fakes::{self, Rng};
use support::{ids, secret_text};

const SAMPLES_PER_RULE: u64 = 12;

#[test]
fn there_are_at_least_sixty_built_in_rules_with_unique_ids() {
    let ids: BTreeSet<&str> = BUILTIN_RULES.iter().map(|r| r.id).collect();
    assert_eq!(ids.len(), BUILTIN_RULES.len(), "duplicate rule id");
    assert!(
        BUILTIN_RULES.len() >= 60,
        "only {} rules",
        BUILTIN_RULES.len()
    );
}

#[test]
fn every_built_in_rule_finds_its_fake_secrets_in_realistic_snippets() {
    let rules = RuleSet::builtin().unwrap();
    let mut failures = Vec::new();
    for spec in BUILTIN_RULES {
        for seed in 0..SAMPLES_PER_RULE {
            let mut rng = Rng::new(seed * 7919 + 1);
            let sample = fakes::sample(spec.id, &mut rng);
            let text = sample.text.as_bytes();
            let findings = scan_bytes(&rules, text);
            let mut expect: Vec<String> = sample.expect.iter().map(|s| s.to_string()).collect();
            expect.sort();
            let own = findings.iter().find(|f| &*f.rule_id == spec.id);
            let secret = own.map(|f| secret_text(text, f));
            if ids(&findings) != expect || secret != Some(sample.secret.as_str()) {
                failures.push(format!(
                    "rule {} seed {seed}: found {:?} secret {secret:?} in:\n{}",
                    spec.id,
                    ids(&findings),
                    sample.text.chars().take(300).collect::<String>()
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn no_built_in_rule_fires_on_its_near_misses() {
    let rules = RuleSet::builtin().unwrap();
    for spec in BUILTIN_RULES {
        for seed in 0..SAMPLES_PER_RULE {
            let mut rng = Rng::new(seed * 104_729 + 3);
            let text = fakes::near_miss(spec.id, &mut rng);
            let findings = scan_bytes(&rules, text.as_bytes());
            assert!(
                findings.iter().all(|f| &*f.rule_id != spec.id),
                "rule {} fired on its near miss:\n{text}",
                spec.id
            );
        }
    }
}

#[test]
fn github_style_tokens_with_a_wrong_checksum_are_not_reported() {
    let rules = RuleSet::builtin().unwrap();
    let mut rng = Rng::new(42);
    let good = fakes::github_style("ghp_", &mut rng);
    assert_eq!(
        ids(&scan_bytes(&rules, good.as_bytes())),
        ["github-pat-classic"]
    );
    // The GitHub documentation's sample token has no valid checksum.
    let docs = "ghp_16C7e42F292c6912E7710c838347Ae178B4a";
    assert!(scan_bytes(&rules, docs.as_bytes()).is_empty());
}

#[test]
fn a_specific_rule_suppresses_the_generic_rules_on_the_same_secret() {
    let rules = RuleSet::builtin().unwrap();
    let mut rng = Rng::new(5);
    let token = fakes::github_style("ghp_", &mut rng);
    let text = format!("api_token = \"{token}\"\nDEPLOY_TOKEN={token}\n");
    let findings = scan_bytes(&rules, text.as_bytes());
    assert_eq!(ids(&findings), ["github-pat-classic"]);
    assert_eq!(findings.len(), 2);
}

#[test]
fn a_generic_assignment_is_reported_when_no_specific_rule_claims_it() {
    let rules = RuleSet::builtin().unwrap();
    let text = "smtp_password = \"Qw3rty-Plat4num-77\"\n";
    let findings = scan_bytes(&rules, text.as_bytes());
    assert_eq!(ids(&findings), ["generic-secret-quoted"]);
    assert_eq!(
        secret_text(text.as_bytes(), &findings[0]),
        "Qw3rty-Plat4num-77"
    );
}

#[test]
fn private_keys_in_json_escaped_form_are_found() {
    let rules = RuleSet::builtin().unwrap();
    let mut rng = Rng::new(9);
    let block = fakes::pem_block("RSA PRIVATE KEY", &mut rng).replace('\n', "\\n");
    let text = format!("{{\"key\": \"{block}\"}}");
    assert_eq!(
        ids(&scan_bytes(&rules, text.as_bytes())),
        ["private-key-rsa"]
    );
}

#[test]
fn public_keys_and_certificates_are_not_private_keys() {
    let rules = RuleSet::builtin().unwrap();
    let mut rng = Rng::new(10);
    let block = fakes::pem_block("PRIVATE KEY", &mut rng).replace("PRIVATE KEY", "PUBLIC KEY");
    let cert = block.replace("PUBLIC KEY", "CERTIFICATE");
    assert!(scan_bytes(&rules, block.as_bytes()).is_empty());
    assert!(scan_bytes(&rules, cert.as_bytes()).is_empty());
}

#[test]
fn a_pem_block_whose_labels_disagree_is_not_reported() {
    let rules = RuleSet::builtin().unwrap();
    let mut rng = Rng::new(11);
    let block = fakes::pem_block("PRIVATE KEY", &mut rng)
        .replace("-----END PRIVATE KEY", "-----END ENCRYPTED PRIVATE KEY");
    assert!(scan_bytes(&rules, block.as_bytes()).is_empty());
}

#[test]
fn every_built_in_pattern_is_ascii_only() {
    for spec in BUILTIN_RULES {
        let hir = regex_syntax::ParserBuilder::new()
            .unicode(false)
            .utf8(false)
            .build()
            .parse(spec.pattern)
            .unwrap_or_else(|e| panic!("{}: {e}", spec.id));
        assert!(
            ascii_only(&hir),
            "{} uses a Unicode class or boundary",
            spec.id
        );
        assert!(
            !spec.pattern.contains("(?u"),
            "{} turns Unicode on",
            spec.id
        );
    }
}

fn ascii_only(hir: &Hir) -> bool {
    match hir.kind() {
        HirKind::Look(look) => !matches!(
            look,
            Look::WordUnicode
                | Look::WordUnicodeNegate
                | Look::WordStartUnicode
                | Look::WordEndUnicode
                | Look::WordStartHalfUnicode
                | Look::WordEndHalfUnicode
        ),
        HirKind::Class(Class::Unicode(c)) => c.ranges().iter().all(|r| r.end() <= '\x7f'),
        HirKind::Repetition(r) => ascii_only(&r.sub),
        HirKind::Capture(c) => ascii_only(&c.sub),
        HirKind::Concat(s) | HirKind::Alternation(s) => s.iter().all(ascii_only),
        _ => true,
    }
}

#[test]
fn every_built_in_rule_has_keywords_within_the_length_limits() {
    for spec in BUILTIN_RULES {
        assert!(!spec.keywords.is_empty(), "{}", spec.id);
        for k in spec.keywords {
            assert!((2..=64).contains(&k.len()), "{}: keyword {k:?}", spec.id);
        }
        assert!(
            spec.max_len + spec.max_prefix <= 2 * 16 * 1024,
            "{}",
            spec.id
        );
    }
}

#[test]
fn a_non_ascii_byte_next_to_a_token_does_not_hide_it() {
    let rules = RuleSet::builtin().unwrap();
    let mut rng = Rng::new(12);
    let (token, _) = fakes::token("gitlab-pat", &mut rng).unwrap();
    let text = format!("clé\u{e9}: {token}\u{a0}\n");
    assert_eq!(ids(&scan_bytes(&rules, text.as_bytes())), ["gitlab-pat"]);
    let mut bytes = b"\xff\xfe".to_vec();
    bytes.extend_from_slice(token.as_bytes());
    bytes.extend_from_slice(b"\x80");
    assert_eq!(ids(&scan_bytes(&rules, &bytes)), ["gitlab-pat"]);
}
