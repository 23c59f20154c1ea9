//! Checksummed tokens are found whatever stands next to them: a letter or an underscore right
//! before or after a token must not hide it (a terminal colour code ends in `m`; ref names and
//! identifiers glue words to it).

mod support;

use gitgate_scan::RuleSet;
use support::fakes::{self, Rng};
use support::{ids, scan_parts};

#[test]
fn a_github_token_glued_to_letters_or_underscores_is_still_found() {
    let rules = RuleSet::builtin().unwrap();
    for (seed, prefix) in ["ghp_", "gho_", "ghu_", "ghs_", "ghr_", "npm_"]
        .iter()
        .enumerate()
    {
        let token = fakes::github_style(prefix, &mut Rng::new(seed as u64 + 7));
        for text in [
            format!("esc \x1b[31m{token}\x1b[0m\n"),
            format!("refs/heads/x{token}\n"),
            format!("GH={token}_prod\n"),
            format!("{{\"a\":\"\\u001b[1m{token}\"}}"),
        ] {
            let found = ids(&scan_parts(&rules, &[text.as_bytes()]));
            assert!(!found.is_empty(), "{prefix} not found in {text:?}");
        }
    }
}

#[test]
fn a_look_alike_without_a_valid_checksum_stays_unreported_when_glued() {
    let rules = RuleSet::builtin().unwrap();
    let text = format!("xghp_{}y\n", "a".repeat(36));
    assert!(ids(&scan_parts(&rules, &[text.as_bytes()])).is_empty());
}
