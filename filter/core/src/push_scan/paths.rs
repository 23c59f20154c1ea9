//! Where a blob sits: its path and commit, read from the trees and commits of the same pack,
//! within a memory budget.
//!
//! A tree is a list of entries (gitformat-object, "tree"):
//!
//! ```text
//! entry = mode (ASCII octal) SP name NUL id (20 or 32 raw bytes)
//! ```
//!
//! git writes a pack's commits first, then its trees, then its blobs (`pack-objects`,
//! `compute_write_order`), so by the time a blob is scanned the trees naming it have gone by.
//! Paths are only needed for the few blobs with findings, at the end of the pack: the map keeps
//! for every blob and subtree entry of every whole tree a link to the tree that names it, and
//! for every commit's root tree the commit. A path is the names on the way from the blob up to a
//! root tree. The first link to an object wins: trees come in the order of the commits, newest
//! first, so the path is the one in the newest pushed commit that has the blob.
//!
//! The map's memory is capped ([`PathMap::new`]); once it is full, later entries are not kept
//! and a finding in a blob they would have named has no path. Trees that reach the scanner only
//! as delta inserts (their base is not in the pack) name nothing, so blobs below them have no
//! path either.

use std::collections::BTreeMap;
use std::sync::Arc;

use gitgate_scan::{Finding, RuleSet, scan_bytes};

use crate::object::ObjectId;
use crate::receive_pack::ObjectFormat;

/// Bytes charged for one link besides its name: two ids and the map's bookkeeping.
const LINK_OVERHEAD: usize = 96;

/// The longest entry name kept (git allows up to 4096 bytes in a path component on most
/// systems); a tree with a longer one is not read further.
const MAX_NAME_LEN: usize = 4096;

/// The most path components followed up from a blob; deeper paths are not resolved.
pub const MAX_DEPTH: usize = 256;

/// The longest path reported, in bytes (what the approval service accepts).
pub const MAX_PATH_LEN: usize = 1024;

/// An object named by a tree.
#[derive(Debug, Clone)]
struct Link {
    /// The tree that names it.
    parent: ObjectId,
    /// Its name in that tree.
    name: Box<[u8]>,
}

/// Blob and subtree links, and the commits of root trees, within a budget.
#[derive(Debug)]
pub struct PathMap {
    budget: usize,
    used: usize,
    links: BTreeMap<ObjectId, Link>,
    roots: BTreeMap<ObjectId, ObjectId>,
    /// True once an entry was dropped for lack of room.
    full: bool,
}

impl PathMap {
    /// An empty map that keeps at most `budget` bytes (estimated).
    pub fn new(budget: usize) -> PathMap {
        PathMap {
            budget,
            used: 0,
            links: BTreeMap::new(),
            roots: BTreeMap::new(),
            full: false,
        }
    }

    /// Bytes charged so far; never over the budget.
    pub fn used(&self) -> usize {
        self.used
    }

    /// True once the map dropped an entry for lack of room.
    pub fn is_full(&self) -> bool {
        self.full
    }

    /// True while there is room for at least one more link.
    pub fn has_room(&self) -> bool {
        self.used.saturating_add(LINK_OVERHEAD) <= self.budget
    }

    fn charge(&mut self, cost: usize) -> bool {
        match self.used.checked_add(cost) {
            Some(total) if total <= self.budget => {
                self.used = total;
                true
            }
            _ => {
                self.full = true;
                false
            }
        }
    }

    /// Records that `commit`'s root tree is `tree`.
    pub fn add_root(&mut self, tree: ObjectId, commit: ObjectId) {
        if self.roots.contains_key(&tree) || !self.charge(LINK_OVERHEAD) {
            return;
        }
        self.roots.insert(tree, commit);
    }

    /// Records the entries of the whole tree `tree`.
    pub fn add_tree(&mut self, tree: ObjectId, entries: Vec<TreeEntry>) {
        for entry in entries {
            if self.links.contains_key(&entry.id) {
                continue;
            }
            if !self.charge(LINK_OVERHEAD.saturating_add(entry.name.len())) {
                return;
            }
            self.links.insert(
                entry.id,
                Link {
                    parent: tree,
                    name: entry.name,
                },
            );
        }
    }

    /// The path of `blob` and the commit whose tree holds it there, if the map leads from the
    /// blob up to a commit's root tree.
    pub fn locate(&self, blob: &ObjectId) -> Option<(String, ObjectId)> {
        let mut names: Vec<&[u8]> = Vec::new();
        let mut at = *blob;
        for _ in 0..MAX_DEPTH {
            let Some(link) = self.links.get(&at) else {
                break;
            };
            names.push(&link.name);
            at = link.parent;
        }
        let commit = *self.roots.get(&at)?;
        if names.is_empty() {
            return None;
        }
        let mut path = String::new();
        for name in names.iter().rev() {
            if !path.is_empty() {
                path.push('/');
            }
            path.push_str(&String::from_utf8_lossy(name));
        }
        if path.len() > MAX_PATH_LEN {
            let mut cut = MAX_PATH_LEN;
            while !path.is_char_boundary(cut) {
                cut -= 1;
            }
            path.truncate(cut);
        }
        Some((path, commit))
    }
}

/// One entry of a tree that may lead to a blob: a file, a symlink or a subtree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeEntry {
    /// The entry's object.
    pub id: ObjectId,
    /// Its name (no `/`).
    pub name: Box<[u8]>,
}

/// Where the tree reader is in an entry.
#[derive(Debug)]
enum Part {
    /// Reading `mode SP name` up to the NUL.
    Head,
    /// Reading the raw id; `wanted` when the entry is kept.
    Id { wanted: bool, got: usize },
    /// The tree broke the grammar or a bound: nothing more is read.
    Broken,
}

/// A streaming reader of a tree's entries, for one tree.
#[derive(Debug)]
pub struct TreeReader {
    format: ObjectFormat,
    part: Part,
    /// The `mode SP name` bytes of the current entry; at most [`MAX_NAME_LEN`] + 8.
    head: Vec<u8>,
    /// The name of the current entry, once its head is complete.
    name: Vec<u8>,
    id: [u8; 32],
    entries: Vec<TreeEntry>,
    /// Bytes the kept entries would cost in a [`PathMap`].
    cost: usize,
    /// The most `cost` may reach: what the map has room for.
    room: usize,
    /// Bytes of the tree read so far.
    position: u64,
    /// Offset in the tree of the current entry's first byte.
    entry_start: u64,
    /// The rules entry names are scanned with, when they are (a file name is pushed to the
    /// server like a file's content).
    rules: Option<Arc<RuleSet>>,
    /// Findings in entry names, each with the offset in the tree of the name's first byte.
    name_findings: Vec<(u64, Finding)>,
    /// The most findings kept.
    finding_room: usize,
}

impl TreeReader {
    /// A reader for one tree of `format`, keeping entries costing at most `room` bytes.
    pub fn new(format: ObjectFormat, room: usize) -> TreeReader {
        TreeReader {
            format,
            part: Part::Head,
            head: Vec::new(),
            name: Vec::new(),
            id: [0; 32],
            entries: Vec::new(),
            cost: 0,
            room,
            position: 0,
            entry_start: 0,
            rules: None,
            name_findings: Vec::new(),
            finding_room: 0,
        }
    }

    /// The same reader, scanning every entry name with `rules` and keeping at most `room`
    /// findings.
    pub fn scanning_names(mut self, rules: Arc<RuleSet>, room: usize) -> TreeReader {
        self.rules = Some(rules);
        self.finding_room = room;
        self
    }

    /// Findings in entry names, each with the offset in the tree where the name starts;
    /// complete once the tree was read.
    pub fn take_name_findings(&mut self) -> Vec<(u64, Finding)> {
        std::mem::take(&mut self.name_findings)
    }

    /// Reads the next bytes of the tree.
    pub fn update(&mut self, mut bytes: &[u8]) {
        let id_len = self.format.raw_len();
        while !bytes.is_empty() {
            match &mut self.part {
                Part::Broken => return,
                Part::Head => match memchr::memchr(0, bytes) {
                    Some(nul) => {
                        let (head, rest) = bytes.split_at(nul);
                        self.head.extend_from_slice(head);
                        bytes = rest.get(1..).unwrap_or_default();
                        self.position = self.position.saturating_add(nul as u64 + 1);
                        self.part = match self.take_head() {
                            Some(wanted) => Part::Id { wanted, got: 0 },
                            None => Part::Broken,
                        };
                    }
                    None => {
                        self.head.extend_from_slice(bytes);
                        self.position = self.position.saturating_add(bytes.len() as u64);
                        if self.head.len() > MAX_NAME_LEN + 8 {
                            self.part = Part::Broken;
                        }
                        return;
                    }
                },
                Part::Id { wanted, got } => {
                    let take = (id_len - *got).min(bytes.len());
                    let (now, rest) = bytes.split_at(take);
                    if let Some(slot) = self.id.get_mut(*got..*got + take) {
                        slot.copy_from_slice(now);
                    }
                    *got += take;
                    bytes = rest;
                    self.position = self.position.saturating_add(take as u64);
                    if *got == id_len {
                        let wanted = *wanted;
                        self.part = Part::Head;
                        self.entry_start = self.position;
                        if wanted {
                            self.keep_entry();
                        }
                    }
                }
            }
        }
    }

    /// Parses `mode SP name`; returns whether the entry is kept, or `None` if it is malformed.
    fn take_head(&mut self) -> Option<bool> {
        let head = std::mem::take(&mut self.head);
        let space = memchr::memchr(b' ', &head)?;
        let (mode, name) = head.split_at(space);
        let name = name.get(1..)?;
        if mode.is_empty() || !mode.iter().all(|b| (b'0'..=b'7').contains(b)) || name.is_empty() {
            return None;
        }
        self.scan_name(self.entry_start.saturating_add(space as u64 + 1), name);
        // Gitlinks (160000) name commits of another repository: never a blob of this pack.
        let wanted = mode != b"160000";
        self.name = name.to_vec();
        Some(wanted)
    }

    /// Scans one entry name, which starts at offset `at` of the tree.
    fn scan_name(&mut self, at: u64, name: &[u8]) {
        let Some(rules) = &self.rules else {
            return;
        };
        for finding in scan_bytes(rules, name) {
            if self.name_findings.len() >= self.finding_room {
                return;
            }
            self.name_findings.push((at, finding));
        }
    }

    fn keep_entry(&mut self) {
        let cost = LINK_OVERHEAD.saturating_add(self.name.len());
        let Some(total) = self.cost.checked_add(cost).filter(|&t| t <= self.room) else {
            self.name.clear();
            return;
        };
        let Some(id) = ObjectId::from_raw(self.format, &self.id[..self.format.raw_len()]) else {
            return;
        };
        self.cost = total;
        self.entries.push(TreeEntry {
            id,
            name: std::mem::take(&mut self.name).into_boxed_slice(),
        });
    }

    /// The entries read, if the tree was well formed to its end.
    pub fn finish(self) -> Option<Vec<TreeEntry>> {
        match self.part {
            Part::Head if self.head.is_empty() => Some(self.entries),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::object::{ObjectKind, object_id};

    fn tree_bytes(entries: &[(&str, &str, ObjectId)]) -> Vec<u8> {
        let mut out = Vec::new();
        for (mode, name, id) in entries {
            out.extend_from_slice(mode.as_bytes());
            out.push(b' ');
            out.extend_from_slice(name.as_bytes());
            out.push(0);
            out.extend_from_slice(id.as_bytes());
        }
        out
    }

    fn id(text: &str) -> ObjectId {
        object_id(ObjectFormat::Sha1, ObjectKind::Blob, text.as_bytes())
    }

    #[test]
    fn a_blob_is_located_through_its_trees_at_every_split() {
        let blob = id("secret file");
        let sub_entries = [("100644", "app.env", blob), ("100755", "run.sh", id("x"))];
        let sub = tree_bytes(&sub_entries);
        let sub_id = object_id(ObjectFormat::Sha1, ObjectKind::Tree, &sub);
        let root = tree_bytes(&[("100644", "README", id("r")), ("40000", "config", sub_id)]);
        let root_id = object_id(ObjectFormat::Sha1, ObjectKind::Tree, &root);
        let commit = id("a commit");

        for split in 0..=sub.len() {
            let mut map = PathMap::new(1 << 20);
            map.add_root(root_id, commit);
            for (tree_id, bytes, at) in [
                (root_id, &root, split.min(root.len())),
                (sub_id, &sub, split),
            ] {
                let mut reader = TreeReader::new(ObjectFormat::Sha1, 1 << 20);
                reader.update(&bytes[..at]);
                reader.update(&bytes[at..]);
                map.add_tree(tree_id, reader.finish().expect("well formed"));
            }
            assert_eq!(
                map.locate(&blob),
                Some(("config/app.env".to_owned(), commit))
            );
        }
    }

    #[test]
    fn a_full_map_keeps_what_fits_and_says_so() {
        let blob = id("b");
        let mut map = PathMap::new(LINK_OVERHEAD + 10);
        map.add_root(id("tree"), id("commit"));
        map.add_tree(
            id("tree"),
            vec![TreeEntry {
                id: blob,
                name: b"file.txt".to_vec().into_boxed_slice(),
            }],
        );
        assert!(map.is_full());
        assert!(map.used() <= LINK_OVERHEAD + 10);
        assert_eq!(map.locate(&blob), None);
    }

    #[test]
    fn malformed_trees_yield_nothing() {
        for bad in [&b"100644 name"[..], b"10x644 a\0", b"100644\0", b" a\0"] {
            let mut reader = TreeReader::new(ObjectFormat::Sha1, 1 << 20);
            reader.update(bad);
            assert_eq!(reader.finish(), None, "{bad:?}");
        }
        let mut reader = TreeReader::new(ObjectFormat::Sha1, 1 << 20);
        reader.update(&vec![b'1'; MAX_NAME_LEN + 100]);
        assert_eq!(reader.finish(), None);
    }

    #[test]
    fn an_unreachable_blob_has_no_path() {
        let map = PathMap::new(1 << 20);
        assert_eq!(map.locate(&id("nowhere")), None);
    }
}
