//! Base64 file contents inside JSON: the `content` field of GitHub's, GitLab's and Gitea's
//! contents and blob APIs. The value is decoded, the decoded bytes masked, and the result
//! encoded again in the same layout, so a masked field still decodes:
//!
//! - the standard alphabet with `=` padding (RFC 4648 §4), checked canonical by the decoder;
//! - the original line width and terminator (GitHub breaks every 60 characters with `\n` and
//!   ends with one, GitLab and Gitea do not break), learnt from the first line;
//! - an unmasked field comes out byte for byte as it went in.
//!
//! The field is first *probed*: up to `base64_probe_bytes` of it are held while every character
//! is checked. Anything that is not base64 (a reaction's `"content": "heart"`, a text field with
//! the same name) is handed back to be masked as an ordinary string. Past the probe the field is
//! decoded as it streams; should it stop being base64 later, what was decoded is written out and
//! the rest is handed back as an ordinary string.

use std::sync::Arc;

use base64::Engine;
use base64::alphabet;
use base64::engine::general_purpose::STANDARD;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};

use super::Shared;
use super::report::{MaskReport, Place};
use super::stream::{CopyRender, MaskStream};

/// A line break as written back into the JSON string.
const LF_ESCAPED: &[u8] = b"\\n";
const CRLF_ESCAPED: &[u8] = b"\\r\\n";

/// Characters decoded in one batch.
const QUANTUM: usize = 4;

/// The decoder once a field is taken for base64: padding optional and trailing bits ignored, so
/// that whatever the field holds is decoded rather than passed on. Whether a short field is
/// base64 at all is decided with the strict [`STANDARD`] engine.
const LENIENT: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_allow_trailing_bits(true)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// What the JSON masker has to do after handing the field some input.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Fed {
    /// Taken.
    Taken,
    /// The field is not base64 after all. Nothing was written; these raw string bytes (the
    /// whole field so far) are to be masked as an ordinary string.
    NotBase64(Vec<u8>),
    /// The field stopped being base64 after its probe. What was decoded is written; these raw
    /// bytes (undecoded characters and the rest of the input) are to be masked as an ordinary
    /// string.
    Spill(Vec<u8>),
}

/// How the original lines were laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Layout {
    /// Characters per line; `None` when the field is one line.
    width: Option<usize>,
    /// The escaped terminator: `\n` or `\r\n`.
    terminator: &'static [u8],
}

/// Where the field is.
#[derive(Debug)]
enum Phase {
    /// Holding raw bytes (for a replay) and their decoded characters until the probe is full.
    Probing { raw: Vec<u8>, chars: Vec<u8> },
    /// Decoding as the field streams.
    Decoding,
    /// Written out (finished or spilled).
    Done,
}

/// One base64 field.
#[derive(Debug)]
pub(crate) struct Base64Field {
    shared: Arc<Shared>,
    phase: Phase,
    /// Body offset of the field's opening quote, for the report.
    body_at: u64,
    /// Alphabet and padding characters not yet decoded: fewer than four between batches, or a
    /// padded last quantum.
    quantum: Vec<u8>,
    /// A `=` was seen: only padding and line breaks may follow.
    padded: bool,
    /// Characters on the current input line, to learn the layout.
    line_chars: usize,
    /// Line breaks seen.
    breaks: usize,
    saw_cr: bool,
    layout: Option<Layout>,
    /// Whether the last character seen was a line break (the field ends with one).
    ends_with_break: bool,
    decoded: MaskStream,
    encoder: Encoder,
}

/// Encodes masked bytes back to base64 in the original layout.
#[derive(Debug, Default)]
struct Encoder {
    /// Bytes waiting for a full group of three.
    carry: Vec<u8>,
    /// Characters on the current output line.
    column: usize,
    scratch: Vec<u8>,
}

impl Encoder {
    fn encode(&mut self, bytes: &[u8], layout: Layout, out: &mut Vec<u8>) {
        self.carry.extend_from_slice(bytes);
        let whole = self.carry.len() / 3 * 3;
        if whole == 0 {
            return;
        }
        encode_into(
            self.carry.get(..whole).unwrap_or_default(),
            &mut self.scratch,
        );
        self.carry.drain(..whole);
        self.write(layout, out);
    }

    fn finish(&mut self, layout: Layout, ends_with_break: bool, out: &mut Vec<u8>) {
        if !self.carry.is_empty() {
            encode_into(&self.carry, &mut self.scratch);
            self.carry.clear();
            self.write(layout, out);
        }
        if ends_with_break && self.column > 0 {
            out.extend_from_slice(layout.terminator);
            self.column = 0;
        }
    }

    /// Writes `scratch`, breaking lines lazily (before the first character of a new line), so
    /// a full last line gets its terminator only if the original had one.
    fn write(&mut self, layout: Layout, out: &mut Vec<u8>) {
        let Some(width) = layout.width.filter(|&w| w > 0) else {
            out.extend_from_slice(&self.scratch);
            self.column += self.scratch.len();
            return;
        };
        let mut rest = self.scratch.as_slice();
        while !rest.is_empty() {
            if self.column >= width {
                out.extend_from_slice(layout.terminator);
                self.column = 0;
            }
            let take = (width - self.column).min(rest.len());
            let (line, tail) = rest.split_at(take);
            out.extend_from_slice(line);
            self.column += take;
            rest = tail;
        }
    }
}

/// Replaces `out` with the padded base64 of `input`.
fn encode_into(input: &[u8], out: &mut Vec<u8>) {
    out.clear();
    out.resize(base64::encoded_len(input.len(), true).unwrap_or(0), 0);
    match STANDARD.encode_slice(input, out) {
        Ok(written) => out.truncate(written),
        Err(_) => out.clear(),
    }
}

fn is_alphabet(byte: u8) -> bool {
    ALPHABET[usize::from(byte)]
}

/// Which bytes are characters of the standard alphabet (RFC 4648 §4, table 1).
static ALPHABET: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] = c.is_ascii_alphanumeric() || c == b'+' || c == b'/';
        b += 1;
    }
    table
};

fn is_break(byte: u8) -> bool {
    byte == b'\n' || byte == b'\r'
}

impl Base64Field {
    /// A field whose opening quote is at body offset `body_at`.
    pub(crate) fn new(shared: &Arc<Shared>, body_at: u64) -> Base64Field {
        Base64Field {
            shared: Arc::clone(shared),
            phase: Phase::Probing {
                raw: Vec::new(),
                chars: Vec::new(),
            },
            body_at,
            quantum: Vec::new(),
            padded: false,
            line_chars: 0,
            breaks: 0,
            saw_cr: false,
            layout: None,
            ends_with_break: false,
            decoded: MaskStream::new(shared, true),
            encoder: Encoder::default(),
        }
    }

    /// Takes string bytes that needed no unescaping.
    pub(crate) fn plain(
        &mut self,
        bytes: &[u8],
        out: &mut Vec<u8>,
        report: &mut MaskReport,
    ) -> Fed {
        self.unit(bytes, bytes, out, report)
    }

    /// Takes one escape sequence: `decoded` is its character, `raw` the escape as written.
    pub(crate) fn atom(
        &mut self,
        decoded: &[u8],
        raw: &[u8],
        out: &mut Vec<u8>,
        report: &mut MaskReport,
    ) -> Fed {
        self.unit(decoded, raw, out, report)
    }

    /// The closing quote: writes the rest, or hands the field back if it was never base64.
    pub(crate) fn end(&mut self, out: &mut Vec<u8>, report: &mut MaskReport) -> Fed {
        if let Phase::Probing { raw, chars } = &mut self.phase {
            // A field that ended within its probe is base64 only if it decodes as a whole.
            let stripped: Vec<u8> = chars.iter().copied().filter(|&b| !is_break(b)).collect();
            if stripped.is_empty() || STANDARD.decode(&stripped).is_err() {
                let raw = std::mem::take(raw);
                self.phase = Phase::Done;
                return Fed::NotBase64(raw);
            }
            let chars = std::mem::take(chars);
            self.commit();
            if self.breaks <= 1 {
                // One line (with or without its terminator): no width to keep.
                if let Some(layout) = &mut self.layout {
                    layout.width = None;
                }
            }
            self.decode_chars(&chars);
        }
        if matches!(self.phase, Phase::Decoding) {
            self.write_out(out, report);
        }
        Fed::Taken
    }

    /// Gives up (the JSON broke inside the field, or the body ended): writes what was decoded
    /// and returns the raw bytes still to be written.
    pub(crate) fn abort(&mut self, out: &mut Vec<u8>, report: &mut MaskReport) -> Vec<u8> {
        match std::mem::replace(&mut self.phase, Phase::Done) {
            Phase::Probing { raw, .. } => raw,
            Phase::Decoding => {
                self.phase = Phase::Decoding;
                self.pump(out, report);
                let leftover = std::mem::take(&mut self.quantum);
                self.write_out(out, report);
                leftover
            }
            Phase::Done => Vec::new(),
        }
    }

    fn unit(
        &mut self,
        decoded: &[u8],
        raw: &[u8],
        out: &mut Vec<u8>,
        report: &mut MaskReport,
    ) -> Fed {
        if matches!(self.phase, Phase::Decoding) {
            // Validate before decoding; `check` sees each character once.
            let bad = self.check(decoded);
            let good = match bad {
                Some(bad) => decoded.get(..bad).unwrap_or_default(),
                None => decoded,
            };
            self.decode_chars(good);
            let Some(bad) = bad else {
                return Fed::Taken;
            };
            // Spill: the undecoded characters, then for plain bytes the bytes from the bad one
            // on, for an escape the whole escape.
            self.pump(out, report);
            let mut rest = std::mem::take(&mut self.quantum);
            if decoded.len() == raw.len() {
                rest.extend_from_slice(raw.get(bad..).unwrap_or_default());
            } else {
                rest.extend_from_slice(raw);
            }
            self.write_out(out, report);
            return Fed::Spill(rest);
        }
        let ok = self.check(decoded).is_none();
        let probe = self.shared.json.base64_probe_bytes;
        let Phase::Probing { raw: held, chars } = &mut self.phase else {
            return Fed::NotBase64(raw.to_vec());
        };
        held.extend_from_slice(raw);
        chars.extend_from_slice(decoded);
        if !ok {
            let raw = std::mem::take(held);
            self.phase = Phase::Done;
            return Fed::NotBase64(raw);
        }
        if held.len() < probe {
            return Fed::Taken;
        }
        let chars = std::mem::take(chars);
        self.commit();
        self.decode_chars(&chars);
        Fed::Taken
    }

    /// Checks characters and learns the layout; returns the index of the first character that
    /// cannot be part of a base64 field, if any.
    fn check(&mut self, chars: &[u8]) -> Option<usize> {
        let mut i = 0;
        while let Some(rest) = chars.get(i..).filter(|r| !r.is_empty()) {
            // Runs of the alphabet are the common case: take them whole.
            let run = rest
                .iter()
                .position(|&b| !is_alphabet(b))
                .unwrap_or(rest.len());
            if run > 0 {
                if self.padded || self.saw_cr {
                    return Some(i);
                }
                self.line_chars += run;
                self.ends_with_break = false;
                i += run;
                continue;
            }
            match rest[0] {
                b'\n' => {
                    if self.layout.is_none() {
                        self.layout = Some(Layout {
                            width: Some(self.line_chars),
                            terminator: if self.saw_cr {
                                CRLF_ESCAPED
                            } else {
                                LF_ESCAPED
                            },
                        });
                    }
                    self.breaks += 1;
                    self.line_chars = 0;
                    self.saw_cr = false;
                    self.ends_with_break = true;
                }
                b'\r' if !self.saw_cr => self.saw_cr = true,
                b'=' if !self.saw_cr => {
                    self.padded = true;
                    self.line_chars += 1;
                    self.ends_with_break = false;
                }
                _ => return Some(i),
            }
            i += 1;
        }
        None
    }

    /// Starts decoding: from here on the field writes to `out`.
    fn commit(&mut self) {
        self.phase = Phase::Decoding;
        if self.layout.is_none() {
            // No line break within the probe: the field is one line.
            self.layout = Some(Layout {
                width: None,
                terminator: LF_ESCAPED,
            });
        }
    }

    /// Queues checked characters for decoding (line breaks are skipped); [`Self::pump`]
    /// decodes them, once per chunk of the body rather than once per line.
    fn decode_chars(&mut self, chars: &[u8]) {
        self.quantum
            .extend(chars.iter().copied().filter(|&b| !is_break(b)));
    }

    /// Decodes the whole quanta queued, and writes what the scanner settled.
    pub(crate) fn pump(&mut self, out: &mut Vec<u8>, report: &mut MaskReport) {
        if !matches!(self.phase, Phase::Decoding) {
            return;
        }
        // Padding only ever ends the field, so a padded quantum waits for the end.
        let whole = if self.padded {
            0
        } else {
            self.quantum.len() / QUANTUM * QUANTUM
        };
        if whole == 0 {
            return;
        }
        let mut bytes = Vec::with_capacity(whole / QUANTUM * 3);
        // Whole unpadded quanta of checked characters always decode with the lenient engine.
        let _ = LENIENT.decode_vec(self.quantum.get(..whole).unwrap_or_default(), &mut bytes);
        self.quantum.drain(..whole);
        self.decoded.push(&bytes);
        self.record(report);
        let mut masked = Vec::with_capacity(bytes.len());
        self.decoded
            .release_settled(&mut CopyRender { out: &mut masked });
        self.encoder.encode(&masked, self.layout(), out);
    }

    fn layout(&self) -> Layout {
        self.layout.unwrap_or(Layout {
            width: None,
            terminator: LF_ESCAPED,
        })
    }

    /// Decodes what is left and writes every held byte; the field is done.
    fn write_out(&mut self, out: &mut Vec<u8>, report: &mut MaskReport) {
        self.pump(out, report);
        if !self.quantum.is_empty() {
            let mut bytes = Vec::new();
            // A last quantum of a single character carries no whole byte: the lenient engine
            // refuses it, and it is dropped.
            if self.quantum.iter().filter(|&&b| b != b'=').count() % QUANTUM != 1 {
                let _ = LENIENT.decode_vec(&self.quantum, &mut bytes);
            }
            self.quantum.clear();
            self.decoded.push(&bytes);
        }
        self.decoded.finish();
        self.record(report);
        let layout = self.layout();
        let mut masked = Vec::new();
        self.decoded
            .release(u64::MAX, &mut CopyRender { out: &mut masked });
        self.encoder.encode(&masked, layout, out);
        self.encoder.finish(layout, self.ends_with_break, out);
        self.phase = Phase::Done;
    }

    fn record(&mut self, report: &mut MaskReport) {
        for found in self.decoded.take_found() {
            report.record(&found, self.body_at, Place::Base64Field);
        }
    }
}
