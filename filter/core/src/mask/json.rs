//! JSON documents: the APIs of Git hosts (issues, commits, comments, file contents).
//!
//! The document streams through a small lexer (RFC 8259) that only tells structure from
//! strings. Every byte outside a masked string is written back as it came: whitespace, numbers,
//! key order and escapes included, so an unmasked document is unchanged and a masked one keeps
//! its structure. The scanner reads the document with each string *unescaped* (a token after a
//! `\n` escape, or written as `\u0067hp_...`, is still found) and with the structure around it,
//! so a generic rule still sees `"password": "..."`.
//!
//! Masks land inside strings only. An escape sequence is written back as it was unless it is
//! masked; a mask never cuts a character in two. A string named in `base64_fields` that really
//! is base64 goes to [`super::base64`] instead, which masks the decoded file.
//!
//! Limits: nesting beyond `max_depth`, or bytes that cannot be JSON (a stray `}`, a bad escape),
//! turn the rest of the body into text, which is masked anywhere: the output is then as invalid
//! as the input, but no secret passes.

use std::collections::VecDeque;
use std::sync::Arc;

use memchr::memchr2;

use super::Shared;
use super::base64::{Base64Field, Fed};
use super::report::{Fallback, MaskReport, Place};
use super::stream::{MaskStream, Render};

/// The longest key remembered to recognise a base64 field.
pub const MAX_KEY_LEN: usize = 64;

/// The longest escape kept whole: a surrogate pair, `\uXXXX\uXXXX`.
const MAX_ESCAPE_LEN: usize = 12;

/// The replacement character, for a lone surrogate.
const REPLACEMENT: char = '\u{fffd}';

/// What a stretch of the scanned stream is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SegKind {
    /// Outside strings (quotes included): written back, never masked.
    Structure,
    /// The unescaped contents of a string: masked, escapes written back as they were.
    Str,
    /// After the lexer gave up: masked anywhere, written as it came.
    Text,
}

/// A stretch of the scanned stream, up to the next one's start.
#[derive(Debug, Clone, Copy)]
struct Seg {
    /// Stream offset of its first byte.
    start: u64,
    kind: SegKind,
    /// Body offset: of its first byte for structure and text, of the opening quote for a string.
    body_at: u64,
}

/// An escape sequence: the scanner saw `len` unescaped bytes at `at`, the output gets `raw`.
#[derive(Debug, Clone, Copy)]
struct Atom {
    at: u64,
    len: u8,
    raw: [u8; MAX_ESCAPE_LEN],
    raw_len: u8,
}

impl Atom {
    fn end(&self) -> u64 {
        self.at + u64::from(self.len)
    }

    fn raw(&self) -> &[u8] {
        self.raw
            .get(..usize::from(self.raw_len))
            .unwrap_or_default()
    }
}

/// Which string the lexer is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StrKind {
    Key,
    Value,
    /// A value under a base64 field name, handed to [`Base64Field`].
    Base64,
}

/// Where the lexer is.
#[derive(Debug, Clone, Copy)]
enum Lex {
    /// Outside strings.
    Structure,
    /// Inside a string's contents.
    InString(StrKind),
    /// Inside an escape sequence; `buf[..len]` holds it so far, from its `\`.
    Escape {
        kind: StrKind,
        buf: [u8; MAX_ESCAPE_LEN],
        len: usize,
    },
    /// Gave up: the rest is text.
    Text,
}

/// What one byte of an escape sequence did.
enum EscapeStep {
    /// Taken; the sequence goes on or was written.
    Taken,
    /// The sequence ended before this byte, which the string state must read again.
    Again,
    /// Not JSON.
    Invalid,
}

/// Masks a JSON body.
#[derive(Debug)]
pub(crate) struct JsonMasker {
    shared: Arc<Shared>,
    primary: MaskStream,
    segs: VecDeque<Seg>,
    atoms: VecDeque<Atom>,
    /// A mask whose range began in structure, waiting for the first string byte.
    pending_mask: Option<Box<[u8]>>,
    /// Stream bytes already written as part of an escape's raw form.
    skip_to: u64,
    lex: Lex,
    /// Open containers: true for an object.
    stack: Vec<bool>,
    /// The next string is an object key.
    next_is_key: bool,
    /// The key being read (cut at [`MAX_KEY_LEN`]; `key_overflow` then).
    key: Vec<u8>,
    key_overflow: bool,
    /// The last complete key of the innermost object.
    last_key: Option<Vec<u8>>,
    field: Option<Box<Base64Field>>,
    /// Body offset of the current string's opening quote.
    string_at: u64,
    /// Body offset of the next byte fed.
    offset: u64,
}

impl JsonMasker {
    /// A masker at the start of a document.
    pub(crate) fn new(shared: &Arc<Shared>) -> JsonMasker {
        JsonMasker {
            shared: Arc::clone(shared),
            primary: MaskStream::new(shared, true),
            segs: VecDeque::new(),
            atoms: VecDeque::new(),
            pending_mask: None,
            skip_to: 0,
            lex: Lex::Structure,
            stack: Vec::new(),
            next_is_key: false,
            key: Vec::new(),
            key_overflow: false,
            last_key: None,
            field: None,
            string_at: 0,
            offset: 0,
        }
    }

    /// Masks the next chunk, appending what can be released to `out`.
    pub(crate) fn feed(&mut self, chunk: &[u8], out: &mut Vec<u8>, report: &mut MaskReport) {
        self.lex_bytes(chunk, true, out, report);
        if let Some(field) = self.field.as_mut() {
            field.pump(out, report);
        }
        self.release(false, out, report);
    }

    /// Ends the body: writes everything held. An unterminated string or escape is written as
    /// text.
    pub(crate) fn finish(&mut self, out: &mut Vec<u8>, report: &mut MaskReport) {
        match self.lex {
            Lex::Escape { buf, len, kind } => {
                if kind == StrKind::Base64 {
                    self.abort_field(out, report);
                }
                self.push(SegKind::Text, buf.get(..len).unwrap_or_default());
            }
            Lex::InString(StrKind::Base64) => self.abort_field(out, report),
            Lex::Structure | Lex::InString(_) | Lex::Text => {}
        }
        self.lex = Lex::Text;
        if let Some(mut field) = self.field.take() {
            let rest = field.abort(out, report);
            self.push(SegKind::Text, &rest);
        }
        self.release(true, out, report);
    }

    /// Runs the lexer over `input`. `counted` is false for bytes handed back by a base64 field,
    /// which were counted when they first arrived.
    fn lex_bytes(
        &mut self,
        input: &[u8],
        counted: bool,
        out: &mut Vec<u8>,
        report: &mut MaskReport,
    ) {
        let mut rest = input;
        while !rest.is_empty() {
            let used = match self.lex {
                Lex::Text => {
                    self.push(SegKind::Text, rest);
                    rest.len()
                }
                Lex::Structure => self.structure(rest, out, report),
                Lex::InString(kind) => self.string(kind, rest, out, report),
                Lex::Escape { kind, buf, len } => {
                    match self.escape_byte(kind, buf, len, rest[0], out, report) {
                        EscapeStep::Taken => 1,
                        EscapeStep::Again => 0,
                        EscapeStep::Invalid => {
                            let at = self.offset;
                            self.give_up("bad escape", at, out, report);
                            // The escape so far is text too.
                            self.push(SegKind::Text, buf.get(..len).unwrap_or_default());
                            0
                        }
                    }
                }
            };
            if counted {
                self.offset = self.offset.saturating_add(used as u64);
            }
            rest = rest.get(used..).unwrap_or_default();
        }
    }

    /// Reads structure up to and including the next opening quote; returns the bytes used.
    fn structure(&mut self, input: &[u8], out: &mut Vec<u8>, report: &mut MaskReport) -> usize {
        for (i, &byte) in input.iter().enumerate() {
            match byte {
                b'"' => {
                    self.push(SegKind::Structure, &input[..=i]);
                    self.open_string(self.offset + i as u64, out, report);
                    return i + 1;
                }
                b'{' | b'[' => {
                    if self.stack.len() >= self.shared.json.max_depth {
                        self.push(SegKind::Structure, &input[..i]);
                        let at = self.offset + i as u64;
                        self.give_up("nesting deeper than max_depth", at, out, report);
                        return i;
                    }
                    let object = byte == b'{';
                    self.stack.push(object);
                    self.next_is_key = object;
                    if object {
                        self.last_key = None;
                    }
                }
                b'}' | b']' => {
                    let closes_object = byte == b'}';
                    if self.stack.pop() != Some(closes_object) {
                        self.push(SegKind::Structure, &input[..i]);
                        let at = self.offset + i as u64;
                        self.give_up("unbalanced bracket", at, out, report);
                        return i;
                    }
                    self.next_is_key = false;
                }
                b',' => self.next_is_key = self.stack.last() == Some(&true),
                b':' => self.next_is_key = false,
                _ => {}
            }
        }
        self.push(SegKind::Structure, input);
        input.len()
    }

    /// After an opening quote at body offset `at`: decides what the string is.
    fn open_string(&mut self, at: u64, out: &mut Vec<u8>, report: &mut MaskReport) {
        self.string_at = at;
        let kind = if self.next_is_key {
            self.key.clear();
            self.key_overflow = false;
            StrKind::Key
        } else if self.stack.last() == Some(&true)
            && self.last_key.as_deref().is_some_and(|key| {
                self.shared
                    .json
                    .base64_fields
                    .iter()
                    .any(|f| f.as_bytes() == key)
            })
        {
            StrKind::Base64
        } else {
            StrKind::Value
        };
        if kind == StrKind::Base64 {
            // The field writes straight to `out`, so everything before it goes first. A secret
            // cannot run from the structure into a base64 field, so ending the scan here loses
            // nothing.
            self.release(true, out, report);
            self.reset_primary();
            self.field = Some(Box::new(Base64Field::new(&self.shared, at)));
        } else {
            self.begin_string();
        }
        self.lex = Lex::InString(kind);
    }

    fn begin_string(&mut self) {
        let start = self.primary.offset();
        self.segs.push_back(Seg {
            start,
            kind: SegKind::Str,
            body_at: self.string_at,
        });
    }

    /// Reads string contents up to the closing quote or an escape; returns the bytes used.
    fn string(
        &mut self,
        kind: StrKind,
        input: &[u8],
        out: &mut Vec<u8>,
        report: &mut MaskReport,
    ) -> usize {
        let Some(i) = memchr2(b'"', b'\\', input) else {
            self.content(kind, input, out, report);
            return input.len();
        };
        self.content(kind, &input[..i], out, report);
        if input[i] == b'\\' {
            // The lexer may have turned to text while the content was handed back.
            if let Lex::InString(kind) = self.lex {
                let mut buf = [0; MAX_ESCAPE_LEN];
                buf[0] = b'\\';
                self.lex = Lex::Escape { kind, buf, len: 1 };
            } else {
                self.push(SegKind::Text, b"\\");
            }
            return i + 1;
        }
        match self.lex {
            Lex::InString(kind) => self.close_string(kind, out, report),
            _ => self.push(SegKind::Text, b"\""),
        }
        i + 1
    }

    /// The closing quote.
    fn close_string(&mut self, kind: StrKind, out: &mut Vec<u8>, report: &mut MaskReport) {
        match kind {
            StrKind::Key => {
                self.last_key = (!self.key_overflow).then(|| std::mem::take(&mut self.key));
                self.next_is_key = false;
            }
            StrKind::Base64 => {
                if let Some(mut field) = self.field.take()
                    && let Fed::NotBase64(raw) | Fed::Spill(raw) = field.end(out, report)
                {
                    self.replay(raw, out, report);
                }
            }
            StrKind::Value => {}
        }
        self.lex = Lex::Structure;
        self.push(SegKind::Structure, b"\"");
    }

    /// String bytes that needed no unescaping.
    fn content(&mut self, kind: StrKind, bytes: &[u8], out: &mut Vec<u8>, report: &mut MaskReport) {
        if bytes.is_empty() {
            return;
        }
        match kind {
            StrKind::Base64 => {
                let fed = match self.field.as_mut() {
                    Some(field) => field.plain(bytes, out, report),
                    None => Fed::Spill(bytes.to_vec()),
                };
                self.handle_fed(fed, out, report);
            }
            StrKind::Key => {
                self.capture_key(bytes);
                self.push(SegKind::Str, bytes);
            }
            StrKind::Value => self.push(SegKind::Str, bytes),
        }
    }

    /// One complete escape: the scanner gets `decoded`, the output keeps `raw` unless masked.
    fn atom(
        &mut self,
        kind: StrKind,
        decoded: &[u8],
        raw: &[u8],
        out: &mut Vec<u8>,
        report: &mut MaskReport,
    ) {
        if kind == StrKind::Base64 {
            let fed = match self.field.as_mut() {
                Some(field) => field.atom(decoded, raw, out, report),
                None => Fed::Spill(raw.to_vec()),
            };
            self.handle_fed(fed, out, report);
            return;
        }
        if kind == StrKind::Key {
            self.capture_key(decoded);
        }
        let mut atom = Atom {
            at: self.primary.offset(),
            len: decoded.len().min(usize::from(u8::MAX)) as u8,
            raw: [0; MAX_ESCAPE_LEN],
            raw_len: raw.len().min(MAX_ESCAPE_LEN) as u8,
        };
        for (slot, &byte) in atom.raw.iter_mut().zip(raw) {
            *slot = byte;
        }
        self.push_seg(SegKind::Str);
        self.atoms.push_back(atom);
        self.primary.push(decoded);
    }

    /// A base64 field handed bytes back: they are an ordinary string from here on.
    fn handle_fed(&mut self, fed: Fed, out: &mut Vec<u8>, report: &mut MaskReport) {
        match fed {
            Fed::Taken => {}
            Fed::NotBase64(raw) | Fed::Spill(raw) => {
                self.field = None;
                self.begin_string();
                self.lex = Lex::InString(StrKind::Value);
                self.replay(raw, out, report);
            }
        }
    }

    /// Lexes raw string bytes again as an ordinary string value.
    fn replay(&mut self, raw: Vec<u8>, out: &mut Vec<u8>, report: &mut MaskReport) {
        if self.field.is_some() || !matches!(self.lex, Lex::InString(StrKind::Value)) {
            self.field = None;
            self.begin_string();
            self.lex = Lex::InString(StrKind::Value);
        }
        // The bytes hold whole escapes and no closing quote, so the lexer ends where it began:
        // inside the string.
        self.lex_bytes(&raw, false, out, report);
    }

    fn abort_field(&mut self, out: &mut Vec<u8>, report: &mut MaskReport) {
        if let Some(mut field) = self.field.take() {
            let rest = field.abort(out, report);
            self.begin_string();
            self.push(SegKind::Str, &rest);
        }
    }

    fn capture_key(&mut self, bytes: &[u8]) {
        if self.key.len() + bytes.len() > MAX_KEY_LEN {
            self.key_overflow = true;
        } else {
            self.key.extend_from_slice(bytes);
        }
    }

    /// Handles one byte of an escape sequence (RFC 8259 §7).
    fn escape_byte(
        &mut self,
        kind: StrKind,
        mut buf: [u8; MAX_ESCAPE_LEN],
        len: usize,
        byte: u8,
        out: &mut Vec<u8>,
        report: &mut MaskReport,
    ) -> EscapeStep {
        let hex = |bytes: &[u8]| -> Option<u32> {
            std::str::from_utf8(bytes)
                .ok()
                .and_then(|s| u32::from_str_radix(s, 16).ok())
        };
        let is_high = |code: u32| (0xd800..=0xdbff).contains(&code);
        let is_low = |code: u32| (0xdc00..=0xdfff).contains(&code);
        let push = |buf: &mut [u8; MAX_ESCAPE_LEN], len: usize| {
            if let Some(slot) = buf.get_mut(len) {
                *slot = byte;
            }
            len + 1
        };
        match len {
            1 => {
                let decoded = match byte {
                    b'"' => b'"',
                    b'\\' => b'\\',
                    b'/' => b'/',
                    b'b' => 0x08,
                    b'f' => 0x0c,
                    b'n' => b'\n',
                    b'r' => b'\r',
                    b't' => b'\t',
                    b'u' => {
                        let len = push(&mut buf, len);
                        self.lex = Lex::Escape { kind, buf, len };
                        return EscapeStep::Taken;
                    }
                    _ => return EscapeStep::Invalid,
                };
                self.lex = Lex::InString(kind);
                self.atom(kind, &[decoded], &[b'\\', byte], out, report);
                EscapeStep::Taken
            }
            2..=5 | 8..=11 => {
                if !byte.is_ascii_hexdigit() {
                    return EscapeStep::Invalid;
                }
                let len = push(&mut buf, len);
                match len {
                    6 => {
                        let code = hex(buf.get(2..6).unwrap_or_default()).unwrap_or(0);
                        if is_high(code) {
                            // Wait for the low half.
                            self.lex = Lex::Escape { kind, buf, len };
                        } else {
                            self.lex = Lex::InString(kind);
                            self.code_unit_atom(kind, code, &buf[..6], out, report);
                        }
                    }
                    12 => {
                        let high = hex(buf.get(2..6).unwrap_or_default()).unwrap_or(0);
                        let low = hex(buf.get(8..12).unwrap_or_default()).unwrap_or(0);
                        self.lex = Lex::InString(kind);
                        if is_low(low) {
                            let code = 0x10000 + ((high - 0xd800) << 10) + (low - 0xdc00);
                            self.code_unit_atom(kind, code, &buf, out, report);
                        } else {
                            // A lone high surrogate, then an escape of its own.
                            self.code_unit_atom(kind, high, &buf[..6], out, report);
                            if is_high(low) {
                                let mut next = [0; MAX_ESCAPE_LEN];
                                next[..6].copy_from_slice(&buf[6..12]);
                                self.lex = Lex::Escape {
                                    kind,
                                    buf: next,
                                    len: 6,
                                };
                            } else {
                                self.code_unit_atom(kind, low, &buf[6..12], out, report);
                            }
                        }
                    }
                    _ => self.lex = Lex::Escape { kind, buf, len },
                }
                EscapeStep::Taken
            }
            6 => {
                // After a high surrogate: only `\u` of a low one may follow.
                if byte == b'\\' {
                    let len = push(&mut buf, len);
                    self.lex = Lex::Escape { kind, buf, len };
                    return EscapeStep::Taken;
                }
                self.lex = Lex::InString(kind);
                self.code_unit_atom(kind, 0xd800, &buf[..6], out, report);
                EscapeStep::Again
            }
            7 => {
                if byte == b'u' {
                    let len = push(&mut buf, len);
                    self.lex = Lex::Escape { kind, buf, len };
                    return EscapeStep::Taken;
                }
                // A lone high surrogate, then some other escape starting with the `\` held.
                self.lex = Lex::InString(kind);
                self.code_unit_atom(kind, 0xd800, &buf[..6], out, report);
                let mut next = [0; MAX_ESCAPE_LEN];
                next[0] = b'\\';
                if let Lex::InString(kind) = self.lex {
                    self.lex = Lex::Escape {
                        kind,
                        buf: next,
                        len: 1,
                    };
                }
                EscapeStep::Again
            }
            _ => EscapeStep::Invalid,
        }
    }

    /// An atom for a `\u` escape of `code`; a lone surrogate reads as U+FFFD.
    fn code_unit_atom(
        &mut self,
        kind: StrKind,
        code: u32,
        raw: &[u8],
        out: &mut Vec<u8>,
        report: &mut MaskReport,
    ) {
        let ch = char::from_u32(code).unwrap_or(REPLACEMENT);
        let mut utf8 = [0; 4];
        let decoded = ch.encode_utf8(&mut utf8).as_bytes().to_vec();
        self.atom(kind, &decoded, raw, out, report);
    }

    /// The lexer cannot follow the document any more: the rest is text.
    fn give_up(
        &mut self,
        reason: &'static str,
        offset: u64,
        out: &mut Vec<u8>,
        report: &mut MaskReport,
    ) {
        if let Lex::InString(StrKind::Base64)
        | Lex::Escape {
            kind: StrKind::Base64,
            ..
        } = self.lex
        {
            self.abort_field(out, report);
        }
        report.fall_back(Fallback::Json { offset, reason });
        self.lex = Lex::Text;
    }

    /// Appends bytes of `kind` to the scanned stream.
    fn push(&mut self, kind: SegKind, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        self.push_seg(kind);
        self.primary.push(bytes);
    }

    /// Starts a segment of `kind` unless the last one is of that kind already.
    fn push_seg(&mut self, kind: SegKind) {
        if self.segs.back().is_some_and(|s| s.kind == kind) {
            return;
        }
        let start = self.primary.offset();
        self.segs.push_back(Seg {
            start,
            kind,
            body_at: self.offset,
        });
    }

    fn record(&mut self, report: &mut MaskReport) {
        for found in self.primary.take_found() {
            let seg = self
                .segs
                .iter()
                .rev()
                .find(|s| s.start <= found.start)
                .copied();
            let (offset, place) = match seg {
                Some(Seg {
                    kind: SegKind::Str,
                    body_at,
                    ..
                }) => (body_at, Place::JsonString),
                Some(seg) => (
                    seg.body_at.saturating_add(found.start - seg.start),
                    if seg.kind == SegKind::Text {
                        Place::Fallback
                    } else {
                        Place::JsonString
                    },
                ),
                None => (0, Place::JsonString),
            };
            report.record(&found, offset, place);
        }
    }

    /// Writes what the scanner settled (everything, when `all`).
    fn release(&mut self, all: bool, out: &mut Vec<u8>, report: &mut MaskReport) {
        if all {
            self.primary.finish();
        }
        self.record(report);
        let upto = if all {
            u64::MAX
        } else {
            self.primary.settled()
        };
        let mut render = JsonRender {
            out,
            segs: &self.segs,
            atoms: &mut self.atoms,
            pending_mask: &mut self.pending_mask,
            skip_to: &mut self.skip_to,
        };
        self.primary.release(upto, &mut render);
        // Segments wholly before the released point are done with; the last one stays, since
        // later bytes may extend it.
        let released = self.primary.released();
        while self.segs.len() > 1 && self.segs.get(1).is_some_and(|s| s.start <= released) {
            self.segs.pop_front();
        }
        if all {
            self.reset_primary();
        }
    }

    /// A fresh scanned stream (after a base64 field, or at the end).
    fn reset_primary(&mut self) {
        self.primary = MaskStream::new(&self.shared, true);
        self.segs.clear();
        self.atoms.clear();
        self.pending_mask = None;
        self.skip_to = 0;
    }
}

/// Writes released bytes back into the document.
struct JsonRender<'a> {
    out: &'a mut Vec<u8>,
    segs: &'a VecDeque<Seg>,
    atoms: &'a mut VecDeque<Atom>,
    pending_mask: &'a mut Option<Box<[u8]>>,
    skip_to: &'a mut u64,
}

impl JsonRender<'_> {
    /// Splits `[at, at + bytes.len())` into runs of one segment kind.
    fn runs(&self, at: u64, len: usize) -> Vec<(u64, u64, SegKind)> {
        let end = at + len as u64;
        let mut runs = Vec::new();
        let mut index = self
            .segs
            .partition_point(|s| s.start <= at)
            .saturating_sub(1);
        let mut pos = at;
        while pos < end {
            let kind = self.segs.get(index).map_or(SegKind::Text, |s| s.kind);
            let next = self.segs.get(index + 1).map_or(u64::MAX, |s| s.start);
            let stop = next.min(end);
            if stop > pos {
                runs.push((pos, stop, kind));
                pos = stop;
            }
            index += 1;
        }
        runs
    }

    /// Writes unescaped string bytes `bytes` (at stream offset `at`) with escapes restored.
    fn write_string(&mut self, at: u64, bytes: &[u8]) {
        let end = at + bytes.len() as u64;
        let mut cursor = at.max((*self.skip_to).min(end));
        while let Some(atom) = self.atoms.front().copied() {
            if atom.at >= end {
                break;
            }
            self.atoms.pop_front();
            if atom.end() <= cursor {
                continue;
            }
            let from = index(cursor, at);
            let to = index(atom.at.max(cursor), at);
            self.out
                .extend_from_slice(bytes.get(from..to).unwrap_or_default());
            self.out.extend_from_slice(atom.raw());
            cursor = atom.end();
            *self.skip_to = (*self.skip_to).max(cursor);
        }
        if cursor < end {
            self.out
                .extend_from_slice(bytes.get(index(cursor, at)..).unwrap_or_default());
        }
    }

    /// Drops the escapes inside a masked run.
    fn drop_atoms(&mut self, end: u64) {
        while self.atoms.front().is_some_and(|a| a.at < end) {
            if let Some(atom) = self.atoms.pop_front() {
                *self.skip_to = (*self.skip_to).max(atom.end());
            }
        }
    }
}

/// The index of stream offset `pos` in a slice starting at `at`.
fn index(pos: u64, at: u64) -> usize {
    usize::try_from(pos.saturating_sub(at)).unwrap_or(usize::MAX)
}

impl Render for JsonRender<'_> {
    fn plain(&mut self, at: u64, bytes: &[u8]) {
        for (from, to, kind) in self.runs(at, bytes.len()) {
            let part = bytes
                .get(index(from, at)..index(to, at))
                .unwrap_or_default();
            match kind {
                SegKind::Str => self.write_string(from, part),
                SegKind::Structure | SegKind::Text => self.out.extend_from_slice(part),
            }
        }
    }

    fn masked(&mut self, at: u64, bytes: &[u8], mask: &[u8], first: bool, last: bool) {
        if first {
            *self.pending_mask = Some(mask.into());
        }
        for (from, to, kind) in self.runs(at, bytes.len()) {
            match kind {
                SegKind::Structure => {
                    let part = bytes
                        .get(index(from, at)..index(to, at))
                        .unwrap_or_default();
                    self.out.extend_from_slice(part);
                }
                SegKind::Str | SegKind::Text => {
                    if let Some(mask) = self.pending_mask.take() {
                        self.out.extend_from_slice(&mask);
                    }
                    self.drop_atoms(to);
                }
            }
        }
        if last {
            *self.pending_mask = None;
        }
    }
}
