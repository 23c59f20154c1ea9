//! The engine never panics, whatever the bytes, and chunking never changes its answer.

mod support;

use gitgate_scan::rules::BUILTIN_RULES;
use gitgate_scan::{RuleSet, scan_bytes};
use support::fakes::Rng;
use support::scan_parts;

#[test]
fn random_bytes_never_panic_and_chunking_never_changes_the_findings() {
    let rules = RuleSet::builtin().unwrap();
    let mut rng = Rng::new(0x5eed);
    for round in 0..200 {
        let len = rng.range(0, 4096);
        let bytes = rng.bytes(len);
        let whole = scan_bytes(&rules, &bytes);
        let cut = rng.range(0, len);
        assert_eq!(
            scan_parts(&rules, &[&bytes[..cut], &bytes[cut..]]),
            whole,
            "round {round}"
        );
    }
}

/// Random text built from keyword fragments, token alphabets and punctuation, which reaches the
/// regex and validation paths that plain random bytes seldom do.
fn keyword_soup(rng: &mut Rng, len: usize) -> Vec<u8> {
    let keywords: Vec<&str> = BUILTIN_RULES
        .iter()
        .flat_map(|r| r.keywords.iter().copied())
        .collect();
    let pieces = [
        "=",
        ": ",
        "\"",
        "'",
        "\n",
        " ",
        "-----END PRIVATE KEY-----",
        ".",
        "@",
        "://",
        "\\n",
        "==",
        "eyJhbGciOiJIUzI1NiJ9",
        "_",
        "-",
        "\r\n",
        "\u{e9}",
        "\u{1F600}",
        "Basic ",
        "Bearer ",
    ];
    let mut out = Vec::with_capacity(len + 64);
    while out.len() < len {
        match rng.below(4) {
            0 => out.extend_from_slice(rng.pick(&keywords).as_bytes()),
            1 => out.extend_from_slice(rng.pick(&pieces).as_bytes()),
            2 => {
                let n = rng.range(1, 60);
                out.extend_from_slice(rng.string(support::fakes::B64URL, n).as_bytes());
            }
            _ => out.push(rng.next_u64() as u8),
        }
    }
    out
}

#[test]
fn keyword_soup_never_panics_and_chunking_never_changes_the_findings() {
    let rules = RuleSet::builtin().unwrap();
    let mut rng = Rng::new(0xc0ffee);
    for round in 0..150 {
        let len = rng.range(0, 6000);
        let bytes = keyword_soup(&mut rng, len);
        let whole = scan_bytes(&rules, &bytes);
        let a = rng.range(0, bytes.len());
        let b = rng.range(a, bytes.len());
        let parts = [&bytes[..a], &bytes[a..b], &bytes[b..]];
        assert_eq!(scan_parts(&rules, &parts), whole, "round {round}");
        for f in &whole {
            assert!(f.start < f.end && f.secret.start >= f.start && f.secret.end <= f.end);
            assert!(f.end <= bytes.len() as u64);
        }
    }
}

#[test]
fn an_empty_stream_and_an_empty_chunk_are_fine() {
    let rules = RuleSet::builtin().unwrap();
    assert!(scan_bytes(&rules, b"").is_empty());
    assert!(scan_parts(&rules, &[b"", b"", b""]).is_empty());
}

#[test]
fn long_runs_of_one_keyword_do_not_panic_or_blow_up() {
    let rules = RuleSet::builtin().unwrap();
    for keyword in [
        "-----BEGIN RSA PRIVATE KEY-----",
        "token",
        "eyJ",
        "://",
        "SK",
        ":AA",
    ] {
        let text = keyword.repeat(20_000 / keyword.len());
        assert!(scan_bytes(&rules, text.as_bytes()).is_empty(), "{keyword}");
    }
}
