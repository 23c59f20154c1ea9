//! What a pushed pack carries, gathered while the gate walks it: the entry counts per kind and
//! the commits it introduces, for the reviewer and the audit record ([`PackSummary`]).
//!
//! Two walks feed it:
//!
//! - with secret scanning on, the [`PackReader`](crate::pack_objects::PackReader) inflates and
//!   hashes every object and reads every commit header, so the summary is complete: each entry
//!   counted by its kind (a delta by its base's kind when the reader rebuilt it, else as an
//!   unresolved delta), and every commit with its id, parents, author and subject;
//! - with scanning off, only the [`PackFramer`](crate::pack::PackFramer) runs, which inflates
//!   each entry to find where it ends but neither hashes nor keeps its bytes. It can tell the
//!   entry count, the pack's size and each entry's stored kind, but not a delta's kind (every
//!   delta counts as unresolved) and not the commits: `commits` stays empty, because an id
//!   would cost a SHA-1 over every object and an author a header reader, which is exactly the
//!   work scanning does.
//!
//! Memory is bounded by [`SummaryBuilder::new`]'s commit cap; every commit's strings are capped
//! by [`crate::object`]'s header reader and [`MAX_SUBJECT_CHARS`].

use std::sync::Arc;

use super::redact::Redactor;
use crate::api::{CommitSummary, PackSummary};
use crate::object::{CommitInfo, ObjectId, ObjectKind};

/// Longest subject kept in a [`CommitSummary`], in characters (the wire contract's limit).
pub const MAX_SUBJECT_CHARS: usize = 200;

/// Default for the `gate.max_summary_commits` setting.
pub const DEFAULT_MAX_SUMMARY_COMMITS: u32 = 1000;

/// The most commits a summary may be configured to keep: each is a few hundred bytes, kept per
/// push for its whole life, and sent in the callout.
pub const MAX_SUMMARY_COMMITS: u32 = 100_000;

/// Gathers a [`PackSummary`] entry by entry.
#[derive(Debug, Clone)]
pub struct SummaryBuilder {
    summary: PackSummary,
    /// Commits kept at most; past it `commits_truncated` is set.
    max_commits: usize,
    /// Masks secrets in subjects and authors (they go to the service and its database
    /// whatever the findings say); `None` keeps them as the commit has them.
    redactor: Option<Arc<Redactor>>,
}

impl SummaryBuilder {
    /// A builder that keeps at most `max_commits` commits.
    pub fn new(max_commits: u32) -> SummaryBuilder {
        SummaryBuilder {
            summary: PackSummary::default(),
            max_commits: usize::try_from(max_commits).unwrap_or(usize::MAX),
            redactor: None,
        }
    }

    /// The same builder, masking every secret in subjects and authors with `redactor`.
    pub fn masking(mut self, redactor: Arc<Redactor>) -> SummaryBuilder {
        self.redactor = Some(redactor);
        self
    }

    /// Notes the entry count of the pack header.
    pub fn header(&mut self, objects: u32) {
        self.summary.objects = u64::from(objects);
    }

    /// Counts one entry by its kind; `None` for a delta whose kind was not resolved.
    pub fn entry(&mut self, kind: Option<ObjectKind>) {
        let counter = match kind {
            Some(ObjectKind::Commit) => &mut self.summary.commits_count,
            Some(ObjectKind::Tree) => &mut self.summary.trees,
            Some(ObjectKind::Blob) => &mut self.summary.blobs,
            Some(ObjectKind::Tag) => &mut self.summary.tags,
            None => &mut self.summary.unresolved_deltas,
        };
        *counter = counter.saturating_add(1);
    }

    /// Keeps a commit the pack carries, unless the cap is reached.
    pub fn commit(&mut self, id: &ObjectId, info: &CommitInfo) {
        if self.summary.commits.len() >= self.max_commits {
            self.summary.commits_truncated = true;
            return;
        }
        let author = info
            .author
            .as_ref()
            .map(|a| format!("{} <{}>", a.name, a.email))
            .unwrap_or_default();
        // Masked before the cut, so that a token across the 200th character is still found.
        let (author, subject) = match &self.redactor {
            Some(redactor) => (redactor.masked(&author), redactor.masked(&info.subject)),
            None => (author, info.subject.clone()),
        };
        self.summary.commits.push(CommitSummary {
            id: id.to_string(),
            parents: info.parents.iter().map(ObjectId::to_string).collect(),
            author,
            author_time: info.author.as_ref().and_then(|a| a.time).map(|t| t.seconds),
            subject: subject.chars().take(MAX_SUBJECT_CHARS).collect(),
        });
    }

    /// The summary of a pack of `bytes` bytes, header to trailer.
    pub fn finish(mut self, bytes: u64) -> PackSummary {
        self.summary.bytes = bytes;
        self.summary
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::object::{Signature, SignatureTime};
    use crate::receive_pack::ObjectFormat;

    fn id(byte: u8) -> ObjectId {
        ObjectId::from_raw(ObjectFormat::Sha1, &[byte; 20]).expect("20 bytes")
    }

    fn info(subject: &str) -> CommitInfo {
        CommitInfo {
            tree: Some(id(1)),
            parents: vec![id(2), id(3)],
            parent_count: 2,
            author: Some(Signature {
                name: "A U Thor".into(),
                email: "author@example.com".into(),
                time: Some(SignatureTime {
                    seconds: 1_700_000_000,
                    offset_minutes: 60,
                }),
            }),
            committer: None,
            subject: subject.into(),
        }
    }

    #[test]
    fn a_commit_is_summarised_with_its_parents_author_and_subject() {
        let mut builder = SummaryBuilder::new(10);
        builder.commit(&id(9), &info("fix the thing"));
        let summary = builder.finish(123);
        let commit = &summary.commits[0];
        assert_eq!(commit.id, "09".repeat(20));
        assert_eq!(commit.parents, vec!["02".repeat(20), "03".repeat(20)]);
        assert_eq!(commit.author, "A U Thor <author@example.com>");
        assert_eq!(commit.author_time, Some(1_700_000_000));
        assert_eq!(commit.subject, "fix the thing");
        assert_eq!(summary.bytes, 123);
    }

    #[test]
    fn tokens_in_subjects_and_authors_are_masked_whatever_the_findings() {
        use gitgate_scan::RuleSet;
        use gitgate_scan::fake::{FakeRng, github_classic};

        let mut rng = FakeRng::new(11);
        let (in_subject, in_author) = (github_classic(&mut rng), github_classic(&mut rng));
        let mut commit = info(&format!("deploy with {in_subject}"));
        if let Some(author) = &mut commit.author {
            author.name = in_author.clone();
        }
        let rules = Arc::new(RuleSet::builtin().expect("builtin rules"));
        let mut builder = SummaryBuilder::new(10).masking(Arc::new(Redactor::new(rules)));
        builder.commit(&id(9), &commit);
        let summary = builder.finish(0);
        let kept = &summary.commits[0];
        assert_eq!(
            kept.subject,
            "deploy with ghp_****[gitgate:github-pat-classic]"
        );
        assert_eq!(
            kept.author,
            "ghp_****[gitgate:github-pat-classic] <author@example.com>"
        );
        let json = serde_json::to_string(&summary).expect("summary serialises");
        assert!(!json.contains(&in_subject) && !json.contains(&in_author));
    }

    #[test]
    fn a_long_subject_is_cut_to_200_characters_not_bytes() {
        let mut builder = SummaryBuilder::new(10);
        builder.commit(&id(9), &info(&"é".repeat(300)));
        let summary = builder.finish(0);
        assert_eq!(
            summary.commits[0].subject.chars().count(),
            MAX_SUBJECT_CHARS
        );
    }

    #[test]
    fn commits_past_the_cap_are_counted_as_truncated() {
        let mut builder = SummaryBuilder::new(2);
        for n in 0..5 {
            builder.entry(Some(ObjectKind::Commit));
            builder.commit(&id(n), &info("c"));
        }
        let summary = builder.finish(0);
        assert_eq!(summary.commits.len(), 2);
        assert!(summary.commits_truncated);
        assert_eq!(summary.commits_count, 5);
    }

    #[test]
    fn entries_are_counted_per_kind() {
        let mut builder = SummaryBuilder::new(0);
        builder.header(6);
        for kind in [
            Some(ObjectKind::Commit),
            Some(ObjectKind::Tree),
            Some(ObjectKind::Blob),
            Some(ObjectKind::Blob),
            Some(ObjectKind::Tag),
            None,
        ] {
            builder.entry(kind);
        }
        let summary = builder.finish(0);
        assert_eq!(
            (
                summary.objects,
                summary.commits_count,
                summary.trees,
                summary.blobs
            ),
            (6, 1, 1, 2)
        );
        assert_eq!((summary.tags, summary.unresolved_deltas), (1, 1));
        assert!(!summary.commits_truncated && summary.commits.is_empty());
    }
}
