//! Secrets in the short strings a push carries outside its blobs: ref names, push options,
//! push certificate lines, tree entry names, commit subjects and authors.
//!
//! The gate scans the first three before it asks the approval service (a finding refuses the
//! push there), and masks every such string before it goes into a finding, a log line or a
//! record, with the same replacement response masking writes (`ghp_****[gitgate:<rule>]`,
//! [`crate::mask::style`]), so that a value never leaves the filter through them.

use std::borrow::Cow;
use std::sync::Arc;

use gitgate_scan::{RuleSet, contains_secret, scan_bytes};

use crate::mask::config::MaskStyleConfig;
use crate::mask::style::MaskStyle;
use crate::receive_pack::CommandSection;

/// The rules and the mask style, compiled once per rule set.
#[derive(Debug)]
pub struct Redactor {
    rules: Arc<RuleSet>,
    style: MaskStyle,
}

impl Redactor {
    /// A redactor for `rules`, with the default mask style.
    pub fn new(rules: Arc<RuleSet>) -> Redactor {
        let style = MaskStyle::new(&MaskStyleConfig::default(), &rules);
        Redactor { rules, style }
    }

    /// The rule of the first secret in `text`, if it holds one.
    pub fn first_rule(&self, text: &[u8]) -> Option<Arc<str>> {
        contains_secret(&self.rules, text).map(|f| f.rule_id)
    }

    /// `text` with every secret value replaced by its mask; borrowed when nothing was found.
    pub fn mask<'a>(&self, text: &'a str) -> Cow<'a, str> {
        match self.mask_bytes(text.as_bytes()) {
            Some(masked) => Cow::Owned(masked),
            None => Cow::Borrowed(text),
        }
    }

    /// `text` (any bytes, read as lossy UTF-8) with every secret value masked; `None` when it
    /// holds no secret.
    pub fn mask_bytes(&self, text: &[u8]) -> Option<String> {
        let mut findings = scan_bytes(&self.rules, text);
        if findings.is_empty() {
            return None;
        }
        findings.sort_by_key(|f| (f.secret.start, std::cmp::Reverse(f.secret.end)));
        let mut out = Vec::with_capacity(text.len());
        let mut at = 0usize;
        for finding in &findings {
            let start = usize::try_from(finding.secret.start).unwrap_or(usize::MAX);
            let end = usize::try_from(finding.secret.end).unwrap_or(usize::MAX);
            // Overlapping matches of two rules: the first one masked covers the value.
            let (Some(before), Some(secret)) = (text.get(at..start), text.get(start..end)) else {
                continue;
            };
            out.extend_from_slice(before);
            let prefix = self.style.prefix_len(&finding.rule_id, secret);
            let kept = secret.get(..prefix).unwrap_or_default();
            out.extend_from_slice(&self.style.render(&finding.rule_id, kept));
            at = end;
        }
        out.extend_from_slice(text.get(at..).unwrap_or_default());
        Some(String::from_utf8_lossy(&out).into_owned())
    }

    /// [`Redactor::mask`], owned.
    pub fn masked(&self, text: &str) -> String {
        self.mask(text).into_owned()
    }
}

/// Where in the command section a secret was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommandPlace {
    /// The ref name of a command.
    RefName,
    /// A push option (`git push -o`), the bypass reason included.
    PushOption,
    /// A line of the push certificate of a signed push.
    PushCertificate,
}

impl CommandPlace {
    /// The place in words, for the refusal.
    pub fn describe(self) -> &'static str {
        match self {
            CommandPlace::RefName => "a ref name",
            CommandPlace::PushOption => "a push option",
            CommandPlace::PushCertificate => "the push certificate",
        }
    }
}

/// A secret in the command section: its rule and where it is (never the value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandSecret {
    /// The rule that matched.
    pub rule: Arc<str>,
    /// Where it is.
    pub place: CommandPlace,
}

impl Redactor {
    /// The first secret in the ref names, push options or push certificate of `section`.
    /// These reach the server's hooks and refs, and the approval service, so they are scanned
    /// before anything is asked.
    pub fn command_secret(&self, section: &CommandSection) -> Option<CommandSecret> {
        let found = |place: CommandPlace| move |rule| CommandSecret { rule, place };
        section
            .commands
            .iter()
            .find_map(|c| self.first_rule(c.refname.as_bytes()))
            .map(found(CommandPlace::RefName))
            .or_else(|| {
                section
                    .push_options
                    .iter()
                    .find_map(|o| self.first_rule(o.as_bytes()))
                    .map(found(CommandPlace::PushOption))
            })
            .or_else(|| {
                self.first_rule(&section.certificate)
                    .map(found(CommandPlace::PushCertificate))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gitgate_scan::fake::{FakeRng, github_classic};

    fn redactor() -> Redactor {
        Redactor::new(Arc::new(RuleSet::builtin().expect("builtin rules")))
    }

    #[test]
    fn a_token_in_a_short_string_is_masked_with_its_rule() {
        let token = github_classic(&mut FakeRng::new(7));
        let text = format!("refs/heads/{token}");
        let masked = redactor().masked(&text);
        assert!(!masked.contains(&token), "{masked}");
        assert_eq!(masked, "refs/heads/ghp_****[gitgate:github-pat-classic]");
        assert_eq!(
            redactor().first_rule(text.as_bytes()).as_deref(),
            Some("github-pat-classic")
        );
    }

    #[test]
    fn a_string_without_a_secret_is_left_as_it_is() {
        let redactor = redactor();
        assert!(matches!(
            redactor.mask("refs/heads/main"),
            Cow::Borrowed("refs/heads/main")
        ));
        assert_eq!(redactor.first_rule(b"refs/heads/main"), None);
    }

    #[test]
    fn two_tokens_are_both_masked() {
        let mut rng = FakeRng::new(9);
        let (a, b) = (github_classic(&mut rng), github_classic(&mut rng));
        let masked = redactor().masked(&format!("{a} and {b}"));
        assert!(!masked.contains(&a) && !masked.contains(&b), "{masked}");
        assert_eq!(masked.matches("[gitgate:github-pat-classic]").count(), 2);
    }
}
