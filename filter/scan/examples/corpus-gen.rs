//! Writes the labelled corpus to `tests/corpus/` from its seeded generator.
//!
//! ```sh
//! cargo run -p gitgate-scan --example corpus-gen
//! ```

#[path = "../tests/support/corpus_cases.rs"]
mod corpus_cases;
#[path = "../tests/support/fakes.rs"]
mod fakes;

use std::path::PathBuf;

use gitgate_scan::rules::BUILTIN_RULES;

fn main() -> std::io::Result<()> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/corpus");
    std::fs::create_dir_all(&dir)?;
    let ids: Vec<&'static str> = BUILTIN_RULES.iter().map(|r| r.id).collect();
    for (name, cases) in corpus_cases::files(&ids) {
        let path = dir.join(name);
        std::fs::write(&path, corpus_cases::to_jsonl(&cases))?;
        println!("{} cases -> tests/corpus/{name}", cases.len());
    }
    Ok(())
}
