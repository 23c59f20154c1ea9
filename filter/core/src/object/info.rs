//! The headers of commits and tags, read as the object streams by.
//!
//! Layout (gitformat-object, "commit" and "tag"): header lines `<name> SP <value> LF`, a
//! continuation line starting with a space (as in `gpgsig`), then an empty line and the message.
//!
//! ```text
//! tree <id>                    object <id>
//! parent <id>*                 type <kind>
//! author <signature>           tag <name>
//! committer <signature>        tagger <signature>
//! <other headers>*             <other headers>*
//! LF message                   LF message
//! ```
//!
//! Only what the review UI lists is kept, and every part has a cap, so a hostile object costs a
//! few KiB whatever its size: lines longer than [`MAX_LINE`] are skipped, at most
//! [`MAX_PARENTS`] parent ids are kept, a commit's subject and a tag's message are cut at
//! [`MAX_SUBJECT`] and [`MAX_MESSAGE`] bytes. Malformed headers leave fields empty rather than
//! failing: judging objects is git's job (`fsck`), naming them is this module's.

use crate::object::{ObjectId, ObjectKind};
use crate::receive_pack::ObjectFormat;

/// Longest header line kept; longer lines (a huge name, a `gpgsig` line) are skipped.
pub const MAX_LINE: usize = 4096;

/// Most parent ids kept for one commit (an octopus merge may list more; they are counted).
pub const MAX_PARENTS: usize = 256;

/// Longest commit subject kept, in bytes.
pub const MAX_SUBJECT: usize = 1024;

/// Longest tag message kept, in bytes.
pub const MAX_MESSAGE: usize = 4096;

/// A person and a time, as in an `author`, `committer` or `tagger` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature {
    /// The name before ` <` (lossy UTF-8).
    pub name: String,
    /// The address between `<` and `>` (lossy UTF-8).
    pub email: String,
    /// The time after `>`, when it parses.
    pub time: Option<SignatureTime>,
}

/// The `<seconds> <+hhmm>` part of a signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignatureTime {
    /// Seconds since the Unix epoch.
    pub seconds: i64,
    /// The time zone's offset from UTC in minutes (`+0200` is 120).
    pub offset_minutes: i32,
}

/// What a commit says about itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CommitInfo {
    /// The `tree` line.
    pub tree: Option<ObjectId>,
    /// The `parent` lines, in order; at most [`MAX_PARENTS`].
    pub parents: Vec<ObjectId>,
    /// How many `parent` lines there were (more than `parents.len()` past the cap).
    pub parent_count: usize,
    /// The `author` line.
    pub author: Option<Signature>,
    /// The `committer` line.
    pub committer: Option<Signature>,
    /// The first non-empty line of the message, without its LF: its first [`MAX_SUBJECT`]
    /// bytes, as lossy UTF-8.
    pub subject: String,
}

/// What an annotated tag says about itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TagInfo {
    /// The `object` line: what the tag points at.
    pub object: Option<ObjectId>,
    /// The `type` line: the kind of that object.
    pub target_kind: Option<ObjectKind>,
    /// The `tag` line: the tag's name (lossy UTF-8).
    pub name: String,
    /// The `tagger` line.
    pub tagger: Option<Signature>,
    /// The message, with any signature block after it: its first [`MAX_MESSAGE`] bytes, as
    /// lossy UTF-8.
    pub message: String,
    /// True when the message was longer than [`MAX_MESSAGE`].
    pub message_truncated: bool,
}

impl TagInfo {
    /// The first line of the message.
    pub fn subject(&self) -> &str {
        self.message.lines().next().unwrap_or_default()
    }
}

/// The header of a commit or a tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ObjectInfo {
    /// A commit's.
    Commit(CommitInfo),
    /// A tag's.
    Tag(TagInfo),
}

impl ObjectInfo {
    /// Reads the header of a whole commit or tag; `None` for trees and blobs.
    pub fn parse(format: ObjectFormat, kind: ObjectKind, data: &[u8]) -> Option<ObjectInfo> {
        let mut reader = InfoReader::new(format, kind)?;
        reader.update(data);
        Some(reader.finish())
    }
}

/// Where the reader is in the object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    /// Header lines, up to the empty line.
    Headers,
    /// The message, up to its cap.
    Message,
    /// Everything wanted has been read.
    Done,
}

/// A streaming reader of a commit's or tag's header.
#[derive(Debug)]
pub(crate) struct InfoReader {
    format: ObjectFormat,
    info: ObjectInfo,
    part: Part,
    /// The current line, without its LF; at most [`MAX_LINE`] bytes.
    line: Vec<u8>,
    /// The current line is longer than [`MAX_LINE`] and is being skipped.
    skipping: bool,
    /// A tag's message so far; at most [`MAX_MESSAGE`] bytes.
    message: Vec<u8>,
}

impl InfoReader {
    /// A reader for an object of `kind`; `None` for trees and blobs.
    pub(crate) fn new(format: ObjectFormat, kind: ObjectKind) -> Option<InfoReader> {
        let info = match kind {
            ObjectKind::Commit => ObjectInfo::Commit(CommitInfo::default()),
            ObjectKind::Tag => ObjectInfo::Tag(TagInfo::default()),
            ObjectKind::Tree | ObjectKind::Blob => return None,
        };
        Some(InfoReader {
            format,
            info,
            part: Part::Headers,
            line: Vec::new(),
            skipping: false,
            message: Vec::new(),
        })
    }

    /// Reads the next bytes of the object.
    pub(crate) fn update(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            match self.part {
                Part::Done => return,
                Part::Message if matches!(self.info, ObjectInfo::Tag(_)) => {
                    let room = MAX_MESSAGE.saturating_sub(self.message.len());
                    let (take, rest) = bytes.split_at(room.min(bytes.len()));
                    self.message.extend_from_slice(take);
                    if !rest.is_empty() {
                        if let ObjectInfo::Tag(tag) = &mut self.info {
                            tag.message_truncated = true;
                        }
                        self.part = Part::Done;
                    }
                    return;
                }
                Part::Headers | Part::Message => {
                    let end = bytes.iter().position(|&b| b == b'\n');
                    let (piece, rest) = match end {
                        Some(at) => (bytes.get(..at), bytes.get(at.saturating_add(1)..)),
                        None => (Some(bytes), None),
                    };
                    self.take_line_bytes(piece.unwrap_or_default());
                    bytes = rest.unwrap_or_default();
                    if end.is_some() {
                        self.end_line();
                    }
                }
            }
        }
    }

    /// The header read so far (a subject without its LF is still a subject).
    pub(crate) fn finish(mut self) -> ObjectInfo {
        if self.part == Part::Message && matches!(self.info, ObjectInfo::Commit(_)) {
            self.end_line();
        }
        if let ObjectInfo::Tag(tag) = &mut self.info {
            tag.message = String::from_utf8_lossy(&self.message).into_owned();
        }
        self.info
    }

    fn take_line_bytes(&mut self, piece: &[u8]) {
        if self.skipping {
            return;
        }
        let limit = if self.part == Part::Message {
            MAX_SUBJECT
        } else {
            MAX_LINE
        };
        let room = limit.saturating_sub(self.line.len());
        if piece.len() > room {
            if self.part == Part::Message {
                // A subject is cut, not skipped.
                self.line
                    .extend_from_slice(piece.get(..room).unwrap_or_default());
            }
            self.skipping = true;
        } else {
            self.line.extend_from_slice(piece);
        }
    }

    fn end_line(&mut self) {
        let skipped = std::mem::replace(&mut self.skipping, false);
        let line = std::mem::take(&mut self.line);
        match self.part {
            Part::Headers if line.is_empty() && !skipped => self.part = Part::Message,
            Part::Headers if skipped => {}
            Part::Headers => self.header(&line),
            Part::Message => {
                // Like git's `%s`, leading empty lines are not the subject.
                if line.is_empty() && !skipped {
                    return;
                }
                if let ObjectInfo::Commit(commit) = &mut self.info {
                    commit.subject = String::from_utf8_lossy(&line).into_owned();
                }
                self.part = Part::Done;
            }
            Part::Done => {}
        }
    }

    fn header(&mut self, line: &[u8]) {
        let Some(space) = line.iter().position(|&b| b == b' ') else {
            return;
        };
        let (Some(name), Some(value)) = (line.get(..space), line.get(space.saturating_add(1)..))
        else {
            return;
        };
        let format = self.format;
        let id = || ObjectId::from_hex(value).filter(|id| id.format() == format);
        match &mut self.info {
            ObjectInfo::Commit(commit) => match name {
                b"tree" if commit.tree.is_none() => commit.tree = id(),
                b"parent" => {
                    commit.parent_count = commit.parent_count.saturating_add(1);
                    if let Some(parent) = id().filter(|_| commit.parents.len() < MAX_PARENTS) {
                        commit.parents.push(parent);
                    }
                }
                b"author" if commit.author.is_none() => commit.author = signature(value),
                b"committer" if commit.committer.is_none() => {
                    commit.committer = signature(value);
                }
                _ => {}
            },
            ObjectInfo::Tag(tag) => match name {
                b"object" if tag.object.is_none() => tag.object = id(),
                b"type" if tag.target_kind.is_none() => {
                    tag.target_kind = ObjectKind::from_name(value)
                }
                b"tag" if tag.name.is_empty() => {
                    tag.name = String::from_utf8_lossy(value).into_owned();
                }
                b"tagger" if tag.tagger.is_none() => tag.tagger = signature(value),
                _ => {}
            },
        }
    }
}

/// Splits `Name <email> seconds +hhmm` as git's `split_ident_line` does: the name ends at the
/// first `<`, the address at the first `>` after it.
fn signature(value: &[u8]) -> Option<Signature> {
    let open = value.iter().position(|&b| b == b'<')?;
    let after_open = value.get(open.saturating_add(1)..)?;
    let close = after_open.iter().position(|&b| b == b'>')?;
    let name = value.get(..open)?.trim_ascii();
    let email = after_open.get(..close)?;
    let rest = after_open.get(close.saturating_add(1)..)?;
    Some(Signature {
        name: String::from_utf8_lossy(name).into_owned(),
        email: String::from_utf8_lossy(email).into_owned(),
        time: signature_time(rest),
    })
}

fn signature_time(rest: &[u8]) -> Option<SignatureTime> {
    let text = std::str::from_utf8(rest).ok()?;
    let mut words = text.split_ascii_whitespace();
    let seconds = words.next()?.parse::<i64>().ok()?;
    let zone = words.next()?.as_bytes();
    let (sign, digits) = match zone {
        [b'+', digits @ ..] => (1, digits),
        [b'-', digits @ ..] => (-1, digits),
        _ => return None,
    };
    let [h1, h2, m1, m2] = digits else {
        return None;
    };
    let digit = |d: &u8| d.is_ascii_digit().then(|| i32::from(d - b'0'));
    let hours = digit(h1)? * 10 + digit(h2)?;
    let minutes = digit(m1)? * 10 + digit(m2)?;
    Some(SignatureTime {
        seconds,
        offset_minutes: sign * (hours * 60 + minutes),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const TREE: &str = "1111111111111111111111111111111111111111";
    const PARENT: &str = "2222222222222222222222222222222222222222";

    fn commit_bytes(message: &str) -> Vec<u8> {
        format!(
            "tree {TREE}\nparent {PARENT}\nauthor A U Thor <a@example.com> 1704184200 +0200\n\
             committer C O Mitter <c@example.com> 1704067200 -0730\n\
             gpgsig -----BEGIN SSH SIGNATURE-----\n abc\n -----END SSH SIGNATURE-----\n\n{message}"
        )
        .into_bytes()
    }

    fn commit(bytes: &[u8]) -> CommitInfo {
        match ObjectInfo::parse(ObjectFormat::Sha1, ObjectKind::Commit, bytes) {
            Some(ObjectInfo::Commit(commit)) => commit,
            other => panic!("not a commit: {other:?}"),
        }
    }

    #[test]
    fn a_commit_header_is_read_at_every_split() {
        let bytes = commit_bytes("\nsubject line\n\nbody\n");
        let whole = commit(&bytes);
        assert_eq!(whole.tree.map(|id| id.to_string()).as_deref(), Some(TREE));
        assert_eq!(whole.parents.len(), 1);
        assert_eq!(whole.parent_count, 1);
        let author = whole.author.clone().expect("author");
        assert_eq!(
            (author.name.as_str(), author.email.as_str()),
            ("A U Thor", "a@example.com")
        );
        assert_eq!(
            author.time,
            Some(SignatureTime {
                seconds: 1704184200,
                offset_minutes: 120
            })
        );
        let committer = whole.committer.clone().expect("committer");
        assert_eq!(committer.time.map(|t| t.offset_minutes), Some(-450));
        assert_eq!(whole.subject, "subject line");
        for at in 0..=bytes.len() {
            let mut reader =
                InfoReader::new(ObjectFormat::Sha1, ObjectKind::Commit).expect("commit");
            let (a, b) = bytes.split_at(at);
            reader.update(a);
            reader.update(b);
            assert_eq!(
                reader.finish(),
                ObjectInfo::Commit(whole.clone()),
                "split {at}"
            );
        }
    }

    #[test]
    fn a_subject_without_a_line_feed_is_still_the_subject() {
        assert_eq!(commit(&commit_bytes("no newline")).subject, "no newline");
        assert_eq!(commit(&commit_bytes("")).subject, "");
    }

    #[test]
    fn a_long_subject_is_cut_at_its_cap() {
        let long = "s".repeat(MAX_SUBJECT * 3);
        assert_eq!(commit(&commit_bytes(&long)).subject.len(), MAX_SUBJECT);
    }

    #[test]
    fn an_overlong_header_line_is_skipped() {
        let name = "n".repeat(MAX_LINE * 2);
        let bytes = format!("tree {TREE}\nauthor {name} <a@b> 1 +0000\n\nsubject\n");
        let info = commit(bytes.as_bytes());
        assert_eq!(info.author, None);
        assert!(info.tree.is_some());
        assert_eq!(info.subject, "subject");
    }

    #[test]
    fn ids_of_the_other_format_are_not_ids() {
        let bytes = format!("tree {TREE}\n\n");
        let info = ObjectInfo::parse(ObjectFormat::Sha256, ObjectKind::Commit, bytes.as_bytes());
        assert!(matches!(
            info,
            Some(ObjectInfo::Commit(CommitInfo { tree: None, .. }))
        ));
    }

    #[test]
    fn a_tag_header_and_message_are_read() {
        let bytes = format!(
            "object {TREE}\ntype commit\ntag v1.0\ntagger T <t@example.com> 5 +0000\n\nrelease\n\nnotes\n"
        );
        let Some(ObjectInfo::Tag(tag)) =
            ObjectInfo::parse(ObjectFormat::Sha1, ObjectKind::Tag, bytes.as_bytes())
        else {
            panic!("not a tag");
        };
        assert_eq!(tag.target_kind, Some(ObjectKind::Commit));
        assert_eq!(tag.name, "v1.0");
        assert_eq!(
            tag.tagger.as_ref().map(|t| t.email.as_str()),
            Some("t@example.com")
        );
        assert_eq!(tag.message, "release\n\nnotes\n");
        assert_eq!(tag.subject(), "release");
        assert!(!tag.message_truncated);
    }

    #[test]
    fn a_long_tag_message_is_cut_at_its_cap() {
        let bytes = format!("tag v\n\n{}", "m".repeat(MAX_MESSAGE + 1));
        let Some(ObjectInfo::Tag(tag)) =
            ObjectInfo::parse(ObjectFormat::Sha1, ObjectKind::Tag, bytes.as_bytes())
        else {
            panic!("not a tag");
        };
        assert_eq!(tag.message.len(), MAX_MESSAGE);
        assert!(tag.message_truncated);
    }

    #[test]
    fn malformed_signatures_are_no_signatures() {
        assert_eq!(signature(b"no brackets"), None);
        assert_eq!(signature(b"name <unclosed"), None);
        let no_time = signature(b"name <e> soon").expect("name and address");
        assert_eq!(no_time.time, None);
        assert_eq!(signature_time(b" 1 +02x0"), None);
        assert_eq!(signature_time(b" 1 0200"), None);
    }

    #[test]
    fn trees_and_blobs_have_no_header() {
        assert!(ObjectInfo::parse(ObjectFormat::Sha1, ObjectKind::Blob, b"x").is_none());
        assert!(InfoReader::new(ObjectFormat::Sha1, ObjectKind::Tree).is_none());
    }
}
