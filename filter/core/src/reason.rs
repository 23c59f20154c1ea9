//! Reasons for refused ref updates, made safe for git's report-status.
//!
//! A reason travels as `ng <ref> <reason>\n` (gitprotocol-pack, "Report Status"). It must be one
//! line without NUL, and short. Over HTTP the status then passes through git's transport helper,
//! which turns some exact reason strings back into local states (git-smart-http.md §4): `ng
//! refs/heads/main up to date` makes `git push` print "Everything up-to-date" and hide the
//! refusal. Every reason built here starts with [`CODE_PREFIX`], so it can never equal or start
//! with one of [`HELPER_KEYWORDS`].

use std::fmt;

/// The prefix of every gitgate code, and so of every reason.
pub const CODE_PREFIX: &str = "gitgate:";

/// The most bytes a reason may have.
pub const MAX_REASON_LEN: usize = 300;

/// Reason strings git's transport helper re-reads as local states (transport-helper.c,
/// git-smart-http.md §4). A reason must never be, or start with, one of them.
pub const HELPER_KEYWORDS: [&str; 10] = [
    "no match",
    "up to date",
    "non-fast forward",
    "already exists",
    "fetch first",
    "needs force",
    "stale info",
    "remote ref updated since checkout",
    "forced update",
    "expecting report",
];

/// A reason that is safe to put after `ng <ref> `: one line, bounded, starting with `gitgate:`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reason(String);

impl Reason {
    /// Builds `<code> <detail>` from a code (`gitgate:<kind>:<slug>`) and free text.
    ///
    /// A code without the `gitgate:` prefix gets it, so the invariant holds for any input; the
    /// detail is flattened to one line and the whole is cut to [`MAX_REASON_LEN`] bytes.
    pub fn new(code: &str, detail: &str) -> Reason {
        let code = one_line(code, MAX_REASON_LEN);
        let mut text = if code.starts_with(CODE_PREFIX) {
            code
        } else {
            format!("{CODE_PREFIX}{code}")
        };
        let detail = one_line(detail, MAX_REASON_LEN);
        if !detail.is_empty() {
            text.push(' ');
            text.push_str(&detail);
        }
        Reason(truncate(&text, MAX_REASON_LEN))
    }

    /// The reason text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// True when `text` could be misread by git's transport helper: it equals or starts with one of
/// [`HELPER_KEYWORDS`], or starts with a double quote (the helper unquotes those).
pub fn is_misreadable(text: &str) -> bool {
    text.starts_with('"')
        || HELPER_KEYWORDS
            .iter()
            .any(|keyword| text.starts_with(keyword))
}

/// Flattens `text` to one line of at most `max` bytes: every control character (NUL, CR, LF,
/// tab, ...) becomes a space, runs of spaces shrink to one, and the ends are trimmed.
pub fn one_line(text: &str, max: usize) -> String {
    let mut flat = String::with_capacity(text.len().min(max));
    let mut last_was_space = true;
    for ch in text.chars() {
        let ch = if ch.is_control() || ch.is_whitespace() {
            ' '
        } else {
            ch
        };
        if ch == ' ' {
            if last_was_space {
                continue;
            }
            last_was_space = true;
        } else {
            last_was_space = false;
        }
        flat.push(ch);
        if flat.len() > max.saturating_add(4) {
            break;
        }
    }
    let flat = flat.trim_end();
    truncate(flat, max)
}

/// Cuts `text` to at most `max` bytes on a char boundary, marking a cut with `...`.
fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    const MARK: &str = "...";
    let keep = crate::pktline::floor_char_boundary(text, max.saturating_sub(MARK.len()));
    let mut cut = text.get(..keep).unwrap_or_default().trim_end().to_owned();
    cut.push_str(MARK);
    cut
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reason_is_the_code_then_the_detail() {
        let reason = Reason::new("gitgate:deny:protected", "main is protected");
        assert_eq!(reason.as_str(), "gitgate:deny:protected main is protected");
    }

    #[test]
    fn a_reason_never_holds_a_newline_or_nul() {
        let reason = Reason::new("gitgate:deny:x", "line one\nline two\0\r\tend");
        assert_eq!(reason.as_str(), "gitgate:deny:x line one line two end");
    }

    #[test]
    fn a_reason_is_bounded_and_cut_on_a_char_boundary() {
        let reason = Reason::new("gitgate:deny:x", &"ü".repeat(1000));
        assert!(reason.as_str().len() <= MAX_REASON_LEN);
        assert!(reason.as_str().ends_with("..."));
    }

    #[test]
    fn a_code_without_the_prefix_gets_it() {
        assert_eq!(Reason::new("up to date", "").as_str(), "gitgate:up to date");
    }

    #[test]
    fn no_reason_can_be_misread_by_the_transport_helper() {
        for keyword in HELPER_KEYWORDS {
            assert!(is_misreadable(keyword));
            for code in [keyword, "", "\"quoted\""] {
                let reason = Reason::new(code, keyword);
                assert!(!is_misreadable(reason.as_str()), "{reason}");
                assert!(reason.as_str().starts_with(CODE_PREFIX));
            }
        }
    }

    #[test]
    fn one_line_collapses_whitespace_and_trims() {
        assert_eq!(one_line("  a \n\n b  ", 100), "a b");
        assert_eq!(one_line("", 100), "");
    }
}
