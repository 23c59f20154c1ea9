//! Configuration: custom rules, disabled and overridden built-ins, allowlists, and errors that
//! name the field and the rule.

mod support;

use gitgate_scan::{ConfigError, RuleSet, ScanConfig, scan_bytes};
use support::fakes::{self, Rng};
use support::ids;

fn compile(yaml: &str) -> Result<RuleSet, ConfigError> {
    let config: ScanConfig = serde_norway::from_str(yaml).expect("yaml parses");
    RuleSet::compile(&config)
}

#[test]
fn an_empty_document_gives_the_built_in_rules() {
    let rules = compile("{}").unwrap();
    assert_eq!(
        rules.rules().len(),
        gitgate_scan::rules::BUILTIN_RULES.len()
    );
}

#[test]
fn a_custom_rule_from_yaml_finds_its_tokens() {
    let rules = compile(
        r#"
rules:
  - id: acme-api-token
    family: source-host
    description: ACME internal API token
    keywords: [acme_]
    pattern: '\b(acme_[a-z0-9]{32})\b'
    entropy: 3.0
    max_len: 64
"#,
    )
    .unwrap();
    let text = "ACME=acme_0f3k9x2m4q7r8t1v5w6y0z2b4d6f8h1j\n";
    let findings = scan_bytes(&rules, text.as_bytes());
    assert_eq!(ids(&findings), ["acme-api-token"]);
    assert_eq!(findings[0].family, gitgate_scan::Family::SourceHost);
    assert_eq!(
        rules.rule("acme-api-token").unwrap().description(),
        "ACME internal API token"
    );
}

#[test]
fn a_custom_rule_without_a_group_reports_the_whole_match() {
    let rules =
        compile("rules:\n  - id: x-key\n    keywords: [XK-]\n    pattern: 'XK-[0-9]{12}'\n")
            .unwrap();
    let findings = scan_bytes(&rules, b"id XK-123456789012 end");
    assert_eq!(findings[0].secret, 3..18);
    assert_eq!(findings[0].family, gitgate_scan::Family::Custom);
}

#[test]
fn a_disabled_built_in_rule_stops_reporting() {
    let (token, _) = fakes::token("slack-bot-token", &mut Rng::new(1)).unwrap();
    let text = format!("notify with {token}\n");
    assert_eq!(
        ids(&scan_bytes(&RuleSet::builtin().unwrap(), text.as_bytes())),
        ["slack-bot-token"]
    );
    let rules = compile("disable: [slack-bot-token]").unwrap();
    assert!(scan_bytes(&rules, text.as_bytes()).is_empty());
    assert!(rules.rule("slack-bot-token").is_none());
}

#[test]
fn an_override_replaces_a_built_in_pattern_and_keywords() {
    let rules = compile(
        r#"
overrides:
  gitlab-pat:
    keywords: [glpat-, gl-internal-]
    pattern: '\b((?:glpat|gl-internal)-[0-9A-Za-z_-]{20})(?:[^0-9A-Za-z_-]|$)'
"#,
    )
    .unwrap();
    let findings = scan_bytes(&rules, b"token gl-internal-abcdefghij0123456789 here");
    assert_eq!(ids(&findings), ["gitlab-pat"]);
}

#[test]
fn an_override_raises_an_entropy_floor() {
    let text = b"SKaaaaaaaaaaaaaaaabbbbbbbbbbbbbbbb1 SK0123456789abcdef0123456789abcdef";
    let default = scan_bytes(&RuleSet::builtin().unwrap(), text);
    assert_eq!(default.len(), 1);
    let strict = compile("overrides:\n  twilio-api-key:\n    entropy: 4.5\n").unwrap();
    assert!(scan_bytes(&strict, text).is_empty());
}

#[test]
fn unknown_fields_are_refused_by_the_yaml_types() {
    let err = serde_norway::from_str::<ScanConfig>("disabled: [x]").unwrap_err();
    assert!(err.to_string().contains("disabled"), "{err}");
    let err = serde_norway::from_str::<ScanConfig>(
        "rules:\n  - id: a-b\n    keywords: [ab]\n    pattern: ab\n    entropie: 3\n",
    )
    .unwrap_err();
    assert!(err.to_string().contains("entropie"), "{err}");
}

fn error(yaml: &str) -> ConfigError {
    compile(yaml).expect_err("configuration must be refused")
}

#[test]
fn disabling_an_unknown_rule_names_the_list_entry() {
    let err = error("disable: [github-pat-classic, no-such-rule]");
    assert_eq!(
        err,
        ConfigError::UnknownRule {
            field: "disable[1]".into(),
            rule: "no-such-rule".into()
        }
    );
    assert_eq!(
        err.to_string(),
        "disable[1]: no built-in rule is named \"no-such-rule\""
    );
}

#[test]
fn overriding_an_unknown_rule_names_the_override() {
    let err = error("overrides:\n  nope:\n    entropy: 3\n");
    assert!(matches!(err, ConfigError::UnknownRule { ref field, .. } if field == "overrides.nope"));
}

#[test]
fn a_pattern_that_does_not_parse_names_the_rule_and_field() {
    let err = error("rules:\n  - id: broken\n    keywords: [ab]\n    pattern: 'ab(['\n");
    match &err {
        ConfigError::InvalidPattern { field, rule, .. } => {
            assert_eq!(
                (field.as_str(), rule.as_str()),
                ("rules[0].pattern", "broken")
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(
        err.to_string()
            .starts_with("rules[0].pattern: pattern of rule \"broken\"")
    );
    let err = error("overrides:\n  jwt:\n    pattern: '(unclosed'\n");
    assert!(
        matches!(err, ConfigError::InvalidPattern { ref field, .. } if field == "overrides.jwt.pattern")
    );
}

#[test]
fn a_pattern_with_unicode_classes_is_refused() {
    let err = error("rules:\n  - id: uni\n    keywords: [ab]\n    pattern: '(?u)ab\\w+'\n");
    assert!(
        matches!(err, ConfigError::UnicodePattern { ref rule, .. } | ConfigError::InvalidPattern { ref rule, .. } if rule == "uni"),
        "{err:?}"
    );
    let err = error("rules:\n  - id: uni\n    keywords: [ab]\n    pattern: '(?u:\\b)ab'\n");
    assert!(matches!(
        err,
        ConfigError::UnicodePattern { .. } | ConfigError::InvalidPattern { .. }
    ));
}

#[test]
fn rule_ids_must_be_well_formed_and_unique() {
    let err = error("rules:\n  - id: Bad_Id\n    keywords: [ab]\n    pattern: ab\n");
    assert_eq!(
        err,
        ConfigError::InvalidRuleId {
            field: "rules[0].id".into(),
            rule: "Bad_Id".into()
        }
    );
    let err = error("rules:\n  - id: jwt\n    keywords: [ab]\n    pattern: ab\n");
    assert!(matches!(err, ConfigError::DuplicateRule { .. }));
    let err = error(
        "rules:\n  - id: a-1\n    keywords: [ab]\n    pattern: ab\n  - id: a-1\n    keywords: [ab]\n    pattern: ab\n",
    );
    assert_eq!(
        err,
        ConfigError::DuplicateRule {
            field: "rules[1].id".into(),
            rule: "a-1".into()
        }
    );
}

#[test]
fn keywords_secret_groups_entropy_and_lengths_are_checked() {
    let err = error("rules:\n  - id: k\n    keywords: []\n    pattern: ab\n");
    assert_eq!(
        err,
        ConfigError::NoKeywords {
            field: "rules[0].keywords".into(),
            rule: "k".into()
        }
    );
    let err = error("rules:\n  - id: k\n    keywords: [a]\n    pattern: ab\n");
    assert!(
        matches!(err, ConfigError::KeywordLength { ref field, .. } if field == "rules[0].keywords[0]")
    );
    let err =
        error("rules:\n  - id: k\n    keywords: [ab]\n    pattern: '(a)b'\n    secret_group: 2\n");
    assert_eq!(
        err,
        ConfigError::SecretGroupOutOfRange {
            field: "rules[0].secret_group".into(),
            rule: "k".into(),
            group: 2,
            groups: 1
        }
    );
    let err = error("rules:\n  - id: k\n    keywords: [ab]\n    pattern: ab\n    entropy: 9\n");
    assert!(
        matches!(err, ConfigError::InvalidEntropy { ref field, .. } if field == "rules[0].entropy")
    );
    let err =
        error("rules:\n  - id: k\n    keywords: [ab]\n    pattern: ab\n    max_len: 100000\n");
    assert!(
        matches!(err, ConfigError::LengthOutOfRange { ref field, .. } if field == "rules[0].max_len")
    );
    let err = error("overrides:\n  jwt:\n    max_len: 0\n");
    assert!(
        matches!(err, ConfigError::LengthOutOfRange { ref field, ref rule, .. } if field == "overrides.jwt.max_len" && rule == "jwt")
    );
}

#[test]
fn allowlist_entries_and_the_fingerprint_key_are_checked() {
    let err = error("allowlist:\n  regexes: ['ok', '(']\n");
    assert!(
        matches!(err, ConfigError::InvalidAllowlistRegex { ref field, .. } if field == "allowlist.regexes[1]")
    );
    let err = error("allowlist:\n  fingerprints: ['xyz']\n");
    assert_eq!(
        err,
        ConfigError::InvalidFingerprint {
            field: "allowlist.fingerprints[0]".into(),
            value: "xyz".into()
        }
    );
    let err = error("fingerprint_key: short\n");
    assert_eq!(err, ConfigError::FingerprintKeyTooShort { len: 5, min: 16 });
}

#[test]
fn the_fingerprint_key_changes_fingerprints() {
    let (token, _) = fakes::token("groq-api-key", &mut Rng::new(2)).unwrap();
    let a = scan_bytes(
        &compile("fingerprint_key: first key, long enough\n").unwrap(),
        token.as_bytes(),
    );
    let b = scan_bytes(
        &compile("fingerprint_key: second key, long enough\n").unwrap(),
        token.as_bytes(),
    );
    assert_ne!(a[0].fingerprint, b[0].fingerprint);
    assert_eq!(a[0].fingerprint.to_string().len(), 32);
}
