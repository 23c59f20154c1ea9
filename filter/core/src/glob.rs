//! Globs over repository paths, deciding which repositories are gated.
//!
//! A pattern is a `/`-separated list of segments. In a segment, `*` matches any run of
//! characters other than `/` and `?` exactly one such character; a segment that is exactly `**`
//! matches zero or more whole segments. So `*.git` matches `demo.git` but not `org/app.git`,
//! `org/**` matches `org/app.git` and `org/team/app.git`, and `**` matches everything.

use thiserror::Error;

/// A pattern that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum GlobError {
    /// The pattern is empty.
    #[error("empty pattern")]
    Empty,
    /// A segment is empty (leading, trailing or doubled `/`).
    #[error("pattern {pattern:?} has an empty segment")]
    EmptySegment {
        /// The pattern.
        pattern: String,
    },
    /// `**` inside a segment with other characters.
    #[error("pattern {pattern:?} uses ** inside a segment; ** must be a whole segment")]
    MisplacedDoubleStar {
        /// The pattern.
        pattern: String,
    },
    /// A `.` or `..` segment, which no normalized path has.
    #[error("pattern {pattern:?} has a . or .. segment")]
    DotSegment {
        /// The pattern.
        pattern: String,
    },
}

/// One segment of a pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    /// `**`: any number of whole segments.
    AnyDepth,
    /// A segment with optional `*` and `?` wildcards.
    Pattern(Vec<char>),
}

/// A compiled repository glob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoGlob {
    pattern: String,
    segments: Vec<Segment>,
}

impl RepoGlob {
    /// Compiles `pattern`.
    pub fn new(pattern: &str) -> Result<RepoGlob, GlobError> {
        if pattern.is_empty() {
            return Err(GlobError::Empty);
        }
        let mut segments = Vec::new();
        for segment in pattern.split('/') {
            let owned = || pattern.to_owned();
            match segment {
                "" => return Err(GlobError::EmptySegment { pattern: owned() }),
                "." | ".." => return Err(GlobError::DotSegment { pattern: owned() }),
                "**" => segments.push(Segment::AnyDepth),
                s if s.contains("**") => {
                    return Err(GlobError::MisplacedDoubleStar { pattern: owned() });
                }
                s => segments.push(Segment::Pattern(s.chars().collect())),
            }
        }
        Ok(RepoGlob {
            pattern: pattern.to_owned(),
            segments,
        })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.pattern
    }

    /// True when `path` (a normalized repository path without leading `/`) matches.
    pub fn matches(&self, path: &str) -> bool {
        let parts: Vec<&str> = if path.is_empty() {
            Vec::new()
        } else {
            path.split('/').collect()
        };
        // reachable[j]: the segments handled so far can consume exactly parts[..j].
        let mut reachable = vec![false; parts.len() + 1];
        if let Some(first) = reachable.first_mut() {
            *first = true;
        }
        for segment in &self.segments {
            let mut next = vec![false; parts.len() + 1];
            match segment {
                Segment::AnyDepth => {
                    let mut seen = false;
                    for (j, slot) in next.iter_mut().enumerate() {
                        seen |= reachable.get(j).copied().unwrap_or(false);
                        *slot = seen;
                    }
                }
                Segment::Pattern(pattern) => {
                    for (j, part) in parts.iter().enumerate() {
                        if reachable.get(j).copied().unwrap_or(false)
                            && segment_matches(pattern, part)
                            && let Some(slot) = next.get_mut(j + 1)
                        {
                            *slot = true;
                        }
                    }
                }
            }
            reachable = next;
        }
        reachable.last().copied().unwrap_or(false)
    }
}

/// Wildcard match of one segment: `*` any run, `?` one character, everything else literal.
fn segment_matches(pattern: &[char], text: &str) -> bool {
    let text: Vec<char> = text.chars().collect();
    // matched[j]: the pattern prefix handled so far matches text[..j].
    let mut matched = vec![false; text.len() + 1];
    if let Some(first) = matched.first_mut() {
        *first = true;
    }
    for &p in pattern {
        let mut next = vec![false; text.len() + 1];
        match p {
            '*' => {
                let mut seen = false;
                for (j, slot) in next.iter_mut().enumerate() {
                    seen |= matched.get(j).copied().unwrap_or(false);
                    *slot = seen;
                }
            }
            _ => {
                for (j, &c) in text.iter().enumerate() {
                    if matched.get(j).copied().unwrap_or(false)
                        && (p == '?' || p == c)
                        && let Some(slot) = next.get_mut(j + 1)
                    {
                        *slot = true;
                    }
                }
            }
        }
        matched = next;
    }
    matched.last().copied().unwrap_or(false)
}

/// True when any glob of `globs` matches `path`.
pub fn any_matches(globs: &[RepoGlob], path: &str) -> bool {
    globs.iter().any(|glob| glob.matches(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matches(pattern: &str, path: &str) -> bool {
        RepoGlob::new(pattern).expect("valid pattern").matches(path)
    }

    #[test]
    fn double_star_matches_every_repository() {
        assert!(matches("**", "demo.git"));
        assert!(matches("**", "org/team/app.git"));
    }

    #[test]
    fn a_single_star_stays_within_one_segment() {
        assert!(matches("*.git", "demo.git"));
        assert!(!matches("*.git", "org/app.git"));
        assert!(matches("org/*.git", "org/app.git"));
        assert!(!matches("org/*.git", "org/team/app.git"));
    }

    #[test]
    fn double_star_spans_zero_or_more_segments() {
        assert!(matches("org/**/app.git", "org/app.git"));
        assert!(matches("org/**/app.git", "org/a/b/app.git"));
        assert!(!matches("org/**/app.git", "other/app.git"));
        assert!(matches("org/**", "org/x.git"));
        assert!(!matches("org/**", "organisation/x.git"));
    }

    #[test]
    fn literals_must_match_exactly() {
        assert!(matches("demo.git", "demo.git"));
        assert!(!matches("demo.git", "demo.gitx"));
        assert!(!matches("demo.git", "x/demo.git"));
    }

    #[test]
    fn question_mark_matches_one_character() {
        assert!(matches("app?.git", "app1.git"));
        assert!(!matches("app?.git", "app.git"));
    }

    #[test]
    fn stars_backtrack_inside_a_segment() {
        assert!(matches("*a*b*", "xxaxxbxx"));
        assert!(!matches("*a*b*", "xxbxxaxx"));
    }

    #[test]
    fn bad_patterns_are_refused() {
        assert_eq!(RepoGlob::new(""), Err(GlobError::Empty));
        assert!(matches!(
            RepoGlob::new("/x"),
            Err(GlobError::EmptySegment { .. })
        ));
        assert!(matches!(
            RepoGlob::new("a//b"),
            Err(GlobError::EmptySegment { .. })
        ));
        assert!(matches!(
            RepoGlob::new("a**"),
            Err(GlobError::MisplacedDoubleStar { .. })
        ));
        assert!(matches!(
            RepoGlob::new("../x"),
            Err(GlobError::DotSegment { .. })
        ));
    }
}
