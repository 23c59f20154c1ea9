//! What a masked secret is replaced with: the token format's public prefix, a fill and a tag
//! naming the rule, e.g. `ghp_****[gitgate:github-pat-classic]`.
//!
//! The prefix is kept only when it is part of the format rather than of the value: a literal
//! keyword of a specific (non-generic) rule that the rule's pattern puts at the start of the
//! secret (`ghp_`, `AKIA`, `xoxb-`, `-----BEGIN RSA PRIVATE KEY-----`). A generic rule's keyword
//! (`password`, `token`) is never kept, even when a value happens to start with it.

use std::collections::HashMap;

use gitgate_scan::{Rule, RuleSet};

use super::config::{MaskStyleConfig, RULE_PLACEHOLDER};

/// The compiled mask style, with the public prefixes of every rule.
#[derive(Debug, Clone)]
pub(crate) struct MaskStyle {
    fill: Box<[u8]>,
    /// The tag before and after `{rule}`; `None` when the tag does not name the rule.
    tag: (Box<[u8]>, Option<Box<[u8]>>),
    /// Public prefixes by rule id, longest first. Every one is printable ASCII without `"`
    /// and `\`, so it may be written into JSON strings and pkt-lines as it is.
    prefixes: HashMap<String, Vec<Box<[u8]>>>,
}

impl MaskStyle {
    /// Compiles a checked style for `rules`.
    pub(crate) fn new(config: &MaskStyleConfig, rules: &RuleSet) -> MaskStyle {
        let tag = match config.tag.split_once(RULE_PLACEHOLDER) {
            Some((before, after)) => (before.as_bytes().into(), Some(after.as_bytes().into())),
            None => (config.tag.as_bytes().into(), None),
        };
        let prefixes = if config.keep_prefix {
            rules
                .rules()
                .iter()
                .map(|rule| {
                    (
                        rule.id().to_owned(),
                        format_prefixes(rule, config.max_prefix),
                    )
                })
                .filter(|(_, list)| !list.is_empty())
                .collect()
        } else {
            HashMap::new()
        };
        MaskStyle {
            fill: config.fill.as_bytes().into(),
            tag,
            prefixes,
        }
    }

    /// How many leading bytes of `secret` are the public prefix of `rule_id`'s format.
    pub(crate) fn prefix_len(&self, rule_id: &str, secret: &[u8]) -> usize {
        self.prefixes
            .get(rule_id)
            .and_then(|list| list.iter().find(|p| secret.starts_with(p)))
            .map_or(0, |p| p.len())
    }

    /// The replacement for a secret of `rule_id` whose public prefix is `prefix`.
    pub(crate) fn render(&self, rule_id: &str, prefix: &[u8]) -> Box<[u8]> {
        let (before, after) = &self.tag;
        let mut out =
            Vec::with_capacity(prefix.len() + self.fill.len() + before.len() + rule_id.len() + 8);
        out.extend_from_slice(prefix);
        out.extend_from_slice(&self.fill);
        out.extend_from_slice(before);
        if let Some(after) = after {
            out.extend_from_slice(rule_id.as_bytes());
            out.extend_from_slice(after);
        }
        out.into_boxed_slice()
    }
}

/// The fixed beginnings of `rule`'s token format, longest first: the keywords its pattern writes
/// as a literal at the start of a group or alternative (`(?:AKIA|ASIA)`), and the literal its
/// capture group starts with (`(sk_` of `(sk_(?:live|test)_...)`).
fn format_prefixes(rule: &Rule, max: usize) -> Vec<Box<[u8]>> {
    if rule.is_generic() {
        return Vec::new();
    }
    let pattern = unescape(rule.pattern());
    let literal = group_literal(rule.pattern()).filter(|l| l.len() >= MIN_PREFIX_LEN);
    let mut found: Vec<String> = rule
        .keywords()
        .iter()
        .filter(|k| {
            // A keyword that extends the group's literal (`sk_live_` after `(sk_`) is the
            // format's too.
            literal.as_deref().is_some_and(|l| k.starts_with(l))
                || ["(", "(?:", "|"]
                    .iter()
                    .any(|lead| pattern.contains(&format!("{lead}{k}")))
        })
        .cloned()
        .collect();
    found.extend(literal);
    let mut found: Vec<Box<[u8]>> = found
        .into_iter()
        .filter(|p| p.len() >= MIN_PREFIX_LEN && p.len() <= max && is_plain(p))
        .map(|p| p.into_bytes().into_boxed_slice())
        .collect();
    found.sort_by_key(|p| std::cmp::Reverse(p.len()));
    found.dedup();
    found
}

/// A prefix shorter than this says nothing about the format.
const MIN_PREFIX_LEN: usize = 2;

/// The literal text the first capture group of `pattern` starts with, if any.
fn group_literal(pattern: &str) -> Option<String> {
    let bytes = pattern.as_bytes();
    let mut i = 0;
    let open = loop {
        match bytes.get(i)? {
            b'\\' => i += 2,
            b'(' if bytes.get(i + 1) != Some(&b'?') => break i + 1,
            _ => i += 1,
        }
    };
    let mut literal = String::new();
    let mut j = open;
    loop {
        let (ch, next) = match bytes.get(j) {
            Some(b'\\') => match bytes.get(j + 1) {
                Some(&c) if c.is_ascii_punctuation() => (c, j + 2),
                _ => break,
            },
            Some(&c) if (b' '..=b'~').contains(&c) && !b".+*?()|[]{}^$".contains(&c) => (c, j + 1),
            _ => break,
        };
        if matches!(bytes.get(next), Some(b'?' | b'*' | b'{')) {
            // The character is optional or repeated: the literal ends before it.
            break;
        }
        literal.push(char::from(ch));
        j = next;
    }
    (!literal.is_empty()).then_some(literal)
}

/// The pattern with `\` removed before punctuation, so `hvs\.` reads as the literal `hvs.`.
fn unescape(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len());
    let mut chars = pattern.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\'
            && let Some(&next) = chars.peek()
            && next.is_ascii_punctuation()
        {
            out.push(next);
            chars.next();
            continue;
        }
        out.push(c);
    }
    out
}

/// Printable ASCII without the characters a JSON string would need escaped.
fn is_plain(text: &str) -> bool {
    text.bytes()
        .all(|b| (b' '..=b'~').contains(&b) && b != b'"' && b != b'\\')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn style(config: &MaskStyleConfig) -> MaskStyle {
        let rules = RuleSet::builtin().expect("built-in rules compile");
        MaskStyle::new(config, &rules)
    }

    #[test]
    fn token_formats_keep_their_public_prefix() {
        let style = style(&MaskStyleConfig::default());
        let token = b"ghp_0123456789abcdefghijABCDEFGHIJ012345";
        assert_eq!(style.prefix_len("github-pat-classic", token), 4);
        assert_eq!(
            style.prefix_len("aws-access-key-id", b"AKIAZZZZZZZZZZZZZZZZ"),
            4
        );
        assert_eq!(style.prefix_len("slack-bot-token", b"xoxb-1-2-3"), 5);
        assert_eq!(style.prefix_len("stripe-secret-key", b"sk_live_abc"), 8);
        assert_eq!(
            &*style.render("github-pat-classic", &token[..4]),
            b"ghp_****[gitgate:github-pat-classic]"
        );
    }

    #[test]
    fn the_literal_start_of_the_capture_group_is_a_prefix() {
        assert_eq!(
            group_literal(r"\b(sk_(?:live|test)_[0-9]{24})\b").as_deref(),
            Some("sk_")
        );
        assert_eq!(group_literal(r"\b(hvs\.[A-Z]{9})").as_deref(), Some("hvs."));
        assert_eq!(
            group_literal(r"(-----BEGIN RSA-----[a-z])").as_deref(),
            Some("-----BEGIN RSA-----")
        );
        assert_eq!(group_literal(r"(ab?c)").as_deref(), Some("a"));
        assert_eq!(group_literal(r"((?:AKIA|ASIA)x)"), None);
        assert_eq!(group_literal(r"(?i)x:([^@]{3,})@"), None);
        assert_eq!(group_literal(r"\(no group"), None);
    }

    #[test]
    fn generic_rules_keep_no_prefix() {
        let style = style(&MaskStyleConfig::default());
        assert_eq!(
            style.prefix_len("generic-secret-quoted", b"password123456"),
            0
        );
        assert_eq!(style.prefix_len("no-such-rule", b"ghp_"), 0);
    }

    #[test]
    fn the_prefix_can_be_turned_off_and_the_tag_changed() {
        let config = MaskStyleConfig {
            keep_prefix: false,
            fill: "#".into(),
            tag: "<redacted>".into(),
            ..MaskStyleConfig::default()
        };
        let style = style(&config);
        assert_eq!(style.prefix_len("github-pat-classic", b"ghp_x"), 0);
        assert_eq!(&*style.render("github-pat-classic", b""), b"#<redacted>");
    }

    #[test]
    fn every_kept_prefix_is_safe_to_write_anywhere() {
        let style = style(&MaskStyleConfig::default());
        assert!(
            style.prefixes.len() > 40,
            "most token formats have a prefix"
        );
        for list in style.prefixes.values() {
            for prefix in list {
                assert!(prefix.iter().all(|&b| (b' '..=b'~').contains(&b)));
                assert!(!prefix.contains(&b'"') && !prefix.contains(&b'\\'));
            }
        }
    }
}
