//! Throughput of the pack object reader on a large pack made by git at run time.
//!
//! ```sh
//! cargo run -p gitgate-core --release --example pack-bench          # about 100 MB of pack
//! cargo run -p gitgate-core --release --example pack-bench -- 20    # about 20 MB
//! ```
//!
//! The pack is written by `git fast-import` into a temporary repository (removed at the end):
//! text files of generated words and ids, each in three versions that change a few lines, so
//! that the second and third versions are deltas of the one before, as in a real history. It is
//! then fed to [`PackReader`] in 64 KiB slices (the size of Envoy body chunks), with a sink that
//! only counts, and for comparison to the [`PackFramer`], which inflates but hands nothing out.

use std::io::{BufWriter, Write};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use gitgate_core::object::ObjectInfo;
use gitgate_core::pack::PackFramer;
use gitgate_core::pack_objects::{
    Content, EntryKind, ObjectChunk, ObjectEnd, ObjectSink, ObjectStart, PackReader,
};
use gitgate_core::receive_pack::ObjectFormat;

/// Size of one generated file (first version).
const FILE_LEN: usize = 192 * 1024;

/// Slice size fed to the readers.
const CHUNK_LEN: usize = 64 * 1024;

/// Passes over the pack; the best is reported.
const PASSES: usize = 3;

fn main() {
    let target_mb: usize = std::env::args()
        .nth(1)
        .and_then(|arg| arg.parse().ok())
        .unwrap_or(100);
    let work = TempDir::new();
    let started = Instant::now();
    let pack = match make_pack(work.path(), target_mb) {
        Ok(pack) => pack,
        Err(error) => {
            eprintln!("pack-bench: could not make a pack with git: {error}");
            std::process::exit(1);
        }
    };
    let mb = pack.len() as f64 / 1e6;
    println!(
        "pack: {mb:.1} MB made by git fast-import in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let mut best = Duration::MAX;
    let mut counts = Counts::default();
    for _ in 0..PASSES {
        counts = Counts::default();
        let mut reader = PackReader::new(ObjectFormat::Sha1, 0);
        let started = Instant::now();
        for chunk in pack.chunks(CHUNK_LEN) {
            if let Err(error) = reader.feed(chunk, &mut counts) {
                eprintln!("pack-bench: {error}");
                std::process::exit(1);
            }
        }
        if let Err(error) = reader.finish() {
            eprintln!("pack-bench: {error}");
            std::process::exit(1);
        }
        best = best.min(started.elapsed());
    }
    let seconds = best.as_secs_f64();
    println!(
        "objects: {} ({} stored, {} deltas rebuilt, {} deltas as inserts only), {} commits",
        counts.objects, counts.stored, counts.rebuilt, counts.inserts_only, counts.commits
    );
    println!(
        "object reader: {:.1} MB/s of pack, {:.1} MB/s of object content ({:.1} MB handed out), best of {PASSES}",
        mb / seconds,
        counts.content as f64 / 1e6 / seconds,
        counts.content as f64 / 1e6,
    );

    let mut best = Duration::MAX;
    for _ in 0..PASSES {
        let mut framer = PackFramer::new(ObjectFormat::Sha1, 0);
        let started = Instant::now();
        for chunk in pack.chunks(CHUNK_LEN) {
            if let Err(error) = framer.feed(chunk) {
                eprintln!("pack-bench: {error}");
                std::process::exit(1);
            }
        }
        best = best.min(started.elapsed());
    }
    println!(
        "framer (inflate only): {:.1} MB/s of pack",
        mb / best.as_secs_f64()
    );
}

/// A sink that counts.
#[derive(Debug, Default)]
struct Counts {
    objects: u64,
    stored: u64,
    rebuilt: u64,
    inserts_only: u64,
    commits: u64,
    content: u64,
}

impl ObjectSink for Counts {
    fn object_start(&mut self, object: &ObjectStart) -> ControlFlow<()> {
        self.objects += 1;
        match (object.entry, object.content) {
            (EntryKind::Object(_), _) => self.stored += 1,
            (_, Content::Whole(_)) => self.rebuilt += 1,
            (_, Content::Inserts) => self.inserts_only += 1,
        }
        ControlFlow::Continue(())
    }

    fn object_data(&mut self, chunk: &ObjectChunk<'_>) -> ControlFlow<()> {
        self.content += chunk.bytes.len() as u64;
        ControlFlow::Continue(())
    }

    fn object_end(&mut self, object: ObjectEnd) -> ControlFlow<()> {
        if matches!(object.info, Some(ObjectInfo::Commit(_))) {
            self.commits += 1;
        }
        ControlFlow::Continue(())
    }
}

/// A directory removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        let path = std::env::temp_dir().join(format!("gitgate-pack-bench-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        TempDir(path)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// git with the user's configuration ignored.
fn git(home: &Path) -> Command {
    let mut command = Command::new("git");
    command
        .env("HOME", home)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null");
    command
}

/// Makes a pack of about `target_mb` MB and returns its bytes.
fn make_pack(work: &Path, target_mb: usize) -> std::io::Result<Vec<u8>> {
    let home = work.join("home");
    let repo = work.join("bench.git");
    std::fs::create_dir_all(&home)?;
    let status = git(&home)
        .args(["init", "--quiet", "--bare"])
        .arg(&repo)
        .status()?;
    if !status.success() {
        return Err(std::io::Error::other("git init failed"));
    }
    let mut import = git(&home)
        .arg("--git-dir")
        .arg(&repo)
        .args(["fast-import", "--quiet"])
        .stdin(Stdio::piped())
        .spawn()?;
    let stdin = import
        .stdin
        .take()
        .ok_or_else(|| std::io::Error::other("no stdin"))?;
    // About 55% of the first versions' size ends up in the pack.
    let files = (target_mb * 1_000_000 * 100 / 55 / FILE_LEN).max(1);
    write_history(BufWriter::new(stdin), files)?;
    if !import.wait()?.success() {
        return Err(std::io::Error::other("git fast-import failed"));
    }
    let packs = repo.join("objects").join("pack");
    for entry in std::fs::read_dir(&packs)? {
        let path = entry?.path();
        if path.extension().is_some_and(|ext| ext == "pack") {
            return std::fs::read(path);
        }
    }
    Err(std::io::Error::other("fast-import wrote no pack"))
}

/// Streams a fast-import history: three versions of `files` files (each version's blob right
/// after the one before, which fast-import stores as a delta of it), then one commit per version.
fn write_history(mut out: impl Write, files: usize) -> std::io::Result<()> {
    let mut random = Random(0x2545_f491_4f6c_dd1d);
    let vocabulary: Vec<String> = (0..4096).map(|_| random.word()).collect();
    let versions = 3;
    for file in 0..files {
        let mut text = random.text(&vocabulary, FILE_LEN);
        for version in 0..versions {
            if version > 0 {
                random.edit(&mut text, &vocabulary);
            }
            let mark = 1 + file * versions + version;
            writeln!(out, "blob\nmark :{mark}\ndata {}", text.len())?;
            out.write_all(&text)?;
            out.write_all(b"\n")?;
        }
    }
    for version in 0..versions {
        let time = 1_704_067_200 + version * 86_400;
        let message = format!("version {version}\n");
        writeln!(out, "commit refs/heads/main")?;
        writeln!(out, "mark :{}", 1 + files * versions + version)?;
        writeln!(out, "author A U Thor <author@example.com> {time} +0000")?;
        writeln!(
            out,
            "committer C O Mitter <committer@example.com> {time} +0000"
        )?;
        writeln!(out, "data {}\n{message}", message.len())?;
        if version > 0 {
            writeln!(out, "from :{}", files * versions + version)?;
        }
        for file in 0..files {
            let mark = 1 + file * versions + version;
            writeln!(out, "M 100644 :{mark} src/{:03}/file-{file}.txt", file % 64)?;
        }
        writeln!(out)?;
    }
    out.flush()
}

/// xorshift64*: the same history at every run.
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

    fn word(&mut self) -> String {
        let len = 2 + self.below(9);
        (0..len)
            .map(|_| char::from(b'a' + self.below(26) as u8))
            .collect()
    }

    /// Lines of words, some with a hex id or a number in them, about `len` bytes.
    fn text(&mut self, vocabulary: &[String], len: usize) -> Vec<u8> {
        let mut text = Vec::with_capacity(len + 200);
        while text.len() < len {
            self.line(vocabulary, &mut text);
        }
        text
    }

    fn line(&mut self, vocabulary: &[String], text: &mut Vec<u8>) {
        for i in 0..4 + self.below(10) {
            if i > 0 {
                text.push(b' ');
            }
            match self.below(12) {
                0 => text.extend(format!("{:016x}{:016x}", self.next(), self.next()).bytes()),
                1 => text.extend(self.next().to_string().bytes()),
                _ => text.extend(vocabulary[self.below(vocabulary.len())].bytes()),
            }
        }
        text.push(b'\n');
    }

    /// Replaces a few lines with new ones.
    fn edit(&mut self, text: &mut Vec<u8>, vocabulary: &[String]) {
        for _ in 0..3 {
            let at = self.below(text.len());
            let start = text[..at]
                .iter()
                .rposition(|&b| b == b'\n')
                .map_or(0, |i| i + 1);
            let end = text[at..]
                .iter()
                .position(|&b| b == b'\n')
                .map_or(text.len(), |i| at + i + 1);
            let mut line = Vec::new();
            self.line(vocabulary, &mut line);
            text.splice(start..end, line);
        }
    }
}
