//! Response masking: secret values in what the Git server returns reach the client masked, with
//! the response still valid in its format.
//!
//! Layers, bottom up: [`stream`] holds bytes behind the scanner and writes them back with every
//! secret replaced ([`style`] says by what); [`text`], [`pktline`], [`json`] and [`base64`] know
//! one body format each; [`content_type`] picks the format from the response headers. The
//! adapter (the Envoy filter, or `gitgate mask`) builds one [`Masking`] from the configuration,
//! asks it for a [`ResponseMasker`] per response, and feeds that the body chunk by chunk:
//!
//! ```
//! use std::sync::Arc;
//! use gitgate_core::mask::{Masking, MaskingSection, ResponseMasker};
//! use gitgate_scan::RuleSet;
//!
//! let rules = Arc::new(RuleSet::builtin().unwrap());
//! let masking = Masking::with_rules(&MaskingSection::default(), rules).unwrap();
//! let plan = masking.plan(Some("text/plain"), None);
//! let mut masker = ResponseMasker::new(&masking, plan);
//! let token = concat!("xoxb-", "1234567890-1234567890-", "a1B2c3D4e5F6g7H8i9J0k1L2");
//! let (mut out, mut tail) = (Vec::new(), Vec::new());
//! masker.feed(format!("SLACK={token}\n").as_bytes(), &mut out);
//! masker.finish(&mut tail);
//! out.extend(tail);
//! assert_eq!(out, b"SLACK=xoxb-****[gitgate:slack-bot-token]\n");
//! ```
//!
//! Nothing here buffers a whole body: every masker holds at most the scanner's carry (about
//! 16 KiB with the built-in rules) plus the unit it is framing (a pkt-line, a JSON escape, a
//! base64 probe), and copies pack data without looking at it.

pub mod base64;
pub mod config;
pub mod content_type;
pub mod json;
pub mod pktline;
pub mod report;
pub mod stream;
pub mod style;
pub mod text;

use std::sync::Arc;

use gitgate_scan::{RuleSet, ScanConfig};

pub use config::{CompressedPolicy, MaskingSection, MissingContentType};
pub use content_type::{BodyKind, GitBody};
pub use report::{Fallback, MaskReport, MaskedSecret, Place};

use crate::config::{ConfigError, GateConfig};
use crate::fetch_scan::config::FetchPolicy;
use crate::glob::{self, RepoGlob};
use content_type::TypePattern;
use style::MaskStyle;

/// What every masker of one configuration shares.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) rules: Arc<RuleSet>,
    pub(crate) style: MaskStyle,
    pub(crate) json: JsonSettings,
}

/// The JSON part of the configuration, checked.
#[derive(Debug, Clone)]
pub(crate) struct JsonSettings {
    pub(crate) base64_fields: Vec<String>,
    pub(crate) max_depth: usize,
    pub(crate) base64_probe_bytes: usize,
}

/// The masking configuration, compiled once per VM (or process) and shared by every response.
#[derive(Debug, Clone)]
pub struct Masking {
    shared: Arc<Shared>,
    paths: Vec<RepoGlob>,
    git: bool,
    json_types: Vec<TypePattern>,
    text_types: Vec<TypePattern>,
    missing: MissingContentType,
    compressed: CompressedPolicy,
    /// The fetch policy (`fetch` section); `None` when fetch packs are not scanned.
    fetch: Option<FetchPolicy>,
}

/// What to do with one response body, decided from its headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResponsePlan {
    /// Not masked (a content type that is not listed, or pack-only data): passed untouched.
    Pass,
    /// Masked as `kind`. The body length may change, so `Content-Length` must go.
    Mask(BodyKind),
    /// Compressed and so not maskable: replaced by a notice in the body's format. The body,
    /// `Content-Length` and `Content-Encoding` all change.
    Withhold {
        /// The format the notice is written in.
        kind: BodyKind,
        /// The content codings found.
        encoding: String,
    },
    /// Compressed and passed unmasked, by policy: count it and log it.
    PassCompressed {
        /// The format the body would have been masked as.
        kind: BodyKind,
        /// The content codings found.
        encoding: String,
    },
}

impl ResponsePlan {
    /// Whether the body may change (and `Content-Length` must be removed).
    pub fn changes_body(&self) -> bool {
        matches!(self, ResponsePlan::Mask(_) | ResponsePlan::Withhold { .. })
    }
}

impl Masking {
    /// Compiles the `masking` and `scan` sections of a validated configuration; `None` when
    /// masking is off. The rule set is compiled here (tens of milliseconds natively, a few
    /// hundred in V8), so call it once per configuration.
    pub fn from_config(config: &GateConfig) -> Result<Option<Masking>, ConfigError> {
        let section = &config.config.masking;
        if !section.enabled {
            return Ok(None);
        }
        let rules = compile_rules(&config.config.scan)?;
        let fetch = FetchPolicy::from_section(&config.config.fetch)?;
        Masking::with_rules(section, Arc::new(rules)).map(|m| Some(m.with_fetch(fetch)))
    }

    /// Compiles a `masking` section with an already compiled rule set.
    pub fn with_rules(
        section: &MaskingSection,
        rules: Arc<RuleSet>,
    ) -> Result<Masking, ConfigError> {
        let checked = config::check(section)?;
        let style = MaskStyle::new(&section.mask, &rules);
        let json = JsonSettings {
            base64_fields: section.json.base64_fields.clone(),
            max_depth: section.json.max_depth,
            base64_probe_bytes: section.json.base64_probe_bytes,
        };
        Ok(Masking {
            shared: Arc::new(Shared { rules, style, json }),
            paths: checked.paths,
            git: section.git,
            json_types: checked.json_types,
            text_types: checked.text_types,
            missing: section.content_types.missing,
            compressed: section.compressed,
            fetch: None,
        })
    }

    /// The same configuration with the fetch policy `fetch` (`None`: fetch packs not scanned).
    pub fn with_fetch(mut self, fetch: Option<FetchPolicy>) -> Masking {
        self.fetch = fetch;
        self
    }

    /// The fetch policy, when fetch packs are scanned.
    pub fn fetch_policy(&self) -> Option<&FetchPolicy> {
        self.fetch.as_ref()
    }

    /// Whether a response of `content_type` and `content_encoding` is an upload-pack answer
    /// whose pack can be scanned (a compressed one cannot).
    pub fn scans_fetch(&self, content_type: Option<&str>, content_encoding: Option<&str>) -> bool {
        self.fetch.is_some()
            && content_type.map(content_type::essence).as_deref()
                == Some("application/x-git-upload-pack-result")
            && content_type::non_identity_encoding(content_encoding).is_none()
    }

    /// The rule set masks are found with.
    pub fn rules(&self) -> &Arc<RuleSet> {
        &self.shared.rules
    }

    /// Whether responses to a request for `path` (normalized, see
    /// [`crate::request::normalize_path`]; any query already removed) are masked.
    pub fn masks_path(&self, path: &str) -> bool {
        let relative = path.trim_matches('/');
        glob::any_matches(&self.paths, relative)
    }

    /// What to do with a body, given its `Content-Type` and `Content-Encoding` (all values of a
    /// repeated header joined by `,`).
    pub fn plan(&self, content_type: Option<&str>, content_encoding: Option<&str>) -> ResponsePlan {
        let Some(kind) = self.kind(content_type) else {
            return ResponsePlan::Pass;
        };
        match content_type::non_identity_encoding(content_encoding) {
            None => ResponsePlan::Mask(kind),
            Some(encoding) => match self.compressed {
                CompressedPolicy::Withhold => ResponsePlan::Withhold { kind, encoding },
                CompressedPolicy::Pass => ResponsePlan::PassCompressed { kind, encoding },
            },
        }
    }

    /// The format a body of `content_type` is masked as; `None` when it is not masked.
    pub fn kind(&self, content_type: Option<&str>) -> Option<BodyKind> {
        let Some(content_type) = content_type.filter(|t| !t.trim().is_empty()) else {
            return match self.missing {
                MissingContentType::Text => Some(BodyKind::Text),
                MissingContentType::Pass => None,
            };
        };
        let essence = content_type::essence(content_type);
        if essence.starts_with("application/x-git-") {
            return content_type::git_body(&essence)
                .filter(|_| self.git)
                .map(BodyKind::Git);
        }
        if self.json_types.iter().any(|t| t.matches(&essence)) {
            return Some(BodyKind::Json);
        }
        if self.text_types.iter().any(|t| t.matches(&essence)) {
            return Some(BodyKind::Text);
        }
        None
    }

    /// A masker for one body of `kind`.
    pub fn body_masker(&self, kind: BodyKind) -> BodyMasker {
        let engine = match kind {
            BodyKind::Git(GitBody::ReceivePackResult) => Engine::Pkt(Box::new(
                pktline::PktMasker::new(&self.shared, pktline::BandOne::Report),
            )),
            BodyKind::Git(GitBody::Advertisement | GitBody::UploadPackResult) => {
                Engine::Pkt(Box::new(pktline::PktMasker::new(
                    &self.shared,
                    pktline::BandOne::Pack,
                )))
            }
            BodyKind::Json => Engine::Json(Box::new(json::JsonMasker::new(&self.shared))),
            BodyKind::Text => Engine::Text(Box::new(text::TextMasker::new(
                &self.shared,
                0,
                Place::Text,
            ))),
        };
        BodyMasker {
            engine,
            report: MaskReport::default(),
            received: 0,
        }
    }
}

/// Compiles the `scan` section (a `gitgate-scan` configuration); `null` means the built-in
/// rules. Errors name the field under `scan`.
pub fn compile_rules(scan: &serde_json::Value) -> Result<RuleSet, ConfigError> {
    let config = scan_config(scan)?;
    RuleSet::compile(&config).map_err(|err| ConfigError::new("scan", err.to_string()))
}

/// Reads the `scan` section without compiling it, so that a configuration error is found when
/// the configuration is loaded.
pub(crate) fn scan_config(scan: &serde_json::Value) -> Result<ScanConfig, ConfigError> {
    if scan.is_null() {
        return Ok(ScanConfig::default());
    }
    serde_path_to_error::deserialize::<_, ScanConfig>(scan.clone()).map_err(|err| {
        let path = err.path().to_string();
        let field = if path == "." {
            "scan".to_owned()
        } else {
            format!("scan.{path}")
        };
        let message = err.inner().to_string();
        let message = message.split(" at line ").next().unwrap_or_default();
        ConfigError::new(field, message)
    })
}

/// The format-specific masker inside a [`BodyMasker`].
#[derive(Debug)]
enum Engine {
    Pkt(Box<pktline::PktMasker>),
    Json(Box<json::JsonMasker>),
    Text(Box<text::TextMasker>),
}

/// Masks one body, fed chunk by chunk.
#[derive(Debug)]
pub struct BodyMasker {
    engine: Engine,
    report: MaskReport,
    received: u64,
}

impl BodyMasker {
    /// Masks the next chunk, appending to `out` whatever can be released now. The output trails
    /// the input by the bytes the masker holds; [`BodyMasker::finish`] writes them.
    pub fn feed(&mut self, chunk: &[u8], out: &mut Vec<u8>) {
        self.received = self.received.saturating_add(chunk.len() as u64);
        match &mut self.engine {
            Engine::Pkt(m) => m.feed(chunk, out, &mut self.report),
            Engine::Json(m) => m.feed(chunk, out, &mut self.report),
            Engine::Text(m) => m.feed(chunk, out, &mut self.report),
        }
    }

    /// Ends the body, appending everything still held.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        match &mut self.engine {
            Engine::Pkt(m) => m.finish(out, &mut self.report),
            Engine::Json(m) => m.finish(out, &mut self.report),
            Engine::Text(m) => m.finish(out, &mut self.report),
        }
    }

    /// How many of the next bytes would be copied unread (pack data): a caller may let them
    /// through without handing them over, and report them with [`BodyMasker::skip`].
    pub fn passthrough_len(&self) -> u64 {
        match &self.engine {
            Engine::Pkt(m) => m.passthrough_len(),
            Engine::Json(_) | Engine::Text(_) => 0,
        }
    }

    /// Accounts for `len` bytes let through unread, at most [`BodyMasker::passthrough_len`].
    pub fn skip(&mut self, len: u64) {
        let len = len.min(self.passthrough_len());
        self.received = self.received.saturating_add(len);
        if let Engine::Pkt(m) = &mut self.engine {
            m.skip(len);
        }
    }

    /// What masking did so far.
    pub fn report(&self) -> &MaskReport {
        &self.report
    }

    /// Body bytes received so far, skipped ones included.
    pub fn received(&self) -> u64 {
        self.received
    }
}

/// One response body under a [`ResponsePlan`]: masked, replaced by a notice, or passed.
///
/// The Envoy filter and `gitgate mask` both drive this, so the command shows exactly what the
/// filter does to a body.
#[derive(Debug)]
pub struct ResponseMasker {
    plan: ResponsePlan,
    state: ResponseState,
}

#[derive(Debug)]
enum ResponseState {
    Pass,
    Mask(Box<BodyMasker>),
    /// The notice, until written.
    Withhold(Option<Vec<u8>>),
    Done,
}

/// What happened to a chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chunk {
    /// The chunk passes as it is; `out` was not written.
    Unchanged,
    /// The chunk is to be replaced by `out` (which may be empty).
    Replaced,
}

impl ResponseMasker {
    /// Starts a body under `plan`.
    pub fn new(masking: &Masking, plan: ResponsePlan) -> ResponseMasker {
        let state = match &plan {
            ResponsePlan::Pass | ResponsePlan::PassCompressed { .. } => ResponseState::Pass,
            ResponsePlan::Mask(kind) => ResponseState::Mask(Box::new(masking.body_masker(*kind))),
            ResponsePlan::Withhold { kind, encoding } => {
                ResponseState::Withhold(Some(content_type::withheld_notice(*kind, encoding)))
            }
        };
        ResponseMasker { plan, state }
    }

    /// The plan this body follows.
    pub fn plan(&self) -> &ResponsePlan {
        &self.plan
    }

    /// Handles the next chunk. On [`Chunk::Replaced`] the caller replaces the chunk with `out`.
    pub fn feed(&mut self, chunk: &[u8], out: &mut Vec<u8>) -> Chunk {
        match &mut self.state {
            ResponseState::Pass | ResponseState::Done => Chunk::Unchanged,
            ResponseState::Mask(masker) => {
                let start = out.len();
                masker.feed(chunk, out);
                if out.get(start..) == Some(chunk) {
                    // The masker copied the chunk: tell the caller, so it can skip a rewrite.
                    out.truncate(start);
                    Chunk::Unchanged
                } else {
                    Chunk::Replaced
                }
            }
            ResponseState::Withhold(notice) => {
                if let Some(notice) = notice.take() {
                    out.extend_from_slice(&notice);
                }
                Chunk::Replaced
            }
        }
    }

    /// Ends the body, appending what is still held (for a masked body) to `out`. Returns
    /// whether anything was appended.
    pub fn finish(&mut self, out: &mut Vec<u8>) -> bool {
        let start = out.len();
        match std::mem::replace(&mut self.state, ResponseState::Done) {
            ResponseState::Mask(mut masker) => {
                masker.finish(out);
                self.state = ResponseState::Mask(masker);
            }
            // An empty body stays empty: nothing of it could leak.
            ResponseState::Withhold(_) | ResponseState::Pass | ResponseState::Done => {}
        }
        out.len() > start
    }

    /// How many of the next bytes may pass unread.
    pub fn passthrough_len(&self) -> u64 {
        match &self.state {
            ResponseState::Pass | ResponseState::Done => u64::MAX,
            ResponseState::Mask(masker) => masker.passthrough_len(),
            ResponseState::Withhold(_) => 0,
        }
    }

    /// Accounts for bytes let through unread.
    pub fn skip(&mut self, len: u64) {
        if let ResponseState::Mask(masker) = &mut self.state {
            masker.skip(len);
        }
    }

    /// What masking did, for a masked body.
    pub fn report(&self) -> Option<&MaskReport> {
        match &self.state {
            ResponseState::Mask(masker) => Some(masker.report()),
            _ => None,
        }
    }

    /// Body bytes received, for a masked body.
    pub fn received(&self) -> u64 {
        match &self.state {
            ResponseState::Mask(masker) => masker.received(),
            _ => 0,
        }
    }
}
