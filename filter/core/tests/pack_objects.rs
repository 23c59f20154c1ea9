//! The pack object reader on packs made by real git (see `fixtures/packs/make-packs.sh`), on the
//! packs of real pushes (`fixtures/make-fixtures.sh`), and on hand-made malformed packs. Every
//! input is read whole, one byte at a time, and split in two at every offset; a full read
//! costs milliseconds in a debug build, so the larger derived inputs (a fixture with one flaw,
//! the packs of pushes) are split at every offset near what matters and at a stride elsewhere.
//!
//! The fixtures are embedded with `include_bytes!`, so these tests need no file system and run
//! unchanged under a WASI runner.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::ops::ControlFlow;
use std::sync::{Arc, Mutex, OnceLock};

use flate2::Compression;
use flate2::write::ZlibEncoder;
use sha1::{Digest, Sha1};

use gitgate_core::delta::DeltaError;
use gitgate_core::object::{ObjectId, ObjectInfo, ObjectKind, object_id};
use gitgate_core::pack_objects::{
    BASE_OVERHEAD, Content, EntryKind, ObjectChunk, ObjectEnd, ObjectSink, ObjectStart, Origin,
    PackLimits, PackObjectError, PackReader,
};
use gitgate_core::receive_pack::{ObjectFormat, Parser, Progress};

/// A pack of real git, with what git says about its objects and repository.
struct Fixture {
    name: &'static str,
    format: ObjectFormat,
    pack: &'static [u8],
    /// `<offset> <id> <type> <stored size> [<depth> <base id>]` per object (`git verify-pack`).
    objects: &'static str,
    /// `git rev-list --objects --all` ids of the repository.
    rev_list: &'static str,
    /// `git log` fields of the repository, tab-separated.
    commits: &'static str,
    /// `git for-each-ref refs/tags` fields, tab-separated.
    tags: &'static str,
    /// A thin pack: some delta bases are only in the repository.
    thin: bool,
}

macro_rules! fixture {
    ($name:literal, $format:expr, $repo:literal, $thin:expr) => {
        Fixture {
            name: $name,
            format: $format,
            pack: include_bytes!(concat!("fixtures/packs/", $name, ".pack")),
            objects: include_str!(concat!("fixtures/packs/", $name, ".objects")),
            rev_list: include_str!(concat!("fixtures/packs/", $repo, ".rev-list")),
            commits: include_str!(concat!("fixtures/packs/", $repo, ".commits")),
            tags: include_str!(concat!("fixtures/packs/", $repo, ".tags")),
            thin: $thin,
        }
    };
}

const SHA1_OFS: Fixture = fixture!("sha1-ofs", ObjectFormat::Sha1, "sha1", false);
const SHA1_REF: Fixture = fixture!("sha1-ref", ObjectFormat::Sha1, "sha1", false);
const SHA1_THIN: Fixture = fixture!("sha1-thin", ObjectFormat::Sha1, "sha1", true);
const SHA256_OFS: Fixture = fixture!("sha256-ofs", ObjectFormat::Sha256, "sha256", false);
const SHA256_THIN: Fixture = fixture!("sha256-thin", ObjectFormat::Sha256, "sha256", true);

const ALL: [&Fixture; 5] = [&SHA1_OFS, &SHA1_REF, &SHA1_THIN, &SHA256_OFS, &SHA256_THIN];
const FULL: [&Fixture; 3] = [&SHA1_OFS, &SHA1_REF, &SHA256_OFS];
const THIN: [&Fixture; 2] = [&SHA1_THIN, &SHA256_THIN];

/// Receive-pack bodies of real pushes (`sha1-update-deltas` carries a thin pack).
const PUSHES: [(&str, &[u8]); 4] = [
    ("sha1-create", include_bytes!("fixtures/sha1-create.bin")),
    (
        "sha1-update-deltas",
        include_bytes!("fixtures/sha1-update-deltas.bin"),
    ),
    (
        "sha256-create",
        include_bytes!("fixtures/sha256-create.bin"),
    ),
    (
        "sha256-update",
        include_bytes!("fixtures/sha256-update.bin"),
    ),
];

/// Where the pack is said to start in the body, so that offsets are seen to be absolute.
const PACK_START: u64 = 1000;

/// One line of a `.objects` file.
#[derive(Debug)]
struct GitObject {
    offset: u64,
    id: ObjectId,
    kind: ObjectKind,
    stored_size: u64,
    /// The length of the delta chain, for a deltified entry.
    depth: Option<u32>,
    /// The delta base's id, for a deltified entry.
    base: Option<ObjectId>,
}

fn git_objects(fixture: &Fixture) -> Vec<GitObject> {
    fixture
        .objects
        .lines()
        .map(|line| {
            let fields: Vec<&str> = line.split(' ').collect();
            GitObject {
                offset: fields[0].parse().expect("offset"),
                id: ObjectId::from_hex(fields[1].as_bytes()).expect("id"),
                kind: ObjectKind::from_name(fields[2].as_bytes()).expect("kind"),
                stored_size: fields[3].parse().expect("size"),
                depth: fields.get(4).map(|depth| depth.parse().expect("depth")),
                base: fields
                    .get(5)
                    .map(|id| ObjectId::from_hex(id.as_bytes()).expect("base")),
            }
        })
        .collect()
}

/// One object as a sink saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    start: ObjectStart,
    /// All bytes, for whole content.
    content: Vec<u8>,
    /// Runs of adjacent inserted bytes, for inserts-only content.
    inserts: Vec<(u64, Vec<u8>)>,
    /// Bytes seen of each origin: stored, copied, inserted.
    origins: [u64; 3],
    end: Option<ObjectEnd>,
}

/// A sink that keeps everything and checks the order of the calls.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Recorder {
    objects: Vec<Seen>,
}

impl Recorder {
    fn ends(&self) -> impl Iterator<Item = &ObjectEnd> {
        self.objects.iter().filter_map(|seen| seen.end.as_ref())
    }

    fn at(&self, offset: u64) -> &Seen {
        self.objects
            .iter()
            .find(|seen| seen.start.offset == offset)
            .unwrap_or_else(|| panic!("no object at {offset}"))
    }
}

impl ObjectSink for Recorder {
    fn object_start(&mut self, object: &ObjectStart) -> ControlFlow<()> {
        if let Some(last) = self.objects.last() {
            assert!(last.end.is_some(), "a start before the last object ended");
            assert!(object.offset >= last.end.as_ref().expect("ended").end);
        }
        self.objects.push(Seen {
            start: object.clone(),
            content: Vec::new(),
            inserts: Vec::new(),
            origins: [0; 3],
            end: None,
        });
        ControlFlow::Continue(())
    }

    fn object_data(&mut self, chunk: &ObjectChunk<'_>) -> ControlFlow<()> {
        let seen = self.objects.last_mut().expect("data after a start");
        assert!(seen.end.is_none(), "data after the end");
        assert_eq!(chunk.entry, seen.start.offset);
        assert!(!chunk.bytes.is_empty());
        let len = chunk.bytes.len() as u64;
        assert!(
            chunk.offset + len <= seen.start.size,
            "chunk past the object"
        );
        let slot = match chunk.origin {
            Origin::Stored => 0,
            Origin::Copied => 1,
            Origin::Inserted => 2,
        };
        seen.origins[slot] += len;
        assert_eq!(chunk.is_delta_insert(), chunk.origin == Origin::Inserted);
        match seen.start.content {
            Content::Whole(_) => {
                assert_eq!(
                    chunk.offset,
                    seen.content.len() as u64,
                    "a gap in whole content"
                );
                seen.content.extend_from_slice(chunk.bytes);
            }
            Content::Inserts => {
                assert_eq!(chunk.origin, Origin::Inserted);
                match seen.inserts.last_mut() {
                    Some((at, run)) if *at + run.len() as u64 == chunk.offset => {
                        run.extend_from_slice(chunk.bytes);
                    }
                    last => {
                        if let Some((at, run)) = last {
                            assert!(chunk.offset > *at + run.len() as u64, "inserts go back");
                        }
                        seen.inserts.push((chunk.offset, chunk.bytes.to_vec()));
                    }
                }
            }
        }
        ControlFlow::Continue(())
    }

    fn object_end(&mut self, object: ObjectEnd) -> ControlFlow<()> {
        let seen = self.objects.last_mut().expect("an end after a start");
        assert_eq!(object.object, seen.start);
        if let Content::Whole(_) = seen.start.content {
            assert_eq!(seen.content.len() as u64, seen.start.size);
            assert!(object.id.is_some(), "whole objects have ids");
        } else {
            assert_eq!(object.id, None);
        }
        seen.end = Some(object);
        ControlFlow::Continue(())
    }
}

/// Every way the tests cut input: whole, one byte at a time, and in two at every offset.
fn splits(bytes: &[u8]) -> Vec<Vec<&[u8]>> {
    splits_at(bytes, 0..=bytes.len())
}

/// Whole, one byte at a time, and in two at each of `offsets`.
fn splits_at(bytes: &[u8], offsets: impl IntoIterator<Item = usize>) -> Vec<Vec<&[u8]>> {
    let mut all = vec![vec![bytes], bytes.chunks(1).collect()];
    for at in offsets {
        let (a, b) = bytes.split_at(at);
        all.push(vec![a, b]);
    }
    all
}

/// Feeds `pieces`; checks the cache budget after each; returns the recording and how it ended.
fn read_pieces(
    format: ObjectFormat,
    limits: PackLimits,
    pieces: &[&[u8]],
) -> (Recorder, Result<(), PackObjectError>) {
    let mut reader = PackReader::with_limits(format, PACK_START, limits);
    let mut recorder = Recorder::default();
    let mut fed_len = 0u64;
    for (i, piece) in pieces.iter().enumerate() {
        let fed = reader.feed(piece, &mut recorder);
        fed_len += piece.len() as u64;
        let used = reader.cache_used();
        assert!(used <= limits.base_cache, "over the memory budget");
        match fed {
            Ok(ControlFlow::Continue(())) if i + 1 < pieces.len() && !reader.is_complete() => {
                // Every prefix of a pack is a truncated pack.
                let truncated = PackObjectError::Truncated {
                    offset: PACK_START + fed_len,
                };
                assert_eq!(reader.finish(), Err(truncated));
            }
            Ok(ControlFlow::Continue(())) => {}
            Ok(ControlFlow::Break(())) => panic!("the recorder never stops"),
            Err(error) => {
                assert_eq!(reader.finish(), Err(error.clone()), "errors are final");
                return (recorder, Err(error));
            }
        }
    }
    let done = reader.finish();
    assert_eq!(done.is_ok(), reader.is_complete());
    (recorder, done)
}

/// Reads `pack` whole, and asserts that every split gives the same outcome and the same
/// objects (for a failed read, the same objects up to the last that ended: how much of the
/// failing one was handed out depends on where the input was cut).
fn read_every_way(
    format: ObjectFormat,
    limits: PackLimits,
    pack: &[u8],
) -> (Recorder, Result<(), PackObjectError>) {
    read_split_at(format, limits, pack, 0..=pack.len())
}

/// [`read_every_way`] with two-piece splits at `offsets` only (and whole, and byte by byte).
fn read_split_at(
    format: ObjectFormat,
    limits: PackLimits,
    pack: &[u8],
    offsets: impl IntoIterator<Item = usize>,
) -> (Recorder, Result<(), PackObjectError>) {
    let ended = |recorder: &Recorder| -> Vec<Seen> {
        recorder
            .objects
            .iter()
            .filter(|s| s.end.is_some())
            .cloned()
            .collect()
    };
    let whole = read_pieces(format, limits, &[pack]);
    for (i, pieces) in splits_at(pack, offsets).iter().enumerate() {
        let (recorder, done) = read_pieces(format, limits, pieces);
        assert_eq!(
            done.as_ref().map_err(same_for_every_split),
            whole.1.as_ref().map_err(same_for_every_split),
            "split #{i}"
        );
        if done.is_ok() {
            assert_eq!(recorder, whole.0, "split #{i}");
        } else {
            assert_eq!(ended(&recorder), ended(&whole.0), "split #{i}");
        }
    }
    whole
}

/// What an error must keep whatever the chunking: a corrupted zlib stream can show as bad data
/// or as more output than declared, depending on how much input the inflater had when it went
/// wrong, but always in the same entry; every other error must be identical.
fn same_for_every_split(error: &PackObjectError) -> String {
    match error {
        PackObjectError::Inflate { offset }
        | PackObjectError::LongerThanDeclared { offset, .. } => {
            format!("corrupt entry at {offset}")
        }
        other => format!("{other:?}"),
    }
}

/// Reads a fixture every way (once per test binary and limits: debug builds inflate slowly),
/// and returns what the sink saw.
fn read_ok(fixture: &Fixture, limits: PackLimits) -> Recorder {
    type Reads = Mutex<BTreeMap<String, Arc<OnceLock<Recorder>>>>;
    static READS: OnceLock<Reads> = OnceLock::new();
    let key = format!("{} {limits:?}", fixture.name);
    let once = {
        let mut reads = READS
            .get_or_init(Reads::default)
            .lock()
            .expect("not poisoned");
        reads.entry(key).or_default().clone()
    };
    once.get_or_init(|| {
        let (recorder, done) = read_every_way(fixture.format, limits, fixture.pack);
        assert_eq!(done, Ok(()), "{}", fixture.name);
        recorder
    })
    .clone()
}

fn read_err(format: ObjectFormat, pack: &[u8]) -> PackObjectError {
    read_every_way(format, PackLimits::default(), pack)
        .1
        .expect_err("a malformed pack")
}

/// [`read_err`] for a fixture with a flaw at `flaw`: split at every offset near the flaw and
/// near the trailer, and at every 16th elsewhere (each full read costs milliseconds in a debug
/// build; the intact fixtures are split at every offset).
fn read_err_near(format: ObjectFormat, pack: &[u8], flaw: usize) -> PackObjectError {
    let trailer = pack.len().saturating_sub(format.raw_len());
    let near = |at: usize, point: usize| at.abs_diff(point) <= 48;
    let offsets =
        (0..=pack.len()).filter(|&at| at % 16 == 0 || near(at, flaw) || near(at, trailer));
    read_split_at(format, PackLimits::default(), pack, offsets)
        .1
        .expect_err("a malformed pack")
}

/// Offset of the zlib stream of the stored entry at pack-relative `offset`.
fn zlib_start(pack: &[u8], offset: u64) -> usize {
    let mut at = offset as usize;
    while pack[at] & 0x80 != 0 {
        at += 1;
    }
    at + 1
}

#[test]
fn every_whole_object_hashes_to_its_id() {
    for fixture in ALL {
        for seen in &read_ok(fixture, PackLimits::default()).objects {
            if let Content::Whole(kind) = seen.start.content {
                let id = seen.end.as_ref().and_then(|end| end.id).expect("an id");
                assert_eq!(id, object_id(fixture.format, kind, &seen.content));
            }
        }
    }
}

#[test]
fn every_object_of_a_full_pack_has_the_id_git_gives_it() {
    for fixture in FULL {
        let recorder = read_ok(fixture, PackLimits::default());
        let git = git_objects(fixture);
        assert_eq!(recorder.objects.len(), git.len(), "{}", fixture.name);
        for (seen, expected) in recorder.objects.iter().zip(&git) {
            let end = seen.end.as_ref().expect("ended");
            assert_eq!(seen.start.offset, PACK_START + expected.offset);
            assert_eq!(seen.start.stored_size, expected.stored_size);
            assert_eq!(
                seen.start.content,
                Content::Whole(expected.kind),
                "{}",
                fixture.name
            );
            assert_eq!(
                end.id,
                Some(expected.id),
                "{} at {}",
                fixture.name,
                expected.offset
            );
        }
        let ids: BTreeSet<String> = recorder
            .ends()
            .filter_map(|e| e.id)
            .map(|id| id.to_string())
            .collect();
        let rev_list: BTreeSet<String> = fixture.rev_list.lines().map(String::from).collect();
        assert_eq!(ids, rev_list, "{}", fixture.name);
    }
}

#[test]
fn entries_are_stored_as_git_stored_them() {
    for fixture in ALL {
        let recorder = read_ok(fixture, PackLimits::default());
        let git = git_objects(fixture);
        let by_offset = |offset: u64| git.iter().find(|o| PACK_START + o.offset == offset);
        for seen in &recorder.objects {
            let expected = by_offset(seen.start.offset).expect("git lists every entry");
            match (seen.start.entry, expected.base) {
                (EntryKind::Object(kind), None) => assert_eq!(kind, expected.kind),
                (EntryKind::OfsDelta { base_offset }, Some(base)) => {
                    let base_entry = by_offset(base_offset).expect("an ofs base is in the pack");
                    assert_eq!(base_entry.id, base, "{}", fixture.name);
                }
                (EntryKind::RefDelta { base: id }, Some(base)) => assert_eq!(id, base),
                (stored, base) => {
                    panic!("{}: {stored:?} against git's base {base:?}", fixture.name)
                }
            }
        }
        let deltas = recorder
            .objects
            .iter()
            .filter(|s| !matches!(s.start.entry, EntryKind::Object(_)));
        assert!(deltas.count() >= 4, "{} has deltas", fixture.name);
    }
}

#[test]
fn ref_deltas_are_rebuilt_from_bases_found_by_id() {
    let recorder = read_ok(&SHA1_REF, PackLimits::default());
    let rebuilt: Vec<&Seen> = recorder
        .objects
        .iter()
        .filter(|seen| matches!(seen.start.entry, EntryKind::RefDelta { .. }))
        .collect();
    assert!(rebuilt.len() >= 4);
    assert!(
        rebuilt
            .iter()
            .all(|seen| matches!(seen.start.content, Content::Whole(_)))
    );
    assert!(
        rebuilt
            .iter()
            .all(|seen| seen.origins[0] == 0 && seen.origins[1] > 0)
    );
}

#[test]
fn a_delta_of_a_delta_is_rebuilt() {
    for fixture in FULL {
        let recorder = read_ok(fixture, PackLimits::default());
        let chained: Vec<_> = git_objects(fixture)
            .into_iter()
            .filter(|o| o.depth >= Some(2))
            .collect();
        assert!(chained.len() >= 2, "{} has chains of deltas", fixture.name);
        for object in chained {
            let seen = recorder.at(PACK_START + object.offset);
            assert_eq!(seen.start.content, Content::Whole(object.kind));
            assert_eq!(seen.end.as_ref().and_then(|end| end.id), Some(object.id));
        }
    }
}

#[test]
fn a_line_changed_in_a_deltified_file_is_seen_whole() {
    let planted = b"planted = gitgate-fixture-line-two-0123456789abcdef\n";
    let holds = |bytes: &[u8], needle: &[u8]| bytes.windows(needle.len()).any(|w| w == needle);

    let rebuilt = read_ok(&SHA1_OFS, PackLimits::default());
    let seen = rebuilt
        .objects
        .iter()
        .find(|seen| holds(&seen.content, planted))
        .expect("an object with the planted line");
    assert!(matches!(seen.start.entry, EntryKind::OfsDelta { .. }));
    assert_eq!(seen.start.content, Content::Whole(ObjectKind::Blob));
    assert_eq!(seen.origins[1] + seen.origins[2], seen.start.size);
    let git = git_objects(&SHA1_OFS);
    let expected = git
        .iter()
        .find(|o| PACK_START + o.offset == seen.start.offset)
        .expect("listed");
    assert_eq!(seen.end.as_ref().and_then(|e| e.id), Some(expected.id));

    // Without a base the delta gives only what it inserts: a piece of the line.
    let no_cache = PackLimits {
        base_cache: 0,
        ..PackLimits::default()
    };
    let inserts = read_ok(&SHA1_OFS, no_cache);
    let bare = inserts.at(seen.start.offset);
    assert_eq!(bare.start.content, Content::Inserts);
    assert_eq!(bare.start.size, seen.start.size);
    assert_eq!(bare.end.as_ref().map(|e| e.id), Some(None));
    let inserted: Vec<u8> = bare
        .inserts
        .iter()
        .flat_map(|(_, run)| run.clone())
        .collect();
    assert!(holds(&inserted, b"wo-0123456789abcdef"));
    assert!(!holds(&inserted, planted));
    for (offset, run) in &bare.inserts {
        let at = *offset as usize;
        assert_eq!(
            &seen.content[at..at + run.len()],
            &run[..],
            "inserts land in place"
        );
    }
}

#[test]
fn a_thin_pack_names_what_it_can_and_marks_the_rest_unknown() {
    for fixture in THIN {
        let recorder = read_ok(fixture, PackLimits::default());
        let git = git_objects(fixture);
        let in_pack: BTreeSet<ObjectId> = git.iter().map(|o| o.id).collect();
        let mut unknown = 0;
        for (seen, expected) in recorder.objects.iter().zip(&git) {
            let id = seen.end.as_ref().and_then(|end| end.id);
            match seen.start.content {
                Content::Whole(kind) => {
                    assert_eq!(kind, expected.kind);
                    assert_eq!(
                        id,
                        Some(expected.id),
                        "{} at {}",
                        fixture.name,
                        expected.offset
                    );
                }
                Content::Inserts => {
                    unknown += 1;
                    assert_eq!(id, None);
                    // Its base is on the server, or is itself not rebuilt.
                    let base = expected.base.expect("a delta");
                    let base_known = recorder.ends().any(|end| end.id == Some(base));
                    assert!(!base_known, "{} at {}", fixture.name, expected.offset);
                }
            }
        }
        let outside = recorder
            .objects
            .iter()
            .filter(|seen| match seen.start.entry {
                EntryKind::RefDelta { base } => !in_pack.contains(&base),
                _ => false,
            });
        assert!(
            outside.count() >= 1,
            "{} has a base outside the pack",
            fixture.name
        );
        assert!(unknown >= 2, "{}", fixture.name);
    }
}

/// `seconds offset` from `git log --date=raw`, as the reader parses it.
fn raw_date(date: &str) -> (i64, i32) {
    let (seconds, zone) = date.split_once(' ').expect("raw date");
    let sign = if zone.starts_with('-') { -1 } else { 1 };
    let hours: i32 = zone[1..3].parse().expect("hours");
    let minutes: i32 = zone[3..5].parse().expect("minutes");
    (
        seconds.parse().expect("seconds"),
        sign * (hours * 60 + minutes),
    )
}

#[test]
fn commits_and_tags_carry_the_headers_git_reports() {
    for fixture in FULL {
        let recorder = read_ok(fixture, PackLimits::default());
        let find = |id: &str| {
            recorder
                .ends()
                .find(|end| end.id.map(|i| i.to_string()).as_deref() == Some(id))
                .unwrap_or_else(|| panic!("{}: no object {id}", fixture.name))
        };
        for line in fixture.commits.lines() {
            let f: Vec<&str> = line.split('\t').collect();
            let Some(ObjectInfo::Commit(commit)) = &find(f[0]).info else {
                panic!("{}: {} is not a commit", fixture.name, f[0]);
            };
            assert_eq!(commit.tree.map(|id| id.to_string()).as_deref(), Some(f[1]));
            let parents: Vec<String> = commit.parents.iter().map(|id| id.to_string()).collect();
            let expected: Vec<&str> = f[2].split(' ').filter(|p| !p.is_empty()).collect();
            assert_eq!(parents, expected);
            assert_eq!(commit.parent_count, expected.len());
            let author = commit.author.as_ref().expect("author");
            assert_eq!((author.name.as_str(), author.email.as_str()), (f[3], f[4]));
            let time = author.time.expect("time");
            assert_eq!((time.seconds, time.offset_minutes), raw_date(f[5]));
            let committer = commit.committer.as_ref().expect("committer");
            assert_eq!(
                (committer.name.as_str(), committer.email.as_str()),
                (f[6], f[7])
            );
            let time = committer.time.expect("time");
            assert_eq!((time.seconds, time.offset_minutes), raw_date(f[8]));
            assert_eq!(commit.subject, f[9]);
        }
        for line in fixture.tags.lines() {
            let f: Vec<&str> = line.split('\t').collect();
            let Some(ObjectInfo::Tag(tag)) = &find(f[0]).info else {
                panic!("{}: {} is not a tag", fixture.name, f[0]);
            };
            assert_eq!(tag.object.map(|id| id.to_string()).as_deref(), Some(f[1]));
            assert_eq!(tag.target_kind.map(ObjectKind::name), Some(f[2]));
            assert_eq!(tag.name, f[3]);
            let tagger = tag.tagger.as_ref().expect("tagger");
            assert_eq!(tagger.name, f[4]);
            assert_eq!(format!("<{}>", tagger.email), f[5]);
            let time = tagger.time.expect("time");
            assert_eq!((time.seconds, time.offset_minutes), raw_date(f[6]));
            assert_eq!(tag.subject(), f[7]);
            assert!(tag.message.starts_with("release 1.0\n\nThe first release."));
        }
    }
}

#[test]
fn the_pack_of_a_real_push_is_read_after_its_command_section() {
    for (name, body) in PUSHES {
        let mut parser = Parser::default();
        let Ok(Progress::Complete { .. }) = parser.feed(body) else {
            panic!("{name}: a complete command section");
        };
        let section = parser.section().expect("complete");
        let start = section.end_offset;
        let pack = &body[start as usize..];
        // Every offset in the first 200 bytes and the last 80 (headers, trailer), every 5th
        // in between: these packs hold a larger file than the pack fixtures.
        let offsets =
            (0..=pack.len()).filter(|&at| at < 200 || at + 80 > pack.len() || at % 5 == 0);
        let mut whole = None;
        for pieces in splits_at(pack, offsets) {
            let mut reader = PackReader::new(section.object_format, start);
            let mut recorder = Recorder::default();
            for piece in pieces {
                let fed = reader.feed(piece, &mut recorder).expect("a valid pack");
                assert_eq!(fed, ControlFlow::Continue(()));
            }
            assert_eq!(reader.finish(), Ok(()), "{name}");
            match &whole {
                None => whole = Some(recorder),
                Some(first) => assert_eq!(&recorder, first, "{name}"),
            }
        }
        let recorder = whole.expect("read");
        assert!(
            recorder
                .objects
                .iter()
                .all(|seen| seen.start.offset >= start)
        );
        let last_end = recorder.ends().last().map(|end| end.end).expect("objects");
        assert_eq!(
            last_end + section.object_format.raw_len() as u64,
            body.len() as u64
        );
        for command in &section.commands {
            let commit = recorder
                .ends()
                .find(|end| end.id.map(|id| id.to_string()) == Some(command.new.clone()))
                .unwrap_or_else(|| panic!("{name}: the pushed commit is in the pack"));
            assert!(matches!(commit.info, Some(ObjectInfo::Commit(_))));
        }
    }
}

#[test]
fn memory_stays_within_the_base_cache_budget() {
    for budget in [0, 100, 1024, 8 * 1024, 14_000 + BASE_OVERHEAD, 32 * 1024] {
        let limits = PackLimits {
            base_cache: budget,
            ..PackLimits::default()
        };
        for fixture in [&SHA1_OFS, &SHA256_THIN] {
            // `read_pieces` checks the budget after every byte.
            let bytewise: Vec<&[u8]> = fixture.pack.chunks(1).collect();
            let (recorder, done) = read_pieces(fixture.format, limits, &bytewise);
            assert_eq!(done, Ok(()));
            let rebuilt = recorder
                .objects
                .iter()
                .filter(|s| !matches!(s.start.entry, EntryKind::Object(_)))
                .filter(|s| matches!(s.start.content, Content::Whole(_)))
                .count();
            if budget == 0 {
                assert_eq!(rebuilt, 0);
            }
            if budget >= 32 * 1024 && !fixture.thin {
                let deltas = git_objects(fixture)
                    .iter()
                    .filter(|o| o.base.is_some())
                    .count();
                assert_eq!(rebuilt, deltas, "{}", fixture.name);
            }
        }
    }
}

#[test]
fn a_sink_can_stop_the_reader_at_the_first_blob() {
    struct FirstBlob(Option<u64>);
    impl ObjectSink for FirstBlob {
        fn object_start(&mut self, object: &ObjectStart) -> ControlFlow<()> {
            if object.kind() == Some(ObjectKind::Blob) {
                self.0 = Some(object.offset);
                return ControlFlow::Break(());
            }
            ControlFlow::Continue(())
        }
    }
    let first_blob = git_objects(&SHA1_OFS)
        .iter()
        .find(|o| o.kind == ObjectKind::Blob && o.base.is_none())
        .map(|o| o.offset);
    for pieces in splits(SHA1_OFS.pack) {
        let mut reader = PackReader::new(ObjectFormat::Sha1, 0);
        let mut sink = FirstBlob(None);
        let mut stopped = false;
        for piece in pieces {
            if reader.feed(piece, &mut sink) == Ok(ControlFlow::Break(())) {
                stopped = true;
            }
        }
        assert!(stopped);
        assert_eq!(sink.0, first_blob);
        assert_eq!(reader.feed(b"more", &mut sink), Ok(ControlFlow::Break(())));
        assert!(!reader.is_complete());
    }
}

#[test]
fn every_truncated_pack_is_incomplete_at_its_end() {
    // `read_pieces` checks `finish` after the first piece of every split.
    for fixture in ALL {
        read_ok(fixture, PackLimits::default());
    }
    let (_, done) = read_pieces(ObjectFormat::Sha1, PackLimits::default(), &[b""]);
    assert_eq!(done, Err(PackObjectError::Truncated { offset: PACK_START }));
}

#[test]
fn a_flipped_trailer_byte_is_a_checksum_mismatch() {
    for fixture in [&SHA1_OFS, &SHA256_OFS] {
        let mut pack = fixture.pack.to_vec();
        let trailer = pack.len() - fixture.format.raw_len();
        pack[trailer + 3] ^= 0x01;
        assert_eq!(
            read_err_near(fixture.format, &pack, trailer),
            PackObjectError::ChecksumMismatch {
                offset: PACK_START + trailer as u64
            }
        );
    }
}

#[test]
fn a_flipped_byte_in_an_object_fails_in_that_object_or_at_the_checksum() {
    let git = git_objects(&SHA1_OFS);
    let (index, big) = git
        .iter()
        .enumerate()
        .filter(|(_, o)| o.base.is_none())
        .max_by_key(|(_, o)| o.stored_size)
        .expect("a stored object");
    let (start, end) = (
        zlib_start(SHA1_OFS.pack, big.offset),
        git[index + 1].offset as usize,
    );
    let offset = PACK_START + big.offset;
    for at in [start + 2, (start + end) / 2, end - 6, end - 2] {
        let mut pack = SHA1_OFS.pack.to_vec();
        pack[at] ^= 0x20;
        let error = read_err_near(ObjectFormat::Sha1, &pack, at);
        assert!(
            match error {
                PackObjectError::Inflate { offset: o }
                | PackObjectError::LongerThanDeclared { offset: o, .. }
                | PackObjectError::ShorterThanDeclared { offset: o, .. } => o == offset,
                PackObjectError::ChecksumMismatch { .. } => true,
                _ => false,
            },
            "{error:?}"
        );
    }
}

#[test]
fn a_broken_zlib_header_is_an_inflate_error_at_its_entry() {
    for fixture in [&SHA1_OFS, &SHA256_THIN] {
        let blob = git_objects(fixture)
            .into_iter()
            .find(|o| o.kind == ObjectKind::Blob && o.base.is_none())
            .expect("a stored blob");
        let mut pack = fixture.pack.to_vec();
        let at = zlib_start(&pack, blob.offset);
        assert_eq!(pack[at], 0x78, "a zlib header");
        pack[at] = 0x00;
        assert_eq!(
            read_err_near(fixture.format, &pack, at),
            PackObjectError::Inflate {
                offset: PACK_START + blob.offset
            }
        );
    }
}

#[test]
fn bytes_after_the_trailer_are_refused() {
    let mut pack = SHA1_THIN.pack.to_vec();
    pack.push(b'x');
    assert_eq!(
        read_err_near(ObjectFormat::Sha1, &pack, SHA1_THIN.pack.len()),
        PackObjectError::DataAfterPack {
            offset: PACK_START + SHA1_THIN.pack.len() as u64
        }
    );
}

/// Builds small packs by hand, for the hazards git never writes.
struct Builder {
    count: u32,
    body: Vec<u8>,
}

const BLOB: u8 = 3;
const OFS_DELTA: u8 = 6;
const REF_DELTA: u8 = 7;

fn zlib(data: &[u8]) -> Vec<u8> {
    let mut encoder = ZlibEncoder::new(Vec::new(), Compression::default());
    encoder.write_all(data).expect("in memory");
    encoder.finish().expect("in memory")
}

fn entry_header(kind: u8, mut size: u64) -> Vec<u8> {
    let mut byte = (kind << 4) | (size & 0x0f) as u8;
    size >>= 4;
    let mut out = Vec::new();
    while size > 0 {
        out.push(byte | 0x80);
        byte = (size & 0x7f) as u8;
        size >>= 7;
    }
    out.push(byte);
    out
}

/// Delta size varint.
fn varint(mut value: u64) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.push(byte);
            return out;
        }
        out.push(byte | 0x80);
    }
}

/// Ofs-delta distance encoding.
fn distance(mut value: u64) -> Vec<u8> {
    let mut out = vec![(value & 0x7f) as u8];
    value >>= 7;
    while value > 0 {
        value -= 1;
        out.push(0x80 | (value & 0x7f) as u8);
        value >>= 7;
    }
    out.reverse();
    out
}

fn delta(source: u64, target: u64, instructions: &[u8]) -> Vec<u8> {
    let mut out = varint(source);
    out.extend(varint(target));
    out.extend_from_slice(instructions);
    out
}

impl Builder {
    fn new() -> Builder {
        Builder {
            count: 0,
            body: Vec::new(),
        }
    }

    /// Pack-relative offset of the next entry.
    fn next_offset(&self) -> u64 {
        12 + self.body.len() as u64
    }

    fn raw(&mut self, entry: &[u8]) -> u64 {
        let offset = self.next_offset();
        self.count += 1;
        self.body.extend_from_slice(entry);
        offset
    }

    fn object(&mut self, kind: u8, data: &[u8]) -> u64 {
        let mut entry = entry_header(kind, data.len() as u64);
        entry.extend(zlib(data));
        self.raw(&entry)
    }

    fn ofs_delta(&mut self, base: u64, delta: &[u8]) -> u64 {
        let mut entry = entry_header(OFS_DELTA, delta.len() as u64);
        entry.extend(distance(self.next_offset() - base));
        entry.extend(zlib(delta));
        self.raw(&entry)
    }

    fn ref_delta(&mut self, base: ObjectId, delta: &[u8]) -> u64 {
        let mut entry = entry_header(REF_DELTA, delta.len() as u64);
        entry.extend_from_slice(base.as_bytes());
        entry.extend(zlib(delta));
        self.raw(&entry)
    }

    fn finish(&self) -> Vec<u8> {
        let mut pack = b"PACK\0\0\0\x02".to_vec();
        pack.extend_from_slice(&self.count.to_be_bytes());
        pack.extend_from_slice(&self.body);
        with_trailer(pack)
    }
}

/// Appends the SHA-1 of `pack` to it.
fn with_trailer(mut pack: Vec<u8>) -> Vec<u8> {
    let hash = Sha1::digest(&pack);
    pack.extend_from_slice(&hash);
    pack
}

/// A pack of the blob `hello world` and one delta of it with `instructions`.
fn delta_pack(target: u64, instructions: &[u8]) -> Vec<u8> {
    let mut builder = Builder::new();
    let base = builder.object(BLOB, b"hello world");
    builder.ofs_delta(base, &delta(11, target, instructions));
    builder.finish()
}

/// Where the second entry of a pack starting with the blob `hello world` starts, absolute.
fn delta_at() -> u64 {
    PACK_START + 12 + 1 + zlib(b"hello world").len() as u64
}

#[test]
fn a_hand_made_delta_is_rebuilt_by_offset_and_by_id() {
    let instructions = [0x90, 6, 3, b'a', b'b', b' ', 0x91, 6, 5];
    let pack = delta_pack(14, &instructions);
    let (recorder, done) = read_every_way(ObjectFormat::Sha1, PackLimits::default(), &pack);
    assert_eq!(done, Ok(()));
    assert_eq!(recorder.objects[1].start.offset, delta_at());
    assert_eq!(recorder.objects[1].content, b"hello ab world");
    assert_eq!(recorder.objects[1].origins, [0, 11, 3]);

    let mut builder = Builder::new();
    builder.object(BLOB, b"hello world");
    let id = object_id(ObjectFormat::Sha1, ObjectKind::Blob, b"hello world");
    builder.ref_delta(id, &delta(11, 14, &instructions));
    let (recorder, done) =
        read_every_way(ObjectFormat::Sha1, PackLimits::default(), &builder.finish());
    assert_eq!(done, Ok(()));
    assert_eq!(recorder.objects[1].content, b"hello ab world");
}

#[test]
fn the_reserved_delta_instruction_is_refused_at_its_entry() {
    assert_eq!(
        read_err(ObjectFormat::Sha1, &delta_pack(3, &[0])),
        PackObjectError::Delta {
            offset: delta_at(),
            source: DeltaError::ReservedInstruction { at: 2 }
        }
    );
}

#[test]
fn a_delta_copy_outside_its_base_is_refused() {
    assert_eq!(
        read_err(ObjectFormat::Sha1, &delta_pack(5, &[0x91, 8, 5])),
        PackObjectError::Delta {
            offset: delta_at(),
            source: DeltaError::CopyOutOfBounds {
                at: 2,
                offset: 8,
                len: 5,
                source_size: 11
            }
        }
    );
}

#[test]
fn a_delta_writing_past_its_target_is_refused() {
    assert_eq!(
        read_err(ObjectFormat::Sha1, &delta_pack(2, &[3, b'a', b'b', b'c'])),
        PackObjectError::Delta {
            offset: delta_at(),
            source: DeltaError::TargetOverflow {
                at: 2,
                target_size: 2
            }
        }
    );
}

#[test]
fn a_delta_ending_before_its_target_is_complete_is_refused() {
    assert_eq!(
        read_err(ObjectFormat::Sha1, &delta_pack(4, &[2, b'a', b'b'])),
        PackObjectError::Delta {
            offset: delta_at(),
            source: DeltaError::Truncated {
                at: 5,
                written: 2,
                target_size: 4
            }
        }
    );
}

#[test]
fn a_delta_whose_source_size_is_not_its_base_s_is_refused() {
    let mut builder = Builder::new();
    let base = builder.object(BLOB, b"hello world");
    builder.ofs_delta(base, &delta(12, 1, &[1, b'x']));
    assert_eq!(
        read_err(ObjectFormat::Sha1, &builder.finish()),
        PackObjectError::Delta {
            offset: delta_at(),
            source: DeltaError::SourceSizeMismatch {
                declared: 12,
                actual: 11
            }
        }
    );
}

#[test]
fn a_delta_with_a_base_outside_the_pack_still_has_its_instructions_checked() {
    let id = object_id(ObjectFormat::Sha1, ObjectKind::Blob, b"on the server");
    let mut builder = Builder::new();
    builder.ref_delta(id, &delta(13, 5, &[0x90, 4, 1, b'!']));
    let mut bad = Builder::new();
    bad.ref_delta(id, &delta(13, 5, &[0x90, 20]));
    let (recorder, done) =
        read_every_way(ObjectFormat::Sha1, PackLimits::default(), &builder.finish());
    assert_eq!(done, Ok(()));
    assert_eq!(recorder.objects[0].start.content, Content::Inserts);
    assert_eq!(recorder.objects[0].inserts, [(4, b"!".to_vec())]);
    assert!(matches!(
        read_err(ObjectFormat::Sha1, &bad.finish()),
        PackObjectError::Delta {
            source: DeltaError::CopyOutOfBounds { .. },
            ..
        }
    ));
}

#[test]
fn a_huge_declared_object_size_is_refused_before_inflating() {
    let mut builder = Builder::new();
    let mut entry = entry_header(BLOB, 1 << 40);
    entry.extend(zlib(b"small"));
    builder.raw(&entry);
    assert_eq!(
        read_err(ObjectFormat::Sha1, &builder.finish()),
        PackObjectError::ObjectTooLarge {
            offset: PACK_START + 12,
            declared: 1 << 40,
            max: PackLimits::default().max_object_size
        }
    );
}

#[test]
fn a_huge_declared_delta_result_is_refused() {
    let pack = delta_pack(1 << 40, &[1, b'x']);
    assert_eq!(
        read_err(ObjectFormat::Sha1, &pack),
        PackObjectError::Delta {
            offset: delta_at(),
            source: DeltaError::TargetTooLarge {
                at: 1,
                declared: 1 << 40,
                max: PackLimits::default().max_delta_result,
            }
        }
    );
}

#[test]
fn a_huge_object_count_is_refused_at_the_header() {
    let pack = with_trailer(b"PACK\0\0\0\x02\xff\xff\xff\xff".to_vec());
    assert_eq!(
        read_err(ObjectFormat::Sha1, &pack),
        PackObjectError::TooManyObjects {
            offset: PACK_START,
            count: u32::MAX,
            max: PackLimits::default().max_objects
        }
    );
}

#[test]
fn the_output_limit_stops_a_pack_that_inflates_too_much() {
    let mut builder = Builder::new();
    let zeros = vec![0u8; 100_000];
    builder.object(BLOB, &zeros);
    let second = builder.object(BLOB, &zeros);
    let limits = PackLimits {
        max_output: 150_000,
        ..PackLimits::default()
    };
    let (_, done) = read_every_way(ObjectFormat::Sha1, limits, &builder.finish());
    assert_eq!(
        done,
        Err(PackObjectError::OutputTooLarge {
            offset: PACK_START + second,
            max: 150_000
        })
    );
}

#[test]
fn an_entry_inflating_to_another_size_than_declared_is_refused() {
    let pack = |declared: u64| {
        let mut builder = Builder::new();
        let mut entry = entry_header(BLOB, declared);
        entry.extend(zlib(b"hello"));
        builder.raw(&entry);
        builder.finish()
    };
    assert_eq!(
        read_err(ObjectFormat::Sha1, &pack(3)),
        PackObjectError::LongerThanDeclared {
            offset: PACK_START + 12,
            declared: 3
        }
    );
    assert_eq!(
        read_err(ObjectFormat::Sha1, &pack(9)),
        PackObjectError::ShorterThanDeclared {
            offset: PACK_START + 12,
            declared: 9,
            inflated: 5
        }
    );
}

#[test]
fn an_ofs_delta_pointing_outside_the_pack_is_refused() {
    for far in [0, 21, 1 << 20] {
        let mut builder = Builder::new();
        builder.object(BLOB, b"hello world");
        let mut entry = entry_header(OFS_DELTA, 2);
        entry.extend(distance(far));
        entry.extend(zlib(&delta(11, 0, &[])));
        builder.raw(&entry);
        assert_eq!(
            read_err(ObjectFormat::Sha1, &builder.finish()),
            PackObjectError::BadDeltaOffset {
                offset: delta_at(),
                distance: far
            }
        );
    }
}

#[test]
fn header_hazards_are_refused_with_their_offsets() {
    let cases: [(&[u8], PackObjectError); 5] = [
        (
            b"PACX\0\0\0\x02\0\0\0\0",
            PackObjectError::BadSignature { offset: PACK_START },
        ),
        (
            b"PACK\0\0\0\x04\0\0\0\0",
            PackObjectError::UnsupportedVersion {
                offset: PACK_START + 4,
                version: 4,
            },
        ),
        (
            b"PACK\0\0\0\x02\0\0\0\x01\x50",
            PackObjectError::BadObjectType {
                offset: PACK_START + 12,
                kind: 5,
            },
        ),
        (
            b"PACK\0\0\0\x02\0\0\0\x01\x80\xff\xff",
            PackObjectError::BadObjectType {
                offset: PACK_START + 12,
                kind: 0,
            },
        ),
        (
            b"PACK\0\0\0\x02\0\0\0\x01\xb0\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff",
            PackObjectError::VarintOverflow {
                offset: PACK_START + 12,
            },
        ),
    ];
    for (pack, expected) in cases {
        assert_eq!(read_err(ObjectFormat::Sha1, pack), expected);
    }
    // Version 3 is version 2's layout.
    let v3 = with_trailer(b"PACK\0\0\0\x03\0\0\0\0".to_vec());
    assert_eq!(
        read_every_way(ObjectFormat::Sha1, PackLimits::default(), &v3).1,
        Ok(())
    );
}

/// xorshift64*: fixed seed, so every run mutates the same way.
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// An error's offset, which must lie within the input.
fn error_offset(error: &PackObjectError) -> u64 {
    match error {
        PackObjectError::BadSignature { offset }
        | PackObjectError::UnsupportedVersion { offset, .. }
        | PackObjectError::TooManyObjects { offset, .. }
        | PackObjectError::BadObjectType { offset, .. }
        | PackObjectError::VarintOverflow { offset }
        | PackObjectError::ObjectTooLarge { offset, .. }
        | PackObjectError::BadDeltaOffset { offset, .. }
        | PackObjectError::Inflate { offset }
        | PackObjectError::LongerThanDeclared { offset, .. }
        | PackObjectError::ShorterThanDeclared { offset, .. }
        | PackObjectError::Delta { offset, .. }
        | PackObjectError::OutputTooLarge { offset, .. }
        | PackObjectError::ChecksumMismatch { offset }
        | PackObjectError::DataAfterPack { offset }
        | PackObjectError::Truncated { offset } => *offset,
    }
}

#[test]
fn randomly_mutated_packs_never_panic_and_fail_with_typed_errors() {
    let mut random = Random(0x9e37_79b9_7f4a_7c15);
    let limits = PackLimits {
        base_cache: 4096,
        max_object_size: 1 << 20,
        max_delta_result: 1 << 20,
        ..PackLimits::default()
    };
    let mut failures = 0;
    let rounds = 1000;
    for round in 0..rounds {
        let fixture = ALL[round % ALL.len()];
        let mut pack = fixture.pack.to_vec();
        for _ in 0..1 + random.below(4) {
            let at = random.below(pack.len());
            match random.below(6) {
                0 => pack[at] ^= 1 << random.below(8),
                1 => pack[at] = random.next() as u8,
                2 => pack.truncate(at),
                3 => pack.insert(at, random.next() as u8),
                4 => {
                    pack.remove(at.min(pack.len().saturating_sub(1)));
                }
                _ => pack[at] = [0x00, 0x7f, 0x80, 0xff][random.below(4)],
            }
            if pack.is_empty() {
                pack.push(0);
            }
        }
        // Half the mutants get a matching trailer, so that the reader goes past the checksum.
        if round % 2 == 0 && pack.len() > fixture.format.raw_len() {
            pack.truncate(pack.len() - fixture.format.raw_len());
            match fixture.format {
                ObjectFormat::Sha1 => pack = with_trailer(pack),
                ObjectFormat::Sha256 => {
                    let hash = sha2::Sha256::digest(&pack);
                    pack.extend_from_slice(&hash);
                }
            }
        }
        let cut = random.below(pack.len() + 1);
        let (a, b) = pack.split_at(cut);
        let (_, done) = read_pieces(fixture.format, limits, &[a, b]);
        if let Err(error) = done {
            failures += 1;
            let offset = error_offset(&error);
            assert!(
                offset >= PACK_START && offset <= PACK_START + pack.len() as u64,
                "{error}"
            );
            assert!(!error.to_string().is_empty());
        }
    }
    assert!(failures > rounds / 2, "most mutants are broken packs");
}
