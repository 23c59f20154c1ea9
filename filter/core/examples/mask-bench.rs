//! Masking throughput, natively: text, JSON (string values and a base64 file), and a fetch
//! answer (pack data in band 1), each fed in 64 KiB chunks as Envoy hands them over, against
//! the scanner alone on the same bytes.
//!
//! ```sh
//! cargo run -p gitgate-core --release --example mask-bench               # 32 MB per body
//! cargo run -p gitgate-core --release --example mask-bench -- --mb 8
//! ```
//!
//! The bodies are generated from a fixed seed: source-like text with one fake credential (in
//! its vendor's format, never issued) every 256 KiB. Best of five runs; MB/s is 10^6 bytes per
//! second of input.

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use gitgate_core::mask::{BodyKind, GitBody, Masking, MaskingSection};
use gitgate_scan::{RuleSet, Scanner};

const CHUNK: usize = 64 * 1024;
const RUNS: usize = 5;
const PLANT_EVERY: usize = 256 * 1024;

fn main() {
    let mut mb = 32usize;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--mb" => mb = args.next().and_then(|v| v.parse().ok()).unwrap_or(mb),
            other => {
                eprintln!("unknown argument {other}; usage: mask-bench [--mb N]");
                std::process::exit(2);
            }
        }
    }
    let size = mb * 1_000_000;

    let started = Instant::now();
    let rules = Arc::new(RuleSet::builtin().expect("built-in rules"));
    let masking = Masking::with_rules(&MaskingSection::default(), Arc::clone(&rules))
        .expect("default masking");
    println!(
        "rules compiled in {:.1} ms; bodies of {mb} MB, {} KiB chunks, best of {RUNS}",
        started.elapsed().as_secs_f64() * 1e3,
        CHUNK / 1024
    );

    let mut fake = Fake(0x5eed);
    let text = source_text(&mut fake, size);
    let issues = issues_json(&mut fake, size);
    let file = contents_json(&mut fake, size);
    let fetch = fetch_answer(&mut fake, size);

    println!(
        "{:<44} {:>10} {:>9} {:>8}",
        "body", "MB/s", "masks", "out/in"
    );
    scan_only(&rules, "text, scanner alone (no masking)", &text);
    bench(&masking, "text/plain", BodyKind::Text, &text, false);
    scan_only(&rules, "json issues, scanner alone", &issues);
    bench(
        &masking,
        "json issues (string values)",
        BodyKind::Json,
        &issues,
        false,
    );
    bench(
        &masking,
        "json file (base64 content, 60-char lines)",
        BodyKind::Json,
        &file,
        false,
    );
    let fetch_kind = BodyKind::Git(GitBody::UploadPackResult);
    bench(
        &masking,
        "fetch answer, every chunk read",
        fetch_kind,
        &fetch,
        false,
    );
    bench(
        &masking,
        "fetch answer, pack chunks skipped",
        fetch_kind,
        &fetch,
        true,
    );
}

/// Runs the masker over `body` and prints the best throughput.
fn bench(masking: &Masking, name: &str, kind: BodyKind, body: &[u8], skip: bool) {
    let mut best = Duration::MAX;
    let mut masks = 0;
    let mut out_len = 0;
    for _ in 0..RUNS {
        let started = Instant::now();
        let mut masker = masking.body_masker(kind);
        let mut out = Vec::with_capacity(CHUNK + 4096);
        let mut written = 0;
        for chunk in body.chunks(CHUNK) {
            if skip && masker.passthrough_len() >= chunk.len() as u64 {
                masker.skip(chunk.len() as u64);
                written += chunk.len();
                continue;
            }
            out.clear();
            masker.feed(chunk, &mut out);
            written += out.len();
        }
        out.clear();
        masker.finish(&mut out);
        written += out.len();
        best = best.min(started.elapsed());
        masks = masker.report().masked;
        out_len = written;
    }
    report(name, body.len(), best, masks, out_len);
}

/// The scanner alone over `body`, for comparison.
fn scan_only(rules: &Arc<RuleSet>, name: &str, body: &[u8]) {
    let mut best = Duration::MAX;
    let mut found = 0;
    for _ in 0..RUNS {
        let started = Instant::now();
        let mut scanner = Scanner::new(Arc::clone(rules));
        let mut findings = Vec::new();
        for chunk in body.chunks(CHUNK) {
            let _ = scanner.feed(chunk, &mut findings);
        }
        let _ = scanner.finish(&mut findings);
        best = best.min(started.elapsed());
        found = findings.len() as u64;
    }
    report(name, body.len(), best, found, body.len());
}

fn report(name: &str, len: usize, best: Duration, masks: u64, out_len: usize) {
    let rate = len as f64 / best.as_secs_f64() / 1e6;
    println!(
        "{name:<44} {rate:>10.0} {masks:>9} {:>8.3}",
        out_len as f64 / len as f64
    );
}

/// xorshift64*, for repeatable bodies.
struct Fake(u64);

impl Fake {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn pick(&mut self, alphabet: &[u8], len: usize) -> String {
        (0..len)
            .map(|_| char::from(alphabet[(self.next() % alphabet.len() as u64) as usize]))
            .collect()
    }

    /// A fake credential in one of a few vendor formats.
    fn secret(&mut self) -> String {
        const BASE62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
        match self.next() % 3 {
            0 => {
                let body = self.pick(BASE62, 30);
                let sum = gitgate_scan::validate::github_checksum(body.as_bytes());
                format!("ghp_{body}{}", String::from_utf8_lossy(&sum))
            }
            1 => format!("AKIA{}", self.pick(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", 16)),
            _ => format!("sk_live_{}", self.pick(BASE62, 24)),
        }
    }
}

/// Lines that look like source code and prose.
const LINES: &[&str] = &[
    "fn handle(request: &Request) -> Result<Response, Error> {",
    "    let token = headers.get(\"authorization\").map(|v| v.to_str());",
    "    // The secret key is read from the environment, never from the repository.",
    "    if config.password.is_empty() { return Err(Error::Config); }",
    "import { createClient } from './client.js'; // api_key comes from the vault",
    "SELECT id, name, created_at FROM users WHERE org_id = $1 ORDER BY name;",
    "The quick brown fox jumps over the lazy dog while the build runs.",
    "    assert_eq!(parse(\"0000\"), Ok(Packet::Flush)); // 4b825dc642cb6eb9a060",
    "- name: deploy\n  run: ./scripts/deploy.sh --region eu-west-1 --stage prod",
    "}",
];

fn source_text(fake: &mut Fake, size: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(size + 256);
    let mut next_plant = PLANT_EVERY;
    while out.len() < size {
        if out.len() >= next_plant {
            out.extend(format!("DEPLOY_TOKEN={}\n", fake.secret()).as_bytes());
            next_plant += PLANT_EVERY;
        }
        let line = LINES[(fake.next() % LINES.len() as u64) as usize];
        out.extend(line.as_bytes());
        out.push(b'\n');
    }
    out
}

/// A JSON array of GitHub issues whose bodies are source text.
fn issues_json(fake: &mut Fake, size: usize) -> Vec<u8> {
    let text = source_text(fake, size);
    let mut issues = Vec::new();
    for (number, body) in text.chunks(8 * 1024).enumerate() {
        issues.push(serde_json::json!({
            "url": format!("https://api.github.com/repos/o/r/issues/{number}"),
            "number": number,
            "title": "Build fails on main",
            "user": {"login": "octocat", "id": 1, "type": "User", "site_admin": false},
            "labels": [],
            "state": "open",
            "comments": 3,
            "body": String::from_utf8_lossy(body),
        }));
    }
    serde_json::to_vec_pretty(&issues).expect("serializable")
}

/// A contents answer with a file in GitHub's base64 layout.
fn contents_json(fake: &mut Fake, size: usize) -> Vec<u8> {
    let file = source_text(fake, size * 3 / 4);
    let encoded = base64::engine::general_purpose::STANDARD.encode(file);
    let mut content = String::with_capacity(encoded.len() + encoded.len() / 60 + 1);
    for line in encoded.as_bytes().chunks(60) {
        content.push_str(std::str::from_utf8(line).expect("ascii"));
        content.push('\n');
    }
    serde_json::to_vec_pretty(&serde_json::json!({
        "type": "file", "encoding": "base64", "size": size, "name": "big.rs",
        "path": "src/big.rs", "content": content, "sha": "0".repeat(40),
    }))
    .expect("serializable")
}

/// A fetch answer: NAK, progress, then pack data in full side-band-64k packets with a progress
/// line every megabyte.
fn fetch_answer(fake: &mut Fake, size: usize) -> Vec<u8> {
    let mut out = b"0008NAK\n".to_vec();
    let mut payload = vec![1u8];
    payload.extend((0..65515).map(|_| (fake.next() >> 24) as u8));
    let mut sent = 0;
    while out.len() < size {
        gitgate_core::pktline::encode_data(&payload, &mut out).expect("within limits");
        sent += 1;
        if sent % 16 == 0 {
            let line = format!("\x02Receiving objects: {sent}\r");
            gitgate_core::pktline::encode_data(line.as_bytes(), &mut out).expect("small");
        }
    }
    out.extend(b"0000");
    out
}
