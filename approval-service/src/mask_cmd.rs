//! `gitgate mask`: masks standard input to standard output exactly as the Envoy filter masks a
//! response body of the given content type, with the same core code
//! (`gitgate_core::mask::ResponseMasker`), so a configuration can be tried before it ships.
//!
//! ```sh
//! curl -s https://api.github.com/repos/o/r/contents/.env | gitgate mask --content-type application/json
//! gitgate mask --content-type application/x-git-receive-pack-result --config filter.yaml < answer.bin
//! ```
//!
//! What masking did goes to standard error: rule ids, fingerprints and offsets, never a value.
//! Request paths (`masking.paths`) are not consulted: the command masks whatever it is given.

use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;
use gitgate_core::config::GateConfig;
use gitgate_core::mask::{Chunk, Masking, ResponseMasker, ResponsePlan};

/// The largest `--chunk-size`.
const MAX_CHUNK_SIZE: usize = 16 << 20;

/// Arguments of `gitgate mask`.
#[derive(Debug, Args)]
pub struct MaskArgs {
    /// The response's Content-Type, e.g. application/json, text/plain or
    /// application/x-git-upload-pack-result.
    #[arg(long, value_name = "TYPE")]
    pub content_type: String,
    /// The response's Content-Encoding, to see what the filter does with a compressed body.
    #[arg(long, value_name = "CODING")]
    pub content_encoding: Option<String>,
    /// The filter's plugin configuration (YAML or JSON); its `masking` and `scan` sections
    /// apply. A file with only those sections will do [default: the built-in defaults].
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Feed the body in chunks of this many bytes, as Envoy hands it over in chunks.
    #[arg(long, default_value_t = 64 * 1024, value_parser = parse_chunk_size)]
    pub chunk_size: usize,
    /// Print nothing on standard error.
    #[arg(long)]
    pub quiet: bool,
}

fn parse_chunk_size(text: &str) -> Result<usize, String> {
    let size: usize = text
        .parse()
        .map_err(|_| format!("not a number: {text:?}"))?;
    if (1..=MAX_CHUNK_SIZE).contains(&size) {
        Ok(size)
    } else {
        Err(format!("must be between 1 and {MAX_CHUNK_SIZE}"))
    }
}

/// Runs `gitgate mask` on standard input and output.
pub fn run(args: &MaskArgs) -> anyhow::Result<()> {
    let masking = load(args.config.as_deref())?;
    let stdin = io::stdin().lock();
    let mut stdout = BufWriter::new(io::stdout().lock());
    let summary = match &masking {
        Some(masking) => mask(
            masking,
            &args.content_type,
            args.content_encoding.as_deref(),
            stdin,
            &mut stdout,
            args.chunk_size,
        )?,
        None => {
            let copied = copy(stdin, &mut stdout, args.chunk_size)?;
            format!("masking is disabled in the configuration; {copied} bytes copied unchanged")
        }
    };
    stdout.flush().context("writing standard output")?;
    if !args.quiet {
        eprintln!("gitgate: {summary}");
    }
    Ok(())
}

/// The masking configuration: the built-in defaults, or a file's `masking` and `scan`
/// sections (validated as the filter validates its configuration); `None` when disabled.
pub fn load(path: Option<&Path>) -> anyhow::Result<Option<Masking>> {
    let mut value = match path {
        None => serde_json::json!({}),
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            parse_config(&text).with_context(|| format!("parsing {}", path.display()))?
        }
    };
    let Some(object) = value.as_object_mut() else {
        anyhow::bail!("the configuration must be a mapping");
    };
    // A file with only `masking` and `scan` is enough: the approval section is not used here.
    object
        .entry("approval")
        .or_insert_with(|| serde_json::json!({"cluster": "unused"}));
    let config = GateConfig::from_value(value).map_err(|err| anyhow::anyhow!("{err}"))?;
    Masking::from_config(&config).map_err(|err| anyhow::anyhow!("{err}"))
}

/// YAML or JSON text as a JSON value (JSON is YAML, but its errors read better as JSON).
fn parse_config(text: &str) -> anyhow::Result<serde_json::Value> {
    if text.trim_start().starts_with('{') {
        return Ok(serde_json::from_str(text)?);
    }
    Ok(serde_norway::from_str(text)?)
}

/// Masks `input` to `output` as a response body of `content_type`; returns the summary line.
pub fn mask(
    masking: &Masking,
    content_type: &str,
    content_encoding: Option<&str>,
    mut input: impl Read,
    output: &mut impl Write,
    chunk_size: usize,
) -> anyhow::Result<String> {
    let plan = masking.plan(Some(content_type), content_encoding);
    let mut masker = ResponseMasker::new(masking, plan.clone());
    let mut buf = vec![0; chunk_size.max(1)];
    let mut out = Vec::with_capacity(chunk_size + 1024);
    let mut total = 0u64;
    loop {
        let read = read_chunk(&mut input, &mut buf)?;
        let chunk = buf.get(..read).unwrap_or_default();
        out.clear();
        match masker.feed(chunk, &mut out) {
            Chunk::Unchanged => output.write_all(chunk),
            Chunk::Replaced => output.write_all(&out),
        }
        .context("writing standard output")?;
        total += read as u64;
        if read == 0 {
            break;
        }
    }
    out.clear();
    masker.finish(&mut out);
    output.write_all(&out).context("writing standard output")?;

    Ok(match &plan {
        ResponsePlan::Pass => {
            format!("{content_type} is not masked; {total} bytes copied unchanged")
        }
        ResponsePlan::PassCompressed { encoding, .. } => format!(
            "content-encoding {encoding} cannot be masked; passed unchanged by policy \
             (masking.compressed: pass)"
        ),
        ResponsePlan::Withhold { encoding, .. } => format!(
            "content-encoding {encoding} cannot be masked; the body was replaced by a notice \
             (masking.compressed: withhold)"
        ),
        ResponsePlan::Mask(kind) => {
            let report = masker.report().cloned().unwrap_or_default();
            let mut line = format!(
                "masked {} secret(s) in a {} body of {total} bytes",
                report.masked,
                kind.label()
            );
            for secret in &report.secrets {
                line.push_str(&format!("\n  {secret}"));
            }
            if let Some(fallback) = &report.fallback {
                line.push_str(&format!("\n  masked as text from there on: {fallback}"));
            }
            line
        }
    })
}

/// Fills `buf` as far as the input allows (a pipe may return less per read).
fn read_chunk(input: &mut impl Read, buf: &mut [u8]) -> anyhow::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match input.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => return Err(err).context("reading standard input"),
        }
    }
    Ok(filled)
}

fn copy(mut input: impl Read, output: &mut impl Write, chunk_size: usize) -> anyhow::Result<u64> {
    let mut buf = vec![0; chunk_size.max(1)];
    let mut total = 0;
    loop {
        let read = read_chunk(&mut input, &mut buf)?;
        if read == 0 {
            return Ok(total);
        }
        output
            .write_all(buf.get(..read).unwrap_or_default())
            .context("writing standard output")?;
        total += read as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token() -> String {
        // A Slack-format token made up for this test; never issued.
        concat!(
            "xoxb-",
            "1234567890-1234567890-",
            "a1B2c3D4e5F6g7H8i9J0k1L2"
        )
        .to_owned()
    }

    #[test]
    fn text_is_masked_with_the_defaults() {
        let masking = load(None).expect("defaults").expect("enabled");
        let input = format!("SLACK={}\n", token());
        let mut output = Vec::new();
        let summary = mask(
            &masking,
            "text/plain",
            None,
            input.as_bytes(),
            &mut output,
            7,
        )
        .expect("masks");
        assert_eq!(output, b"SLACK=xoxb-****[gitgate:slack-bot-token]\n");
        assert!(summary.starts_with("masked 1 secret(s) in a text body of "));
        assert!(summary.contains("slack-bot-token (fingerprint "));
        assert!(!summary.contains(&token()));
    }

    #[test]
    fn an_unlisted_type_is_copied() {
        let masking = load(None).expect("defaults").expect("enabled");
        let input = token();
        let mut output = Vec::new();
        let summary = mask(
            &masking,
            "image/png",
            None,
            input.as_bytes(),
            &mut output,
            4,
        )
        .expect("copies");
        assert_eq!(output, input.as_bytes());
        assert!(summary.contains("not masked"));
    }

    #[test]
    fn a_compressed_body_is_replaced_by_a_notice() {
        let masking = load(None).expect("defaults").expect("enabled");
        let mut output = Vec::new();
        mask(
            &masking,
            "application/json",
            Some("gzip"),
            &b"\x1f\x8b\x08"[..],
            &mut output,
            1024,
        )
        .expect("withholds");
        let notice: serde_json::Value = serde_json::from_slice(&output).expect("json");
        assert!(
            notice["message"]
                .as_str()
                .is_some_and(|m| m.contains("gzip"))
        );
    }

    #[test]
    fn a_configuration_file_with_only_masking_sections_is_read() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("masking.yaml");
        std::fs::write(
            &path,
            "masking:\n  mask: { fill: '#', tag: '' }\nscan:\n  disable: [slack-bot-token]\n",
        )
        .expect("written");
        let masking = load(Some(&path)).expect("valid").expect("enabled");
        let input = format!("{} ghp_", token());
        let mut output = Vec::new();
        mask(
            &masking,
            "text/plain",
            None,
            input.as_bytes(),
            &mut output,
            64,
        )
        .expect("masks");
        assert_eq!(output, input.as_bytes(), "the rule is disabled");

        std::fs::write(&path, "masking: { enabled: false }\n").expect("written");
        assert!(load(Some(&path)).expect("valid").is_none());
        std::fs::write(&path, "masking: { colour: red }\n").expect("written");
        let err = load(Some(&path)).expect_err("unknown field");
        assert_eq!(err.to_string(), "masking.colour: unknown field");
    }
}
