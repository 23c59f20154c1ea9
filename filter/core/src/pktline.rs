//! Pkt-line framing, the bottom layer of every Git wire exchange.
//!
//! Rules from gitprotocol-common, "pkt-line Format": four hex digits give the total length
//! (the four digits included), then `length - 4` payload bytes. `0000`, `0001` and `0002` are
//! special packets without payload; `0003` is invalid and `0004` (an empty data packet) should
//! never be sent. Decoding goes through `gix_packetline::decode::streaming`, after a check of the
//! length prefix that turns every bad prefix into a typed [`PktLineError`] with its offset.

use gix_packetline::PacketLineRef;
use gix_packetline::decode::Stream;
use thiserror::Error;

/// Bytes of the hex length prefix (gitprotocol-common, "pkt-line Format").
pub const LENGTH_PREFIX_LEN: usize = 4;

/// The longest pkt-line, prefix included: `fff0` (gitprotocol-common, "pkt-line Format").
pub const MAX_PKT_LEN: usize = 65520;

/// The longest payload of one pkt-line: 65520 - 4.
pub const MAX_PAYLOAD_LEN: usize = MAX_PKT_LEN - LENGTH_PREFIX_LEN;

/// The flush-pkt: end of a list or message.
pub const FLUSH_PKT: &[u8; 4] = b"0000";

/// The delim-pkt (protocol v2 only): separates sections.
pub const DELIM_PKT: &[u8; 4] = b"0001";

/// The response-end-pkt (protocol v2 only). Never put it in an HTTP body (git-smart-http.md §1).
pub const RESPONSE_END_PKT: &[u8; 4] = b"0002";

/// The payload prefix of an error packet (gitprotocol-pack, "ERR" packets).
pub const ERR_PREFIX: &[u8] = b"ERR ";

/// Length value 3, which no valid packet has.
const RESERVED_LENGTH: u16 = 3;

/// Length value 4, an empty data packet, which git must not send.
const EMPTY_DATA_LENGTH: u16 = 4;

/// One decoded packet, borrowing its payload from the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pkt<'a> {
    /// A data packet with its payload (trailing LF, if any, included).
    Data(&'a [u8]),
    /// `0000`.
    Flush,
    /// `0001`.
    Delim,
    /// `0002`.
    ResponseEnd,
}

impl<'a> Pkt<'a> {
    /// The payload of a data packet with one trailing LF removed, as git's
    /// `PACKET_READ_CHOMP_NEWLINE` does; `None` for special packets.
    pub fn text(&self) -> Option<&'a [u8]> {
        match *self {
            Pkt::Data(payload) => Some(payload.strip_suffix(b"\n").unwrap_or(payload)),
            Pkt::Flush | Pkt::Delim | Pkt::ResponseEnd => None,
        }
    }
}

/// The result of [`decode`]: a whole packet, or how many more bytes are needed for one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decoded<'a> {
    /// A complete packet that used the first `consumed` bytes of the input.
    Complete {
        /// The packet.
        pkt: Pkt<'a>,
        /// Bytes of the input it occupies, prefix included.
        consumed: usize,
    },
    /// The input holds only the start of a packet.
    NeedMore {
        /// At least this many more bytes are needed before decoding can succeed.
        needed: usize,
    },
}

/// A framing error, with the absolute offset of the packet's first byte.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PktLineError {
    /// The four length bytes are not all hex digits.
    #[error("bad pkt-line length {prefix:?} at byte {offset}: not four hex digits")]
    BadLength {
        /// Offset of the length prefix.
        offset: u64,
        /// The four bytes found, escaped for display.
        prefix: String,
    },
    /// Length `0003`, which no packet can have.
    #[error("invalid pkt-line length 3 at byte {offset}")]
    ReservedLength {
        /// Offset of the length prefix.
        offset: u64,
    },
    /// Length `0004`: an empty data packet.
    #[error("empty data pkt-line (0004) at byte {offset}")]
    EmptyData {
        /// Offset of the length prefix.
        offset: u64,
    },
    /// A declared length above [`MAX_PKT_LEN`].
    #[error("pkt-line at byte {offset} declares {length} bytes, more than {MAX_PKT_LEN}")]
    TooLong {
        /// Offset of the length prefix.
        offset: u64,
        /// The declared length.
        length: usize,
    },
    /// An encoder was asked for a payload above [`MAX_PAYLOAD_LEN`].
    #[error("pkt-line payload of {length} bytes exceeds {MAX_PAYLOAD_LEN}")]
    PayloadTooLong {
        /// The payload length asked for.
        length: usize,
    },
    /// The underlying decoder refused the packet.
    #[error("pkt-line framing error at byte {offset}: {message}")]
    Framing {
        /// Offset of the length prefix.
        offset: u64,
        /// The decoder's message.
        message: String,
    },
}

/// Decodes the packet at the start of `input`, whose first byte sits at absolute `offset`.
///
/// Never reads past the packet: on success `consumed` is exactly its length, so a caller can
/// stop at a section boundary and hand the rest of the input to the next layer.
pub fn decode(input: &[u8], offset: u64) -> Result<Decoded<'_>, PktLineError> {
    let Some(prefix) = input.first_chunk::<LENGTH_PREFIX_LEN>() else {
        return Ok(Decoded::NeedMore {
            needed: LENGTH_PREFIX_LEN - input.len(),
        });
    };
    let length = parse_length(prefix, offset)?;
    match length {
        RESERVED_LENGTH => return Err(PktLineError::ReservedLength { offset }),
        EMPTY_DATA_LENGTH => return Err(PktLineError::EmptyData { offset }),
        _ => {}
    }
    let length = usize::from(length);
    if length > MAX_PKT_LEN {
        return Err(PktLineError::TooLong { offset, length });
    }
    match gix_packetline::decode::streaming(input) {
        Ok(Stream::Complete {
            line,
            bytes_consumed,
        }) => {
            let pkt = match line {
                PacketLineRef::Data(payload) => Pkt::Data(payload),
                PacketLineRef::Flush => Pkt::Flush,
                PacketLineRef::Delimiter => Pkt::Delim,
                PacketLineRef::ResponseEnd => Pkt::ResponseEnd,
            };
            Ok(Decoded::Complete {
                pkt,
                consumed: bytes_consumed,
            })
        }
        Ok(Stream::Incomplete { bytes_needed }) => Ok(Decoded::NeedMore {
            needed: bytes_needed,
        }),
        Err(err) => Err(PktLineError::Framing {
            offset,
            message: err.to_string(),
        }),
    }
}

/// Reads the four hex digits of a length prefix (either case, as git does).
fn parse_length(prefix: &[u8; LENGTH_PREFIX_LEN], offset: u64) -> Result<u16, PktLineError> {
    let mut length: u16 = 0;
    for &byte in prefix {
        let Some(digit) = char::from(byte).to_digit(16) else {
            return Err(PktLineError::BadLength {
                offset,
                prefix: escape(prefix),
            });
        };
        // Four hex digits always fit in a u16, so neither step can overflow.
        length = (length << 4) | digit as u16;
    }
    Ok(length)
}

/// Renders bytes for an error message: printable ASCII as is, everything else escaped.
pub(crate) fn escape(bytes: &[u8]) -> String {
    bytes.escape_ascii().to_string()
}

/// Appends a data packet holding `payload`, with the length in lower-case hex.
pub fn encode_data(payload: &[u8], out: &mut Vec<u8>) -> Result<(), PktLineError> {
    if payload.len() > MAX_PAYLOAD_LEN {
        return Err(PktLineError::PayloadTooLong {
            length: payload.len(),
        });
    }
    // payload.len() <= 65516, so the total fits in u16.
    let total = (payload.len() + LENGTH_PREFIX_LEN) as u16;
    out.extend_from_slice(&hex_length(total));
    out.extend_from_slice(payload);
    Ok(())
}

/// Appends a data packet whose payload is `text` followed by LF, cutting the text so that the
/// packet never exceeds [`MAX_PKT_LEN`].
pub fn encode_text(text: &str, out: &mut Vec<u8>) {
    let keep = floor_char_boundary(text, MAX_PAYLOAD_LEN - 1);
    let mut payload = Vec::with_capacity(keep + 1);
    payload.extend_from_slice(text.get(..keep).unwrap_or_default().as_bytes());
    payload.push(b'\n');
    // The payload is at most MAX_PAYLOAD_LEN bytes, so encoding cannot fail.
    let _ = encode_data(&payload, out);
}

/// Appends a flush-pkt.
pub fn encode_flush(out: &mut Vec<u8>) {
    out.extend_from_slice(FLUSH_PKT);
}

/// The four lower-case hex digits of a packet length. Older JGit refused upper case
/// (git-smart-http.md §1), so never emit it.
fn hex_length(length: u16) -> [u8; LENGTH_PREFIX_LEN] {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    // OK because a value masked with 0xf always indexes one of the 16 digits.
    let nibble = |shift: u16| DIGITS[usize::from((length >> shift) & 0xf)];
    [nibble(12), nibble(8), nibble(4), nibble(0)]
}

/// The largest index `<= max` that lies on a char boundary of `text`.
pub(crate) fn floor_char_boundary(text: &str, max: usize) -> usize {
    if text.len() <= max {
        return text.len();
    }
    (0..=max)
        .rev()
        .find(|&index| text.is_char_boundary(index))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn complete(input: &[u8]) -> (Pkt<'_>, usize) {
        match decode(input, 0) {
            Ok(Decoded::Complete { pkt, consumed }) => (pkt, consumed),
            other => panic!("expected a complete packet, got {other:?}"),
        }
    }

    #[test]
    fn a_data_packet_decodes_with_its_payload_and_length() {
        let (pkt, consumed) = complete(b"000eunpack ok\nrest");
        assert_eq!(pkt, Pkt::Data(b"unpack ok\n"));
        assert_eq!(pkt.text(), Some(&b"unpack ok"[..]));
        assert_eq!(consumed, 14);
    }

    #[test]
    fn special_packets_decode_without_payload() {
        assert_eq!(complete(b"0000"), (Pkt::Flush, 4));
        assert_eq!(complete(b"0001"), (Pkt::Delim, 4));
        assert_eq!(complete(b"0002"), (Pkt::ResponseEnd, 4));
    }

    #[test]
    fn upper_case_hex_is_read_like_git_does() {
        assert_eq!(complete(b"000Aabcdef").0, Pkt::Data(b"abcdef"));
    }

    #[test]
    fn a_short_input_asks_for_exactly_the_missing_bytes() {
        assert_eq!(decode(b"00", 0), Ok(Decoded::NeedMore { needed: 2 }));
        assert_eq!(
            decode(b"000eunpack", 0),
            Ok(Decoded::NeedMore { needed: 4 })
        );
    }

    #[test]
    fn a_non_hex_length_is_a_typed_error_with_its_offset() {
        assert_eq!(
            decode(b"00g1", 7),
            Err(PktLineError::BadLength {
                offset: 7,
                prefix: "00g1".into()
            })
        );
    }

    #[test]
    fn length_three_is_refused() {
        assert_eq!(
            decode(b"0003", 9),
            Err(PktLineError::ReservedLength { offset: 9 })
        );
    }

    #[test]
    fn an_empty_data_packet_is_refused() {
        assert_eq!(
            decode(b"0004", 0),
            Err(PktLineError::EmptyData { offset: 0 })
        );
    }

    #[test]
    fn a_length_above_the_maximum_is_refused() {
        assert_eq!(
            decode(b"fff1", 0),
            Err(PktLineError::TooLong {
                offset: 0,
                length: 65521
            })
        );
        assert!(matches!(
            decode(b"fff0", 0),
            Ok(Decoded::NeedMore { needed: 65516 })
        ));
    }

    #[test]
    fn encoding_writes_lower_case_hex() {
        let mut out = Vec::new();
        encode_data(&[b'x'; 26], &mut out).expect("small payload");
        assert_eq!(&out[..4], b"001e");
        encode_flush(&mut out);
        assert_eq!(&out[out.len() - 4..], b"0000");
    }

    #[test]
    fn encoding_refuses_an_oversized_payload() {
        let mut out = Vec::new();
        assert_eq!(
            encode_data(&vec![0; MAX_PAYLOAD_LEN + 1], &mut out),
            Err(PktLineError::PayloadTooLong {
                length: MAX_PAYLOAD_LEN + 1
            })
        );
        encode_data(&vec![0; MAX_PAYLOAD_LEN], &mut out).expect("largest payload fits");
        assert_eq!(&out[..4], b"fff0");
    }

    #[test]
    fn text_packets_end_in_lf_and_round_trip() {
        let mut out = Vec::new();
        encode_text("unpack ok", &mut out);
        assert_eq!(out, b"000eunpack ok\n");
        assert_eq!(complete(&out).0.text(), Some(&b"unpack ok"[..]));
    }

    #[test]
    fn overlong_text_is_cut_on_a_char_boundary() {
        let text = "é".repeat(MAX_PAYLOAD_LEN);
        let mut out = Vec::new();
        encode_text(&text, &mut out);
        assert!(out.len() <= MAX_PKT_LEN);
        let (pkt, _) = complete(&out);
        let payload = pkt.text().expect("data");
        assert!(std::str::from_utf8(payload).is_ok());
    }
}
