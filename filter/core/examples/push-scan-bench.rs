//! Throughput of the secret scan of a push: [`PushScan`] (inflate, object ids, one scanner per
//! object) against the [`PackReader`] alone and the [`PackFramer`], on a pack built here.
//!
//! ```sh
//! cargo run -p gitgate-core --release --example push-scan-bench -- --kind random --mb 64
//! cargo run -p gitgate-core --release --example push-scan-bench -- --kind text --mb 64
//! cargo run -p gitgate-core --release --example push-scan-bench -- \
//!   --kind source --mb 32 --source "$CARGO_HOME/registry/src"
//! # In V8 (the engine family Envoy runs the filter in), under Node's WASI:
//! cargo build -p gitgate-core --release --target wasm32-wasip1 --example push-scan-bench
//! node filter/core/examples/push-scan-bench.mjs \
//!   target/wasm32-wasip1/release/examples/push-scan-bench.wasm --kind random --mb 64
//! ```
//!
//! The pack is made in memory, so the same program runs natively and as wasm: `random` is 1 MiB
//! blobs of incompressible bytes stored as git stores them (deflate stored blocks), like a push
//! of binaries; `text` is 64 KiB blobs of generated source-like lines compressed at zlib's
//! default level; `source` takes the files under `--source DIR` (e.g. the Cargo registry's
//! sources), compressed at zlib's default level, like a push of code. One fake credential is
//! planted in the last blob, so the scan must reach the end. Figures are MB/s of pack (10^6
//! bytes), best of `--runs`, fed in 64 KiB slices like Envoy's body chunks.

use std::io::Write;
use std::ops::ControlFlow;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use flate2::Compression;
use flate2::write::ZlibEncoder;
use gitgate_core::pack::PackFramer;
use gitgate_core::pack_objects::{ObjectChunk, ObjectSink, PackReader};
use gitgate_core::push_scan::{PushScan, SecretScanning};
use gitgate_core::receive_pack::ObjectFormat;
use gitgate_scan::RuleSet;
use gitgate_scan::fake::{self, FakeRng};
use sha1::{Digest, Sha1};

/// Slice size fed to the readers: Envoy's body chunks on HTTP/1.1.
const CHUNK_LEN: usize = 64 * 1024;

struct Args {
    kind: String,
    mb: usize,
    runs: usize,
    /// For `--kind source`: the directory whose files become the blobs.
    source: Option<String>,
}

fn args() -> Args {
    let mut args = Args {
        kind: "random".into(),
        mb: 64,
        runs: 3,
        source: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().unwrap_or_default();
        match flag.as_str() {
            "--kind" => args.kind = value,
            "--mb" => args.mb = value.parse().unwrap_or(args.mb),
            "--runs" => args.runs = value.parse().unwrap_or(args.runs),
            "--source" => args.source = Some(value),
            other => {
                eprintln!("push-scan-bench: unknown flag {other}");
                std::process::exit(2);
            }
        }
    }
    args
}

/// Fills `out` with random bytes (the fake-credential generator's SplitMix64: seeded, the
/// same everywhere).
fn fill(rng: &mut FakeRng, out: &mut [u8]) {
    for chunk in out.chunks_mut(8) {
        let bytes = rng.next_u64().to_le_bytes();
        chunk.copy_from_slice(&bytes[..chunk.len()]);
    }
}

/// Source-like text: identifiers, keywords, numbers and punctuation on short lines.
fn text_blob(rng: &mut FakeRng, len: usize) -> Vec<u8> {
    const WORDS: [&str; 24] = [
        "let",
        "fn",
        "self",
        "value",
        "config",
        "result",
        "match",
        "return",
        "String",
        "Vec",
        "client",
        "request",
        "token_count",
        "handler",
        "error",
        "Some",
        "None",
        "async",
        "await",
        "impl",
        "struct",
        "pub",
        "offset",
        "buffer",
    ];
    let mut out = Vec::with_capacity(len + 80);
    while out.len() < len {
        let words = 3 + (rng.next_u64() % 8) as usize;
        out.extend_from_slice(b"    ");
        for _ in 0..words {
            out.extend_from_slice(WORDS[(rng.next_u64() % WORDS.len() as u64) as usize].as_bytes());
            match rng.next_u64() % 6 {
                0 => out.extend_from_slice(b"("),
                1 => out.extend_from_slice(b" = "),
                2 => out.extend_from_slice(format!(" {} ", rng.next_u64() % 10_000).as_bytes()),
                3 => out.extend_from_slice(b"."),
                _ => out.push(b' '),
            }
        }
        out.extend_from_slice(b";\n");
    }
    out.truncate(len);
    out
}

/// A fake GitHub classic token (valid checksum, never issued).
fn fake_token(rng: &mut FakeRng) -> String {
    fake::github_classic(rng)
}

/// Appends one blob entry (gitformat-pack: type 3, size varint, zlib stream).
fn push_blob(pack: &mut Vec<u8>, data: &[u8], level: Compression) {
    let mut size = data.len() as u64;
    let mut byte = (3u8 << 4) | (size & 0x0f) as u8;
    size >>= 4;
    while size > 0 {
        pack.push(byte | 0x80);
        byte = (size & 0x7f) as u8;
        size >>= 7;
    }
    pack.push(byte);
    let mut encoder = ZlibEncoder::new(Vec::new(), level);
    encoder.write_all(data).expect("in memory");
    pack.extend(encoder.finish().expect("in memory"));
}

/// Files under `dir` (sorted, recursively), about `mb` MB of them.
fn source_files(dir: &std::path::Path, budget: &mut usize, out: &mut Vec<Vec<u8>>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut paths: Vec<_> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    for path in paths {
        if *budget == 0 {
            return;
        }
        if path.is_dir() {
            source_files(&path, budget, out);
        } else if let Ok(data) = std::fs::read(&path)
            && !data.is_empty()
        {
            *budget = budget.saturating_sub(data.len());
            out.push(data);
        }
    }
}

fn make_pack(kind: &str, mb: usize, source: Option<&str>) -> (Vec<u8>, u64) {
    let mut rng = FakeRng::new(42);
    if kind == "source" {
        let mut files = Vec::new();
        let mut budget = mb * 1_000_000;
        source_files(
            std::path::Path::new(source.unwrap_or(".")),
            &mut budget,
            &mut files,
        );
        let mut pack = b"PACK\0\0\0\x02".to_vec();
        pack.extend_from_slice(&(files.len() as u32 + 1).to_be_bytes());
        let mut content = 0u64;
        for data in &files {
            content += data.len() as u64;
            push_blob(&mut pack, data, Compression::default());
        }
        let planted = format!("GITHUB_TOKEN={}\n", fake_token(&mut rng));
        push_blob(&mut pack, planted.as_bytes(), Compression::default());
        content += planted.len() as u64;
        let trailer = Sha1::digest(&pack);
        pack.extend_from_slice(&trailer);
        return (pack, content);
    }
    let (blob_len, level) = match kind {
        "text" => (64 * 1024, Compression::default()),
        _ => (1 << 20, Compression::none()),
    };
    let target = mb * 1_000_000;
    let count = target.div_ceil(blob_len).max(1);
    let mut pack = b"PACK\0\0\0\x02".to_vec();
    pack.extend_from_slice(&(count as u32).to_be_bytes());
    let mut content = 0u64;
    for i in 0..count {
        let mut data = match kind {
            "text" => text_blob(&mut rng, blob_len),
            _ => {
                let mut data = vec![0u8; blob_len];
                fill(&mut rng, &mut data);
                data
            }
        };
        if i + 1 == count {
            let line = format!("\nGITHUB_TOKEN={}\n", fake_token(&mut rng));
            let at = data.len() - line.len();
            data[at..].copy_from_slice(line.as_bytes());
        }
        content += data.len() as u64;
        push_blob(&mut pack, &data, level);
    }
    let trailer = Sha1::digest(&pack);
    pack.extend_from_slice(&trailer);
    (pack, content)
}

struct Nothing;

impl ObjectSink for Nothing {
    fn object_data(&mut self, _chunk: &ObjectChunk<'_>) -> ControlFlow<()> {
        ControlFlow::Continue(())
    }
}

fn best(runs: usize, mut run: impl FnMut()) -> Duration {
    (0..runs.max(1))
        .map(|_| {
            let started = Instant::now();
            run();
            started.elapsed()
        })
        .min()
        .unwrap_or_default()
}

fn main() {
    let args = args();
    let started = Instant::now();
    let rules = Arc::new(RuleSet::builtin().expect("built-in rules"));
    let compiled = started.elapsed();
    let (pack, content) = make_pack(&args.kind, args.mb, args.source.as_deref());
    let mb = pack.len() as f64 / 1e6;
    println!(
        "pack: {mb:.1} MB ({} kind, {:.1} MB of content); rules compiled in {:.0} ms",
        args.kind,
        content as f64 / 1e6,
        compiled.as_secs_f64() * 1000.0
    );
    let settings = Rc::new(SecretScanning::with_defaults(rules));

    let mut findings = 0;
    let scan = best(args.runs, || {
        let mut scan = PushScan::new(Rc::clone(&settings), ObjectFormat::Sha1, 0);
        for chunk in pack.chunks(CHUNK_LEN) {
            scan.feed(chunk).expect("a valid pack");
        }
        findings = scan.finish().expect("complete").findings.len();
    });
    let reader = best(args.runs, || {
        let mut reader = PackReader::new(ObjectFormat::Sha1, 0);
        for chunk in pack.chunks(CHUNK_LEN) {
            let _ = reader.feed(chunk, &mut Nothing).expect("a valid pack");
        }
        reader.finish().expect("complete");
    });
    let framer = best(args.runs, || {
        let mut framer = PackFramer::new(ObjectFormat::Sha1, 0);
        for chunk in pack.chunks(CHUNK_LEN) {
            framer.feed(chunk).expect("a valid pack");
        }
    });
    let rate = |d: Duration| mb / d.as_secs_f64();
    println!(
        "push scan (reader + scanners): {:.0} MB/s, {findings} finding(s)",
        rate(scan)
    );
    println!(
        "object reader alone (inflate, ids): {:.0} MB/s",
        rate(reader)
    );
    println!("framer (inflate only): {:.0} MB/s", rate(framer));
    let scanning = scan.as_secs_f64() - reader.as_secs_f64();
    if scanning > 0.0 {
        println!(
            "scanning alone: {:.0} MB/s of content",
            content as f64 / 1e6 / scanning
        );
    }
}
