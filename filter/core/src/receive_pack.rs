//! The receive-pack request body, up to the start of the pack.
//!
//! Grammar (gitprotocol-pack, "Reference Update Request and Packfile Transfer"; git-smart-http.md
//! §3), as git's `builtin/receive-pack.c` (`read_head_info`, `queue_command`,
//! `queue_commands_from_cert`, `read_push_options`) reads it:
//!
//! ```text
//! [ shallow <oid> ]*
//! ( <old> SP <new> SP <ref> NUL <caps>  ( <old> SP <new> SP <ref> )*
//!   | push-cert NUL <caps>  <certificate lines>  push-cert-end LF )
//! flush
//! [ <push-option>* flush ]          only when the client sent the push-options capability
//! [ PACK ... ]                      absent when every command is a delete
//! ```
//!
//! [`Parser`] is push-based: feed it the body in slices of any size. It never looks past the
//! command section, and reports how many bytes of the last slice belonged to it, so the caller
//! knows exactly where the pack starts. Every malformed input is a [`ReceivePackError`] carrying
//! the absolute offset of the offending packet.

use thiserror::Error;

use crate::api::{Operation, RefUpdate};
use crate::pktline::{self, Decoded, Pkt, PktLineError};

/// Default bound on the whole command section (shallow lines, commands, certificate, options).
pub const DEFAULT_MAX_SECTION_BYTES: usize = 1 << 20;

/// Default bound on the number of ref updates in one push.
pub const DEFAULT_MAX_COMMANDS: usize = 10_000;

/// Default bound on the number of push options.
pub const DEFAULT_MAX_PUSH_OPTIONS: usize = 1_000;

/// The longest ref name accepted. git has no fixed limit, but a name must fit in one
/// `ng <ref> <reason>` pkt-line of the answer.
pub const MAX_REFNAME_LEN: usize = 4096;

/// Prefix of a shallow line (gitprotocol-pack, "shallow-update").
const SHALLOW_PREFIX: &[u8] = b"shallow ";

/// The first line of a signed push (gitprotocol-pack, "push-cert").
const PUSH_CERT: &[u8] = b"push-cert";

/// The line that ends a push certificate, LF included (git compares it with LF).
const PUSH_CERT_END: &[u8] = b"push-cert-end\n";

/// Lines that start a signature inside a push certificate (gpg-interface.c, `sigs`).
const SIGNATURE_STARTS: [&[u8]; 4] = [
    b"-----BEGIN PGP SIGNATURE-----",
    b"-----BEGIN PGP MESSAGE-----",
    b"-----BEGIN SIGNED MESSAGE-----",
    b"-----BEGIN SSH SIGNATURE-----",
];

/// The hash function of the repository, which fixes the length of every object id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ObjectFormat {
    /// 40 hex digits, 20 raw bytes.
    Sha1,
    /// 64 hex digits, 32 raw bytes.
    Sha256,
}

impl ObjectFormat {
    /// Length of an id in hex digits.
    pub fn hex_len(self) -> usize {
        match self {
            ObjectFormat::Sha1 => 40,
            ObjectFormat::Sha256 => 64,
        }
    }

    /// Length of an id in raw bytes (as in a pack's ref-delta base and trailer).
    pub fn raw_len(self) -> usize {
        self.hex_len() / 2
    }

    /// The name used in the `object-format=` capability.
    pub fn name(self) -> &'static str {
        match self {
            ObjectFormat::Sha1 => "sha1",
            ObjectFormat::Sha256 => "sha256",
        }
    }

    fn from_name(name: &str) -> Option<ObjectFormat> {
        match name {
            "sha1" => Some(ObjectFormat::Sha1),
            "sha256" => Some(ObjectFormat::Sha256),
            _ => None,
        }
    }

    fn from_hex_len(len: usize) -> Option<ObjectFormat> {
        match len {
            40 => Some(ObjectFormat::Sha1),
            64 => Some(ObjectFormat::Sha256),
            _ => None,
        }
    }
}

/// The capabilities the client asked for that matter to the gate
/// (gitprotocol-capabilities; git-smart-http.md §7).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Capabilities {
    /// `report-status`.
    pub report_status: bool,
    /// `report-status-v2`.
    pub report_status_v2: bool,
    /// `side-band-64k`.
    pub side_band_64k: bool,
    /// `side-band`.
    pub side_band: bool,
    /// `quiet`.
    pub quiet: bool,
    /// `atomic`.
    pub atomic: bool,
    /// `push-options`: a push-option section follows the command list.
    pub push_options: bool,
    /// `object-format=<name>`, when sent.
    pub object_format: Option<ObjectFormat>,
    /// `agent=<text>`, for logs only.
    pub agent: Option<String>,
}

impl Capabilities {
    /// True when the client expects a report-status answer (either version).
    pub fn wants_report(&self) -> bool {
        self.report_status || self.report_status_v2
    }
}

/// One ref update as sent by the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    /// Old id, lower-case hex; all zeros for a create.
    pub old: String,
    /// New id, lower-case hex; all zeros for a delete.
    pub new: String,
    /// Full ref name, starting with `refs/`.
    pub refname: String,
}

impl Command {
    /// Create, update or delete. A command whose new id is zero is a delete even when the old id
    /// is zero too: git's receive-pack then deletes the ref without checking its old value.
    pub fn operation(&self) -> Operation {
        if is_zero_id(&self.new) {
            Operation::Delete
        } else if is_zero_id(&self.old) {
            Operation::Create
        } else {
            Operation::Update
        }
    }

    /// The update in the verdict protocol's form.
    pub fn to_ref_update(&self) -> RefUpdate {
        RefUpdate {
            refname: self.refname.clone(),
            old: self.old.clone(),
            new: self.new.clone(),
            operation: self.operation(),
        }
    }
}

fn is_zero_id(hex: &str) -> bool {
    hex.bytes().all(|b| b == b'0')
}

/// Everything before the pack: the parsed command section of a push.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandSection {
    /// Ids from `shallow` lines.
    pub shallow: Vec<String>,
    /// The ref updates, in the order sent (for a signed push: the certificate's order).
    pub commands: Vec<Command>,
    /// The capabilities of interest.
    pub capabilities: Capabilities,
    /// The push options, in the order sent.
    pub push_options: Vec<String>,
    /// From `object-format=`, else from the id length, else SHA-1 (git's default).
    pub object_format: ObjectFormat,
    /// True for a signed push (commands taken from the push certificate).
    pub signed: bool,
    /// The push certificate's text (its lines, LF-terminated, signature included); empty for
    /// an unsigned push. Kept so that the gate can scan it: it reaches the server's hooks.
    pub certificate: Vec<u8>,
    /// Absolute offset of the first byte after the section: where the pack starts.
    pub end_offset: u64,
}

impl CommandSection {
    /// True when there are no commands: the body was a probe (`0000`), or only shallow lines.
    pub fn is_empty(&self) -> bool {
        self.commands.is_empty()
    }

    /// True when a pack must follow: at least one command is not a delete.
    pub fn expects_pack(&self) -> bool {
        self.commands
            .iter()
            .any(|c| c.operation() != Operation::Delete)
    }

    /// The updates in the verdict protocol's form.
    pub fn ref_updates(&self) -> Vec<RefUpdate> {
        self.commands.iter().map(Command::to_ref_update).collect()
    }
}

/// Bounds on the command section; each one exceeded is a typed error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most bytes in the section, framing included.
    pub max_section_bytes: usize,
    /// Most commands.
    pub max_commands: usize,
    /// Most push options.
    pub max_push_options: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_section_bytes: DEFAULT_MAX_SECTION_BYTES,
            max_commands: DEFAULT_MAX_COMMANDS,
            max_push_options: DEFAULT_MAX_PUSH_OPTIONS,
        }
    }
}

/// A malformed or oversized command section, with the absolute offset of the packet at fault.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ReceivePackError {
    /// The pkt-line framing is broken.
    #[error(transparent)]
    PktLine(#[from] PktLineError),
    /// A delim or response-end packet, which a push never contains.
    #[error("unexpected {kind} packet at byte {offset}")]
    UnexpectedPacket {
        /// Offset of the packet.
        offset: u64,
        /// `delim` or `response-end`.
        kind: &'static str,
    },
    /// An `ERR` packet from the client.
    #[error("error packet from the client at byte {offset}")]
    ErrorPacket {
        /// Offset of the packet.
        offset: u64,
    },
    /// A `shallow` line without a valid id.
    #[error("malformed shallow line at byte {offset}")]
    BadShallow {
        /// Offset of the packet.
        offset: u64,
    },
    /// A command that is not `<old> SP <new> SP <ref>`.
    #[error("malformed command at byte {offset}: {detail}")]
    BadCommand {
        /// Offset of the packet (or of the certificate, for a signed push).
        offset: u64,
        /// What is wrong.
        detail: &'static str,
    },
    /// An object id of the wrong length.
    #[error("object id of {found} hex digits at byte {offset}, expected {expected}")]
    IdLength {
        /// Offset of the packet.
        offset: u64,
        /// Hex digits the object format requires.
        expected: usize,
        /// Hex digits found.
        found: usize,
    },
    /// Ids of one length, but a capability or earlier ids name the other format.
    #[error("object ids at byte {offset} do not match object format {declared}")]
    ObjectFormatMismatch {
        /// Offset of the packet.
        offset: u64,
        /// The format in force.
        declared: &'static str,
    },
    /// An `object-format=` value other than sha1 or sha256.
    #[error("unsupported object format {name:?} at byte {offset}")]
    UnsupportedObjectFormat {
        /// Offset of the packet.
        offset: u64,
        /// The value sent.
        name: String,
    },
    /// The first command carries no NUL and capability list.
    #[error("first command at byte {offset} carries no capabilities")]
    MissingCapabilities {
        /// Offset of the packet.
        offset: u64,
    },
    /// A capability list on a command other than the first.
    #[error("capabilities on a later command at byte {offset}")]
    LateCapabilities {
        /// Offset of the packet.
        offset: u64,
    },
    /// A ref name git would refuse, or one that is not UTF-8.
    #[error("invalid ref name at byte {offset}: {detail}")]
    BadRefname {
        /// Offset of the packet.
        offset: u64,
        /// What is wrong.
        detail: &'static str,
    },
    /// A push option that is not UTF-8 or holds a NUL.
    #[error("invalid push option at byte {offset}")]
    BadPushOption {
        /// Offset of the packet.
        offset: u64,
    },
    /// A push certificate git would refuse, or one this parser does not accept.
    #[error("malformed push certificate at byte {offset}: {detail}")]
    BadPushCert {
        /// Offset of the packet.
        offset: u64,
        /// What is wrong.
        detail: &'static str,
    },
    /// More commands than [`Limits::max_commands`].
    #[error("more than {limit} commands at byte {offset}")]
    TooManyCommands {
        /// Offset of the packet.
        offset: u64,
        /// The limit.
        limit: usize,
    },
    /// More push options than [`Limits::max_push_options`].
    #[error("more than {limit} push options at byte {offset}")]
    TooManyPushOptions {
        /// Offset of the packet.
        offset: u64,
        /// The limit.
        limit: usize,
    },
    /// The section grew past [`Limits::max_section_bytes`].
    #[error("command section exceeds {limit} bytes at byte {offset}")]
    SectionTooLarge {
        /// Offset of the first byte over the limit.
        offset: u64,
        /// The limit.
        limit: usize,
    },
    /// The body ended inside the command section.
    #[error("body ends inside the command section at byte {offset}")]
    Truncated {
        /// Offset of the end of the body.
        offset: u64,
    },
}

/// Progress of [`Parser::feed`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// The section is not complete yet: feed more.
    NeedMore,
    /// The section just completed; the first `consumed` bytes of the last input belonged to it,
    /// the rest (if any) is the pack. Take the result with [`Parser::section`].
    Complete {
        /// Bytes of the last input that were part of the section.
        consumed: usize,
    },
}

/// Where the parser is in the grammar.
#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    /// Shallow lines and commands, up to the flush.
    Commands,
    /// Inside a push certificate, up to `push-cert-end`.
    PushCert {
        /// Offset of the `push-cert` packet, for errors about the certificate as a whole.
        start: u64,
    },
    /// After `push-cert-end`: only the flush may follow.
    AfterPushCert,
    /// Push options, up to the flush.
    PushOptions,
    /// The section is complete.
    Done,
    /// An error occurred; every later call repeats it.
    Failed(ReceivePackError),
}

/// The streaming parser of a receive-pack command section.
#[derive(Debug, Clone)]
pub struct Parser {
    limits: Limits,
    state: State,
    /// The bytes of the packet being assembled; never more than one packet.
    pending: Vec<u8>,
    /// Absolute offset of `pending[0]`: the start of the packet being assembled.
    packet_start: u64,
    shallow: Vec<String>,
    commands: Vec<Command>,
    capabilities: Option<Capabilities>,
    push_options: Vec<String>,
    /// The id length in force, once a capability or a first id fixed it.
    object_format: Option<ObjectFormat>,
    /// The concatenated certificate lines of a signed push.
    certificate: Vec<u8>,
    signed: bool,
}

impl Default for Parser {
    fn default() -> Self {
        Parser::new(Limits::default())
    }
}

impl Parser {
    /// A parser at the start of a body.
    pub fn new(limits: Limits) -> Parser {
        Parser {
            limits,
            state: State::Commands,
            pending: Vec::new(),
            packet_start: 0,
            shallow: Vec::new(),
            commands: Vec::new(),
            capabilities: None,
            push_options: Vec::new(),
            object_format: None,
            certificate: Vec::new(),
            signed: false,
        }
    }

    /// Feeds the next bytes of the body.
    ///
    /// After [`Progress::Complete`] the parser takes no more input: further calls return
    /// `Complete { consumed: 0 }`. After an error every call returns the same error.
    pub fn feed(&mut self, input: &[u8]) -> Result<Progress, ReceivePackError> {
        match &self.state {
            State::Failed(err) => return Err(err.clone()),
            State::Done => return Ok(Progress::Complete { consumed: 0 }),
            _ => {}
        }
        let result = self.feed_packets(input);
        if let Err(err) = &result {
            self.state = State::Failed(err.clone());
        }
        result
    }

    /// Reports the end of the body: an error unless the section is complete or nothing at all
    /// was fed (an empty body).
    pub fn finish(&self) -> Result<(), ReceivePackError> {
        match &self.state {
            State::Done => Ok(()),
            State::Failed(err) => Err(err.clone()),
            _ if self.is_untouched() => Ok(()),
            _ => Err(ReceivePackError::Truncated {
                offset: self.offset(),
            }),
        }
    }

    /// True when no byte has been fed yet.
    pub fn is_untouched(&self) -> bool {
        self.packet_start == 0 && self.pending.is_empty()
    }

    /// Absolute offset of the next byte the parser expects.
    pub fn offset(&self) -> u64 {
        self.packet_start.saturating_add(self.pending.len() as u64)
    }

    /// The capabilities, once the first command has been read.
    pub fn capabilities(&self) -> Option<&Capabilities> {
        self.capabilities.as_ref()
    }

    /// The ref names of the commands read so far, for a report about a broken request.
    pub fn refnames(&self) -> Vec<String> {
        self.commands.iter().map(|c| c.refname.clone()).collect()
    }

    /// The parsed section, once [`Progress::Complete`] was returned.
    pub fn section(&self) -> Option<CommandSection> {
        if self.state != State::Done {
            return None;
        }
        Some(CommandSection {
            shallow: self.shallow.clone(),
            commands: self.commands.clone(),
            capabilities: self.capabilities.clone().unwrap_or_default(),
            push_options: self.push_options.clone(),
            object_format: self.object_format.unwrap_or(ObjectFormat::Sha1),
            signed: self.signed,
            certificate: self.certificate.clone(),
            end_offset: self.packet_start,
        })
    }

    fn feed_packets(&mut self, input: &[u8]) -> Result<Progress, ReceivePackError> {
        let mut used = 0;
        while let Some(rest) = input.get(used..).filter(|rest| !rest.is_empty()) {
            let needed = match pktline::decode(&self.pending, self.packet_start)? {
                Decoded::NeedMore { needed } => needed,
                // A complete packet is always handled as soon as it is assembled.
                Decoded::Complete { .. } => 0,
            };
            let take = needed.min(rest.len());
            let section_len = self.offset().saturating_add(take as u64);
            if section_len > self.limits.max_section_bytes as u64 {
                return Err(ReceivePackError::SectionTooLarge {
                    offset: self.limits.max_section_bytes as u64,
                    limit: self.limits.max_section_bytes,
                });
            }
            self.pending
                .extend_from_slice(rest.get(..take).unwrap_or_default());
            used += take;

            let pending = std::mem::take(&mut self.pending);
            let decoded = pktline::decode(&pending, self.packet_start);
            let outcome = match decoded {
                Ok(Decoded::Complete { pkt, consumed }) => {
                    let offset = self.packet_start;
                    self.packet_start = offset.saturating_add(consumed as u64);
                    self.handle(pkt, offset).map(Some)
                }
                Ok(Decoded::NeedMore { .. }) => Ok(None),
                Err(err) => Err(err.into()),
            };
            // Keep the buffer's allocation; it is empty again once a packet was handled.
            self.pending = pending;
            if let Some(()) = outcome? {
                self.pending.clear();
                if self.state == State::Done {
                    return Ok(Progress::Complete { consumed: used });
                }
            }
        }
        Ok(Progress::NeedMore)
    }

    /// Handles one complete packet that started at `offset`.
    fn handle(&mut self, pkt: Pkt<'_>, offset: u64) -> Result<(), ReceivePackError> {
        match (&self.state, pkt) {
            (_, Pkt::Delim) => Err(ReceivePackError::UnexpectedPacket {
                offset,
                kind: "delim",
            }),
            (_, Pkt::ResponseEnd) => Err(ReceivePackError::UnexpectedPacket {
                offset,
                kind: "response-end",
            }),
            (State::Commands | State::AfterPushCert, Pkt::Flush) => {
                let wants_options = self.capabilities.as_ref().is_some_and(|c| c.push_options);
                // git reads push options only when there were commands (cmd_receive_pack).
                self.state = if wants_options && !self.commands.is_empty() {
                    State::PushOptions
                } else {
                    State::Done
                };
                Ok(())
            }
            (State::Commands, Pkt::Data(payload)) => self.command_line(payload, offset),
            (State::AfterPushCert, Pkt::Data(_)) => Err(ReceivePackError::BadPushCert {
                offset,
                detail: "commands after the certificate",
            }),
            (State::PushCert { .. }, Pkt::Flush) => Err(ReceivePackError::BadPushCert {
                offset,
                detail: "flush before push-cert-end",
            }),
            (State::PushCert { start }, Pkt::Data(payload)) => {
                let start = *start;
                self.certificate_line(payload, start, offset)
            }
            (State::PushOptions, Pkt::Flush) => {
                self.state = State::Done;
                Ok(())
            }
            (State::PushOptions, Pkt::Data(payload)) => self.push_option(payload, offset),
            // feed() never reaches here in these states.
            (State::Done | State::Failed(_), _) => Ok(()),
        }
    }

    fn command_line(&mut self, payload: &[u8], offset: u64) -> Result<(), ReceivePackError> {
        let line = payload.strip_suffix(b"\n").unwrap_or(payload);
        if line.starts_with(pktline::ERR_PREFIX) {
            return Err(ReceivePackError::ErrorPacket { offset });
        }
        if line.len() > SHALLOW_PREFIX.len() && line.starts_with(SHALLOW_PREFIX) {
            let id = line.get(SHALLOW_PREFIX.len()..).unwrap_or_default();
            let id = self
                .object_id(id, offset)
                .map_err(|_| ReceivePackError::BadShallow { offset })?;
            self.shallow.push(id);
            return Ok(());
        }

        let (command, caps) = match line.iter().position(|&b| b == 0) {
            Some(nul) => (
                line.get(..nul).unwrap_or_default(),
                Some(line.get(nul + 1..).unwrap_or_default()),
            ),
            None => (line, None),
        };
        match caps {
            Some(_) if self.capabilities.is_some() => {
                return Err(ReceivePackError::LateCapabilities { offset });
            }
            Some(caps) => self.set_capabilities(caps, offset)?,
            None if self.capabilities.is_none() => {
                return Err(ReceivePackError::MissingCapabilities { offset });
            }
            None => {}
        }

        if command == PUSH_CERT {
            if !self.commands.is_empty() {
                return Err(ReceivePackError::BadPushCert {
                    offset,
                    detail: "both a certificate and unsigned commands",
                });
            }
            self.signed = true;
            self.state = State::PushCert { start: offset };
            return Ok(());
        }
        self.push_command(command, offset)
    }

    fn set_capabilities(&mut self, caps: &[u8], offset: u64) -> Result<(), ReceivePackError> {
        let mut parsed = Capabilities::default();
        for token in caps.split(|&b| b == b' ').filter(|t| !t.is_empty()) {
            let (key, value) = match token.iter().position(|&b| b == b'=') {
                Some(eq) => (token.get(..eq).unwrap_or_default(), token.get(eq + 1..)),
                None => (token, None),
            };
            match key {
                b"report-status" => parsed.report_status = true,
                b"report-status-v2" => parsed.report_status_v2 = true,
                b"side-band-64k" => parsed.side_band_64k = true,
                b"side-band" => parsed.side_band = true,
                b"quiet" => parsed.quiet = true,
                b"atomic" => parsed.atomic = true,
                b"push-options" => parsed.push_options = true,
                // git uses the first occurrence (parse_feature_value).
                b"object-format" if parsed.object_format.is_none() => {
                    let name = String::from_utf8_lossy(value.unwrap_or_default()).into_owned();
                    let format = ObjectFormat::from_name(&name)
                        .ok_or(ReceivePackError::UnsupportedObjectFormat { offset, name })?;
                    parsed.object_format = Some(format);
                }
                b"agent" if parsed.agent.is_none() => {
                    let agent = String::from_utf8_lossy(value.unwrap_or_default());
                    parsed.agent = Some(crate::reason::one_line(&agent, 200));
                }
                _ => {}
            }
        }
        if let Some(declared) = parsed.object_format {
            match self.object_format {
                Some(seen) if seen != declared => {
                    return Err(ReceivePackError::ObjectFormatMismatch {
                        offset,
                        declared: declared.name(),
                    });
                }
                _ => self.object_format = Some(declared),
            }
        }
        self.capabilities = Some(parsed);
        Ok(())
    }

    /// Parses `<old> SP <new> SP <ref>` (queue_command) and records it.
    fn push_command(&mut self, line: &[u8], offset: u64) -> Result<(), ReceivePackError> {
        if self.commands.len() >= self.limits.max_commands {
            return Err(ReceivePackError::TooManyCommands {
                offset,
                limit: self.limits.max_commands,
            });
        }
        let command = self.parse_command(line, offset)?;
        self.commands.push(command);
        Ok(())
    }

    fn parse_command(&mut self, line: &[u8], offset: u64) -> Result<Command, ReceivePackError> {
        let shape = "expected <old> SP <new> SP <ref>";
        let mut fields = line.splitn(3, |&b| b == b' ');
        let (Some(old), Some(new), Some(refname)) = (fields.next(), fields.next(), fields.next())
        else {
            return Err(ReceivePackError::BadCommand {
                offset,
                detail: shape,
            });
        };
        let old = self.object_id(old, offset)?;
        let new = self.object_id(new, offset)?;
        let refname = check_refname(refname)
            .map_err(|detail| ReceivePackError::BadRefname { offset, detail })?;
        Ok(Command { old, new, refname })
    }

    /// Checks one hex object id against the format in force, fixing the format from the id's
    /// length when nothing fixed it yet; returns it in lower case.
    fn object_id(&mut self, id: &[u8], offset: u64) -> Result<String, ReceivePackError> {
        let hex_run = id.iter().take_while(|b| b.is_ascii_hexdigit()).count();
        if hex_run != id.len() {
            return Err(ReceivePackError::BadCommand {
                offset,
                detail: "object id is not hex",
            });
        }
        match self.object_format {
            Some(format) if format.hex_len() != id.len() => {
                let other = ObjectFormat::from_hex_len(id.len());
                if other.is_some() && self.capabilities.is_some() {
                    return Err(ReceivePackError::ObjectFormatMismatch {
                        offset,
                        declared: format.name(),
                    });
                }
                return Err(ReceivePackError::IdLength {
                    offset,
                    expected: format.hex_len(),
                    found: id.len(),
                });
            }
            Some(_) => {}
            None => match ObjectFormat::from_hex_len(id.len()) {
                Some(format) => self.object_format = Some(format),
                None => {
                    return Err(ReceivePackError::IdLength {
                        offset,
                        expected: ObjectFormat::Sha1.hex_len(),
                        found: id.len(),
                    });
                }
            },
        }
        Ok(String::from_utf8_lossy(id).to_ascii_lowercase())
    }

    fn certificate_line(
        &mut self,
        payload: &[u8],
        start: u64,
        offset: u64,
    ) -> Result<(), ReceivePackError> {
        if payload == PUSH_CERT_END {
            self.state = State::AfterPushCert;
            return self.commands_from_certificate(start);
        }
        // git appends each line with strbuf_addstr, which would stop at a NUL.
        if payload.contains(&0) {
            return Err(ReceivePackError::BadPushCert {
                offset,
                detail: "NUL in a line",
            });
        }
        self.certificate.extend_from_slice(payload);
        Ok(())
    }

    /// Takes the commands from the certificate text (queue_commands_from_cert): they run from the
    /// blank line after the header to the last line that starts a signature.
    fn commands_from_certificate(&mut self, start: u64) -> Result<(), ReceivePackError> {
        let certificate = std::mem::take(&mut self.certificate);
        let Some(blank) = certificate.windows(2).position(|w| w == b"\n\n") else {
            return Err(ReceivePackError::BadPushCert {
                offset: start,
                detail: "no blank line after the header",
            });
        };
        let body_start = blank + 2;
        let mut signature_start = certificate.len();
        let mut line_start = 0;
        for line in certificate.split_inclusive(|&b| b == b'\n') {
            if SIGNATURE_STARTS
                .iter()
                .any(|marker| line.starts_with(marker))
            {
                signature_start = line_start;
            }
            line_start += line.len();
        }
        let body = certificate
            .get(body_start..signature_start)
            .unwrap_or_default();
        for line in body.split_inclusive(|&b| b == b'\n') {
            let line = line.strip_suffix(b"\n").unwrap_or(line);
            self.push_command(line, start)?;
        }
        // Kept for the section: its lines are scanned for secrets like the ref names.
        self.certificate = certificate;
        Ok(())
    }

    fn push_option(&mut self, payload: &[u8], offset: u64) -> Result<(), ReceivePackError> {
        if self.push_options.len() >= self.limits.max_push_options {
            return Err(ReceivePackError::TooManyPushOptions {
                offset,
                limit: self.limits.max_push_options,
            });
        }
        let text = payload.strip_suffix(b"\n").unwrap_or(payload);
        if text.contains(&0) {
            return Err(ReceivePackError::BadPushOption { offset });
        }
        let option = std::str::from_utf8(text)
            .map_err(|_| ReceivePackError::BadPushOption { offset })?
            .to_owned();
        self.push_options.push(option);
        Ok(())
    }
}

/// Checks a ref name the way git's receive-pack would before touching it (`refs/` prefix, then
/// `check_refname_format`), and returns it as a string.
fn check_refname(name: &[u8]) -> Result<String, &'static str> {
    if name.len() > MAX_REFNAME_LEN {
        return Err("too long");
    }
    let name = std::str::from_utf8(name).map_err(|_| "not UTF-8")?;
    let Some(rest) = name.strip_prefix("refs/") else {
        return Err("does not start with refs/");
    };
    if rest.is_empty() {
        return Err("empty after refs/");
    }
    if name.ends_with('/') || name.ends_with('.') {
        return Err("ends with / or .");
    }
    if name.contains("..") || name.contains("@{") || name.contains("//") {
        return Err("contains .., @{ or //");
    }
    const FORBIDDEN: &[char] = &[' ', '~', '^', ':', '?', '*', '[', '\\'];
    if name
        .chars()
        .any(|c| c.is_control() || FORBIDDEN.contains(&c))
    {
        return Err("contains a control character, space or one of ~^:?*[\\");
    }
    for component in rest.split('/') {
        if component.starts_with('.') || component.ends_with(".lock") {
            return Err("a component starts with . or ends with .lock");
        }
    }
    Ok(name.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    const OLD: &str = "1111111111111111111111111111111111111111";
    const NEW: &str = "2222222222222222222222222222222222222222";
    const ZERO: &str = "0000000000000000000000000000000000000000";

    fn pkt(payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        pktline::encode_data(payload, &mut out).expect("small");
        out
    }

    fn first(old: &str, new: &str, name: &str, caps: &str) -> Vec<u8> {
        pkt(format!("{old} {new} {name}\0{caps}").as_bytes())
    }

    fn parse(body: &[u8]) -> Result<CommandSection, ReceivePackError> {
        let mut parser = Parser::default();
        match parser.feed(body)? {
            Progress::Complete { .. } => Ok(parser.section().expect("complete")),
            Progress::NeedMore => Err(parser.finish().expect_err("incomplete")),
        }
    }

    #[test]
    fn the_probe_body_is_an_empty_section() {
        let section = parse(b"0000").expect("probe");
        assert!(section.is_empty());
        assert_eq!(section.end_offset, 4);
    }

    #[test]
    fn an_empty_body_is_not_an_error() {
        let parser = Parser::default();
        assert!(parser.is_untouched());
        assert_eq!(parser.finish(), Ok(()));
    }

    #[test]
    fn one_update_with_caps_and_no_lf_parses() {
        let mut body = first(
            OLD,
            NEW,
            "refs/heads/main",
            " report-status-v2 side-band-64k quiet",
        );
        body.extend_from_slice(b"0000PACK");
        let section = parse(&body).expect("valid");
        assert_eq!(section.commands.len(), 1);
        assert_eq!(section.commands[0].operation(), Operation::Update);
        assert!(section.capabilities.report_status_v2);
        assert!(section.capabilities.side_band_64k);
        assert!(section.capabilities.quiet);
        assert_eq!(section.object_format, ObjectFormat::Sha1);
        assert_eq!(section.end_offset as usize, body.len() - 4);
    }

    #[test]
    fn complete_reports_how_much_of_the_input_belonged_to_the_section() {
        let mut body = first(OLD, NEW, "refs/heads/main", " report-status");
        body.extend_from_slice(b"0000PACKxyz");
        let mut parser = Parser::default();
        let progress = parser.feed(&body).expect("valid");
        assert_eq!(
            progress,
            Progress::Complete {
                consumed: body.len() - 7
            }
        );
    }

    #[test]
    fn a_zero_old_id_is_a_create_and_a_zero_new_id_is_a_delete() {
        let mut body = first(ZERO, NEW, "refs/heads/a", " report-status");
        body.extend(pkt(format!("{OLD} {ZERO} refs/heads/b\n").as_bytes()));
        body.extend(pkt(format!("{ZERO} {ZERO} refs/heads/c").as_bytes()));
        body.extend_from_slice(b"0000");
        let ops: Vec<_> = parse(&body)
            .expect("valid")
            .commands
            .iter()
            .map(Command::operation)
            .collect();
        assert_eq!(
            ops,
            [Operation::Create, Operation::Delete, Operation::Delete]
        );
    }

    #[test]
    fn delete_only_pushes_expect_no_pack() {
        let mut body = first(OLD, ZERO, "refs/heads/a", " report-status");
        body.extend_from_slice(b"0000");
        assert!(!parse(&body).expect("valid").expects_pack());
    }

    #[test]
    fn upper_case_ids_are_reported_in_lower_case() {
        let mut body = first(&"A".repeat(40), NEW, "refs/heads/a", " report-status");
        body.extend_from_slice(b"0000");
        assert_eq!(parse(&body).expect("valid").commands[0].old, "a".repeat(40));
    }

    #[test]
    fn push_options_are_read_after_the_first_flush() {
        let mut body = first(OLD, NEW, "refs/heads/main", " push-options atomic");
        body.extend_from_slice(b"0000");
        body.extend(pkt(b"ci.skip"));
        body.extend(pkt(b"reviewer=alice\n"));
        body.extend_from_slice(b"0000PACK");
        let section = parse(&body).expect("valid");
        assert_eq!(section.push_options, ["ci.skip", "reviewer=alice"]);
        assert!(section.capabilities.atomic);
        assert_eq!(section.end_offset as usize, body.len() - 4);
    }

    #[test]
    fn shallow_lines_before_the_commands_are_collected() {
        let mut body = pkt(format!("shallow {OLD}").as_bytes());
        body.extend(first(OLD, NEW, "refs/heads/main", " report-status"));
        body.extend_from_slice(b"0000");
        assert_eq!(parse(&body).expect("valid").shallow, [OLD]);
    }

    #[test]
    fn sha256_ids_fix_the_object_format() {
        let old = "1".repeat(64);
        let new = "2".repeat(64);
        let mut body = first(&old, &new, "refs/heads/main", " object-format=sha256");
        body.extend_from_slice(b"0000");
        assert_eq!(
            parse(&body).expect("valid").object_format,
            ObjectFormat::Sha256
        );
    }

    #[test]
    fn sha256_ids_are_inferred_without_the_capability() {
        let old = "1".repeat(64);
        let mut body = first(&old, &old, "refs/heads/main", " report-status");
        body.extend_from_slice(b"0000");
        assert_eq!(
            parse(&body).expect("valid").object_format,
            ObjectFormat::Sha256
        );
    }

    #[test]
    fn ids_that_contradict_the_object_format_capability_are_refused() {
        let mut body = first(OLD, NEW, "refs/heads/main", " object-format=sha256");
        body.extend_from_slice(b"0000");
        assert!(matches!(
            parse(&body),
            Err(ReceivePackError::ObjectFormatMismatch { .. })
        ));
    }

    #[test]
    fn an_id_of_the_wrong_length_is_refused() {
        let mut body = first(&OLD[..39], NEW, "refs/heads/main", " report-status");
        body.extend_from_slice(b"0000");
        assert_eq!(
            parse(&body),
            Err(ReceivePackError::IdLength {
                offset: 0,
                expected: 40,
                found: 39
            })
        );
    }

    #[test]
    fn a_second_command_with_a_short_id_is_refused() {
        let mut body = first(OLD, NEW, "refs/heads/a", " report-status");
        let second_offset = body.len() as u64;
        body.extend(pkt(format!("{} {NEW} refs/heads/b", &OLD[..38]).as_bytes()));
        body.extend_from_slice(b"0000");
        assert_eq!(
            parse(&body),
            Err(ReceivePackError::IdLength {
                offset: second_offset,
                expected: 40,
                found: 38
            })
        );
    }

    #[test]
    fn a_non_hex_id_is_refused() {
        let mut body = first(&"g".repeat(40), NEW, "refs/heads/a", " report-status");
        body.extend_from_slice(b"0000");
        assert!(matches!(
            parse(&body),
            Err(ReceivePackError::BadCommand { offset: 0, .. })
        ));
    }

    #[test]
    fn an_unknown_object_format_is_refused() {
        let mut body = first(OLD, NEW, "refs/heads/a", " object-format=md5");
        body.extend_from_slice(b"0000");
        assert!(matches!(
            parse(&body),
            Err(ReceivePackError::UnsupportedObjectFormat { .. })
        ));
    }

    #[test]
    fn a_first_command_without_caps_is_refused() {
        let mut body = pkt(format!("{OLD} {NEW} refs/heads/a").as_bytes());
        body.extend_from_slice(b"0000");
        assert_eq!(
            parse(&body),
            Err(ReceivePackError::MissingCapabilities { offset: 0 })
        );
    }

    #[test]
    fn caps_on_a_later_command_are_refused() {
        let mut body = first(OLD, NEW, "refs/heads/a", " report-status");
        body.extend(first(OLD, NEW, "refs/heads/b", " side-band-64k"));
        body.extend_from_slice(b"0000");
        assert!(matches!(
            parse(&body),
            Err(ReceivePackError::LateCapabilities { .. })
        ));
    }

    #[test]
    fn a_command_with_two_fields_is_refused() {
        let mut body = pkt(format!("{OLD} {NEW}\0 report-status").as_bytes());
        body.extend_from_slice(b"0000");
        assert!(matches!(
            parse(&body),
            Err(ReceivePackError::BadCommand { .. })
        ));
    }

    #[test]
    fn funny_ref_names_are_refused() {
        for name in [
            "main",
            "refs/heads/a b",
            "refs/heads/a..b",
            "refs/heads/x.lock",
            "refs/",
        ] {
            let mut body = first(OLD, NEW, name, " report-status");
            body.extend_from_slice(b"0000");
            assert!(
                matches!(parse(&body), Err(ReceivePackError::BadRefname { .. })),
                "{name}"
            );
        }
    }

    #[test]
    fn a_delim_packet_is_refused() {
        assert_eq!(
            parse(b"0001"),
            Err(ReceivePackError::UnexpectedPacket {
                offset: 0,
                kind: "delim"
            })
        );
    }

    #[test]
    fn a_response_end_packet_is_refused() {
        assert!(matches!(
            parse(b"0002"),
            Err(ReceivePackError::UnexpectedPacket { .. })
        ));
    }

    #[test]
    fn an_err_packet_is_refused() {
        assert_eq!(
            parse(&pkt(b"ERR nope")),
            Err(ReceivePackError::ErrorPacket { offset: 0 })
        );
    }

    #[test]
    fn length_three_is_a_framing_error() {
        assert_eq!(
            parse(b"0003"),
            Err(ReceivePackError::PktLine(PktLineError::ReservedLength {
                offset: 0
            }))
        );
    }

    #[test]
    fn a_bad_hex_length_is_a_framing_error() {
        assert!(matches!(
            parse(b"zzzz"),
            Err(ReceivePackError::PktLine(PktLineError::BadLength { .. }))
        ));
    }

    #[test]
    fn a_truncated_section_is_an_error_at_the_end() {
        let body = first(OLD, NEW, "refs/heads/a", " report-status");
        assert_eq!(
            parse(&body[..body.len() - 3]),
            Err(ReceivePackError::Truncated {
                offset: body.len() as u64 - 3
            })
        );
    }

    #[test]
    fn the_section_size_is_bounded() {
        let limits = Limits {
            max_section_bytes: 100,
            ..Limits::default()
        };
        let mut parser = Parser::new(limits);
        let body = first(OLD, NEW, "refs/heads/a", " report-status");
        assert!(matches!(
            parser.feed(&body),
            Err(ReceivePackError::SectionTooLarge { limit: 100, .. })
        ));
        // The error sticks.
        assert!(parser.feed(b"0000").is_err());
    }

    #[test]
    fn the_command_count_is_bounded() {
        let limits = Limits {
            max_commands: 1,
            ..Limits::default()
        };
        let mut parser = Parser::new(limits);
        let mut body = first(OLD, NEW, "refs/heads/a", " report-status");
        body.extend(pkt(format!("{OLD} {NEW} refs/heads/b").as_bytes()));
        assert!(matches!(
            parser.feed(&body),
            Err(ReceivePackError::TooManyCommands { limit: 1, .. })
        ));
    }

    #[test]
    fn the_push_option_count_is_bounded() {
        let limits = Limits {
            max_push_options: 1,
            ..Limits::default()
        };
        let mut parser = Parser::new(limits);
        let mut body = first(OLD, NEW, "refs/heads/a", " push-options");
        body.extend_from_slice(b"0000");
        body.extend(pkt(b"a"));
        body.extend(pkt(b"b"));
        assert!(matches!(
            parser.feed(&body),
            Err(ReceivePackError::TooManyPushOptions { limit: 1, .. })
        ));
    }

    #[test]
    fn a_push_option_with_a_nul_is_refused() {
        let mut body = first(OLD, NEW, "refs/heads/a", " push-options");
        body.extend_from_slice(b"0000");
        body.extend(pkt(b"a\0b"));
        body.extend_from_slice(b"0000");
        assert!(matches!(
            parse(&body),
            Err(ReceivePackError::BadPushOption { .. })
        ));
    }

    fn certificate(commands: &str) -> Vec<u8> {
        let mut body = pkt(b"push-cert\0 report-status side-band-64k push-options");
        for line in [
            "certificate version 0.1\n",
            "pusher A U Thor <a@example.com> 1700000000 +0000\n",
            "pushee http://example.com/demo.git\n",
            "nonce 1700000000-abc\n",
            "push-option ci.skip\n",
            "\n",
        ] {
            body.extend(pkt(line.as_bytes()));
        }
        for line in commands.split_inclusive('\n') {
            body.extend(pkt(line.as_bytes()));
        }
        for line in [
            "-----BEGIN PGP SIGNATURE-----\n",
            "abc\n",
            "-----END PGP SIGNATURE-----\n",
        ] {
            body.extend(pkt(line.as_bytes()));
        }
        body.extend(pkt(b"push-cert-end\n"));
        body.extend_from_slice(b"0000");
        body.extend(pkt(b"ci.skip"));
        body.extend_from_slice(b"0000");
        body
    }

    #[test]
    fn a_signed_push_takes_its_commands_from_the_certificate() {
        let body = certificate(&format!(
            "{OLD} {NEW} refs/heads/main\n{ZERO} {NEW} refs/heads/b\n"
        ));
        let section = parse(&body).expect("valid");
        assert!(section.signed);
        assert_eq!(section.refnames(), ["refs/heads/main", "refs/heads/b"]);
        assert_eq!(section.push_options, ["ci.skip"]);
        assert_eq!(section.end_offset as usize, body.len());
    }

    #[test]
    fn a_certificate_ended_by_a_flush_is_refused() {
        let mut body = pkt(b"push-cert\0 report-status");
        body.extend(pkt(b"certificate version 0.1\n"));
        body.extend_from_slice(b"0000");
        assert!(matches!(
            parse(&body),
            Err(ReceivePackError::BadPushCert { .. })
        ));
    }

    #[test]
    fn a_certificate_without_a_blank_line_is_refused() {
        let mut body = pkt(b"push-cert\0 report-status");
        body.extend(pkt(b"certificate version 0.1\n"));
        body.extend(pkt(b"push-cert-end\n"));
        body.extend_from_slice(b"0000");
        assert!(matches!(
            parse(&body),
            Err(ReceivePackError::BadPushCert { .. })
        ));
    }

    #[test]
    fn unsigned_commands_before_a_certificate_are_refused() {
        let mut body = first(OLD, NEW, "refs/heads/a", " report-status");
        body.extend(pkt(b"push-cert"));
        assert!(matches!(
            parse(&body),
            Err(ReceivePackError::BadPushCert { .. })
        ));
    }

    #[test]
    fn commands_after_a_certificate_are_refused() {
        let mut body = pkt(b"push-cert\0 report-status");
        body.extend(pkt(b"certificate version 0.1\n"));
        body.extend(pkt(b"\n"));
        body.extend(pkt(b"push-cert-end\n"));
        body.extend(pkt(format!("{OLD} {NEW} refs/heads/a").as_bytes()));
        assert!(matches!(
            parse(&body),
            Err(ReceivePackError::BadPushCert { .. })
        ));
    }

    #[test]
    fn a_bad_command_inside_a_certificate_is_refused() {
        let body = certificate("not a command\n");
        assert!(matches!(
            parse(&body),
            Err(ReceivePackError::BadCommand { .. })
        ));
    }

    impl CommandSection {
        fn refnames(&self) -> Vec<&str> {
            self.commands.iter().map(|c| c.refname.as_str()).collect()
        }
    }
}
