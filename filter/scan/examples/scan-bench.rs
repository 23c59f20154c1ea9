//! Throughput of the full rule set against a one-regex baseline, on real source text with
//! planted fake secrets.
//!
//! ```sh
//! cargo run -p gitgate-scan --release --example scan-bench
//! cargo run -p gitgate-scan --release --example scan-bench -- --mb 100 --hold-mb 16 --runs 5
//! ```
//!
//! The text is the Rust sources of the crates in the local Cargo registry (the project's own
//! dependencies), read in path order until `--hold-mb` is held, with one fake secret planted
//! about every 256 KiB. Each strategy scans `--mb` of it (repeating the held text when it is
//! smaller), best of `--runs`. MB/s is 10^6 bytes per second.
//!
//! Strategies:
//! - `engine`: `Scanner` over the full rule set, fed 64 KiB chunks as a stream would be;
//! - `keywords only`: the engine's keyword automaton alone, the floor the engine can reach;
//! - `one meta::Regex`: every rule pattern in one `regex-automata` meta regex (8 MiB lazy-DFA
//!   cache), counting matches, with no windows, validation or allowlist.
//!
//! `--stride N` takes every Nth file, so that a small held text spans as many crates as a large
//! one. `--only engine|keywords|baseline` runs one strategy (for profiling). Under wasm32-wasip1 the
//! source directory is given with `--source` as a preopened path.

#[path = "../tests/support/fakes.rs"]
mod fakes;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use gitgate_scan::rules::BUILTIN_RULES;
use gitgate_scan::{RuleSet, Scanner};
use regex_automata::meta;

const CHUNK: usize = 64 * 1024;
const PLANT_EVERY: usize = 256 * 1024;
const BASELINE_CACHE: usize = 8 * 1024 * 1024;

struct Args {
    mb: usize,
    hold_mb: usize,
    runs: usize,
    source: Option<PathBuf>,
    only: Option<String>,
    stride: usize,
}

fn args() -> Args {
    let mut a = Args {
        mb: 100,
        hold_mb: 100,
        runs: 5,
        source: None,
        only: None,
        stride: 1,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().unwrap_or_default();
        match flag.as_str() {
            "--mb" => a.mb = value.parse().expect("--mb N"),
            "--hold-mb" => a.hold_mb = value.parse().expect("--hold-mb N"),
            "--runs" => a.runs = value.parse().expect("--runs N"),
            "--source" => a.source = Some(PathBuf::from(value)),
            "--only" => a.only = Some(value),
            "--stride" => a.stride = value.parse::<usize>().expect("--stride N").max(1),
            other => panic!("unknown flag {other}"),
        }
    }
    a.hold_mb = a.hold_mb.min(a.mb);
    a
}

fn default_source() -> PathBuf {
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .expect("set CARGO_HOME or HOME, or pass --source");
    home.join("registry").join("src")
}

fn collect_rs(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    for p in paths {
        if p.is_dir() {
            collect_rs(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

/// Real source text up to `limit` bytes.
fn source_text(dir: &Path, limit: usize, stride: usize) -> Vec<u8> {
    let mut files = Vec::new();
    collect_rs(dir, &mut files);
    let mut text = Vec::with_capacity(limit);
    for f in files.into_iter().step_by(stride) {
        if text.len() >= limit {
            break;
        }
        if let Ok(bytes) = std::fs::read(&f) {
            text.extend_from_slice(&bytes);
            text.push(b'\n');
        }
    }
    text.truncate(limit);
    text
}

/// Plants one fake secret every [`PLANT_EVERY`] bytes, at a line start, cycling through the
/// rules; returns the text and the rule ids planted.
fn plant(clean: &[u8]) -> (Vec<u8>, Vec<&'static str>) {
    let mut rng = fakes::Rng::new(2024);
    let mut out = Vec::with_capacity(clean.len() + clean.len() / 1000);
    let mut planted = Vec::new();
    let mut at = 0;
    let mut rule = 0;
    while at < clean.len() {
        let end = (at + PLANT_EVERY).min(clean.len());
        let cut = clean[at..end]
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(end, |i| at + i + 1);
        out.extend_from_slice(&clean[at..cut]);
        if cut < clean.len() {
            let spec = &BUILTIN_RULES[rule % BUILTIN_RULES.len()];
            rule += 1;
            let sample = fakes::sample(spec.id, &mut rng);
            out.extend_from_slice(b"\n");
            out.extend_from_slice(sample.text.as_bytes());
            out.extend_from_slice(b"\n");
            planted.extend(sample.expect.iter().copied());
        }
        at = cut.max(at + 1);
    }
    (out, planted)
}

/// Best seconds of `runs` runs of `f` over `total` bytes; also returns `f`'s last result.
fn best<T>(runs: usize, mut f: impl FnMut() -> T) -> (f64, T) {
    let mut best = f64::MAX;
    let mut last = None;
    for _ in 0..runs {
        let t = Instant::now();
        let r = f();
        best = best.min(t.elapsed().as_secs_f64());
        last = Some(r);
    }
    (best, last.expect("at least one run"))
}

fn passes(total: usize, held: usize) -> usize {
    total.div_ceil(held.max(1))
}

/// Node 20's V8 has crashed in its GC while a module grew its memory step by step with
/// ~100 MB in use; growing once, up front, keeps every later allocation inside memory the
/// module already has.
#[cfg(target_family = "wasm")]
fn reserve_memory(bytes: usize) {
    // black_box keeps the optimiser from removing an allocation nothing reads.
    drop(std::hint::black_box(Vec::<u8>::with_capacity(bytes)));
}

/// The module's linear memory, in MiB (wasm pages are 64 KiB); 0 natively.
fn memory_mib() -> usize {
    #[cfg(target_arch = "wasm32")]
    return core::arch::wasm32::memory_size(0) / 16;
    #[cfg(not(target_arch = "wasm32"))]
    0
}

fn main() {
    let a = args();
    #[cfg(target_family = "wasm")]
    reserve_memory((a.hold_mb * 2 + 96) * 1_000_000);
    let source = a.source.clone().unwrap_or_else(default_source);
    let clean = source_text(&source, a.hold_mb * 1_000_000, a.stride);
    assert!(!clean.is_empty(), "no .rs files under {}", source.display());
    let (text, planted) = plant(&clean);
    let reps = passes(a.mb * 1_000_000, text.len());
    let scanned = (text.len() * reps) as f64;
    println!(
        "text: {:.1} MB held ({} fake secrets planted), scanned {reps}x = {:.1} MB per run, best of {}",
        text.len() as f64 / 1e6,
        planted.len(),
        scanned / 1e6,
        a.runs
    );

    let t = Instant::now();
    let rules = RuleSet::builtin().expect("built-in rules compile");
    let keywords: usize = rules.rules().iter().map(|r| r.keywords().len()).sum();
    println!(
        "rule set: {} rules, {keywords} keywords, compiled in {:.0} ms",
        rules.rules().len(),
        t.elapsed().as_secs_f64() * 1e3
    );

    let run = |name: &str| a.only.as_deref().is_none_or(|only| only == name);

    // Engine: the scanner as a stream filter would use it.
    let runs = if run("engine") { a.runs } else { 1 };
    let (secs, findings) = best(runs, || {
        let mut all = Vec::new();
        for _ in 0..reps {
            let mut scanner = Scanner::new(&rules);
            for chunk in text.chunks(CHUNK) {
                let _ = scanner.feed(chunk, &mut all);
            }
            let _ = scanner.finish(&mut all);
        }
        all
    });
    let engine_mbs = scanned / secs / 1e6;
    if cfg!(target_family = "wasm") {
        println!("wasm memory after the engine: {} MiB", memory_mib());
    }
    println!("engine (keywords + per-rule windows): {engine_mbs:>8.0} MB/s");

    // Keyword pass alone.
    if run("keywords") {
        let (secs, hits) = best(a.runs, || {
            let ac = aho_corasick::AhoCorasick::builder()
                .kind(Some(aho_corasick::AhoCorasickKind::DFA))
                .ascii_case_insensitive(true)
                .build(rules.rules().iter().flat_map(|r| r.keywords().iter()))
                .expect("keywords build");
            let mut n = 0usize;
            for _ in 0..reps {
                n += ac.find_overlapping_iter(&text[..]).count();
            }
            n
        });
        println!(
            "keywords only (aho-corasick DFA):     {:>8.0} MB/s ({} hits per pass)",
            scanned / secs / 1e6,
            hits / reps
        );
    }

    // Baseline: one meta regex over every pattern.
    if run("baseline") {
        let t = Instant::now();
        let hirs = gitgate_scan::ruleset::parse_rule_patterns(&rules);
        let baseline = meta::Regex::builder()
            .configure(
                meta::Config::new()
                    .utf8_empty(false)
                    .hybrid_cache_capacity(BASELINE_CACHE)
                    .nfa_size_limit(Some(256 * 1024 * 1024)),
            )
            .build_many_from_hir(&hirs)
            .expect("baseline builds");
        println!(
            "baseline compiled in {:.0} ms",
            t.elapsed().as_secs_f64() * 1e3
        );
        let (secs, matches) = best(a.runs, || {
            let mut n = 0usize;
            for _ in 0..reps {
                n += baseline.find_iter(&text[..]).count();
            }
            n
        });
        let baseline_mbs = scanned / secs / 1e6;
        println!(
            "one meta::Regex over all patterns:    {baseline_mbs:>8.0} MB/s ({} matches per pass)",
            matches / reps
        );
        println!("engine / baseline: {:.2}x", engine_mbs / baseline_mbs);
    }

    // What was found: planted secrets, and findings in the real text around them.
    let per_pass = findings.len() / reps;
    let mut found: BTreeMap<&str, usize> = BTreeMap::new();
    for f in &findings[..per_pass] {
        *found
            .entry(rules.rule(&f.rule_id).map_or("?", |r| r.id()))
            .or_default() += 1;
    }
    let mut expected: BTreeMap<&str, usize> = BTreeMap::new();
    for id in &planted {
        *expected.entry(id).or_default() += 1;
    }
    let missed: Vec<String> = expected
        .iter()
        .filter(|(id, n)| found.get(*id).copied().unwrap_or(0) < **n)
        .map(|(id, n)| format!("{id} ({} of {n})", found.get(id).copied().unwrap_or(0)))
        .collect();
    println!(
        "findings per pass: {per_pass} (planted {}); rules short of their plants: {:?}",
        planted.len(),
        missed
    );
    let extra: Vec<String> = found
        .iter()
        .filter_map(|(id, n)| {
            let e = expected.get(id).copied().unwrap_or(0);
            (*n > e).then(|| format!("{id}: +{}", n - e))
        })
        .collect();
    println!("findings beyond the plants, in the real sources: {extra:?}");
    if cfg!(target_family = "wasm") {
        println!("wasm memory at the end: {} MiB", memory_mib());
    }
}
