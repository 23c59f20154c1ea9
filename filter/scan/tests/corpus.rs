//! Precision and recall per family over the labelled corpus in `tests/corpus/`.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use gitgate_scan::rules::BUILTIN_RULES;
use gitgate_scan::{RuleSet, scan_bytes};
use support::corpus_cases::{self, Case};

/// Every positive in the corpus must be found: they are all in formats the rules claim.
const RECALL_FLOOR: f64 = 1.0;

/// Per family, over positives and hard negatives together.
const PRECISION_FLOOR: f64 = 0.95;

fn corpus_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/corpus")
}

fn ids() -> Vec<&'static str> {
    BUILTIN_RULES.iter().map(|r| r.id).collect()
}

#[test]
fn the_corpus_files_match_their_generator() {
    for (name, cases) in corpus_cases::files(&ids()) {
        let path = corpus_dir().join(name);
        let on_disk = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e}; run the corpus-gen example", path.display()));
        assert!(
            on_disk == corpus_cases::to_jsonl(&cases),
            "tests/corpus/{name} is stale: run `cargo run -p gitgate-scan --example corpus-gen`"
        );
    }
}

#[derive(Default, Debug, Clone, Copy)]
struct Counts {
    tp: u32,
    fp: u32,
    fn_: u32,
}

impl Counts {
    fn precision(self) -> f64 {
        if self.tp + self.fp == 0 {
            1.0
        } else {
            f64::from(self.tp) / f64::from(self.tp + self.fp)
        }
    }

    fn recall(self) -> f64 {
        if self.tp + self.fn_ == 0 {
            1.0
        } else {
            f64::from(self.tp) / f64::from(self.tp + self.fn_)
        }
    }
}

fn load() -> Vec<Case> {
    let mut cases = Vec::new();
    for (name, _) in corpus_cases::files(&ids()) {
        let text = std::fs::read_to_string(corpus_dir().join(name)).unwrap();
        cases.extend(corpus_cases::from_jsonl(&text));
    }
    cases
}

#[test]
fn precision_and_recall_per_family_stay_above_their_floors() {
    let rules = RuleSet::builtin().unwrap();
    let family_of = |id: &str| {
        rules
            .rule(id)
            .map(|r| r.family().to_string())
            .unwrap_or_default()
    };
    let mut per_family: BTreeMap<String, Counts> = BTreeMap::new();
    let mut mistakes = Vec::new();
    let cases = load();
    let (mut positives, mut negatives) = (0, 0);
    for case in &cases {
        if case.expect.is_empty() {
            negatives += 1
        } else {
            positives += 1
        }
        let found: BTreeSet<String> = scan_bytes(&rules, case.text.as_bytes())
            .iter()
            .map(|f| f.rule_id.to_string())
            .collect();
        let expected: BTreeSet<String> = case.expect.iter().cloned().collect();
        for id in found.union(&expected) {
            let counts = per_family.entry(family_of(id)).or_default();
            match (found.contains(id), expected.contains(id)) {
                (true, true) => counts.tp += 1,
                (true, false) => {
                    counts.fp += 1;
                    mistakes.push(format!("false positive {id} in {:?}", case.name));
                }
                (false, true) => {
                    counts.fn_ += 1;
                    mistakes.push(format!("missed {id} in {:?}", case.name));
                }
                (false, false) => {}
            }
        }
    }

    println!(
        "corpus: {} cases ({positives} positive, {negatives} hard negative)",
        cases.len()
    );
    println!(
        "{:<18} {:>5} {:>5} {:>5} {:>9} {:>7}",
        "family", "tp", "fp", "fn", "precision", "recall"
    );
    let mut total = Counts::default();
    for (family, c) in &per_family {
        println!(
            "{family:<18} {:>5} {:>5} {:>5} {:>9.3} {:>7.3}",
            c.tp,
            c.fp,
            c.fn_,
            c.precision(),
            c.recall()
        );
        total.tp += c.tp;
        total.fp += c.fp;
        total.fn_ += c.fn_;
    }
    println!(
        "{:<18} {:>5} {:>5} {:>5} {:>9.3} {:>7.3}",
        "all",
        total.tp,
        total.fp,
        total.fn_,
        total.precision(),
        total.recall()
    );
    for m in &mistakes {
        println!("  {m}");
    }

    for (family, c) in &per_family {
        assert!(
            c.recall() >= RECALL_FLOOR,
            "{family}: recall {:.3}",
            c.recall()
        );
        assert!(
            c.precision() >= PRECISION_FLOOR,
            "{family}: precision {:.3}",
            c.precision()
        );
    }
}
