//! Side-band multiplexing: pkt-lines whose first payload byte names a stream.
//!
//! gitprotocol-pack, "Packfile Data" and gitprotocol-capabilities, "side-band, side-band-64k":
//! band 1 carries data (for a push answer: the report-status pkt-lines, themselves framed),
//! band 2 progress text shown as `remote: ...`, band 3 a fatal error. With `side-band-64k` a
//! packet may hold 65515 payload bytes after the band byte; with the old `side-band`, 995.

use crate::pktline;

/// The side-band stream a packet belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Band {
    /// Band 1: the data stream.
    Data = 1,
    /// Band 2: progress and information text.
    Progress = 2,
    /// Band 3: a fatal error message; the client aborts after printing it.
    Error = 3,
}

/// Which side-band flavour the client asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SideBand {
    /// `side-band-64k`: packets up to 65520 bytes.
    Large,
    /// `side-band`: packets up to 1000 bytes.
    Small,
}

/// Payload bytes after the band byte in one `side-band-64k` packet: 65520 - 4 - 1.
pub const LARGE_MAX_PAYLOAD: usize = pktline::MAX_PAYLOAD_LEN - 1;

/// Payload bytes after the band byte in one `side-band` packet: 1000 - 4 - 1.
pub const SMALL_MAX_PAYLOAD: usize = 995;

impl SideBand {
    /// The most payload bytes one packet of this flavour carries after its band byte.
    pub fn max_payload(self) -> usize {
        match self {
            SideBand::Large => LARGE_MAX_PAYLOAD,
            SideBand::Small => SMALL_MAX_PAYLOAD,
        }
    }
}

/// Appends `payload` to `out` as packets of `band`, cut to the flavour's payload limit.
/// An empty payload writes nothing (a zero-length band packet is a keepalive, not a message).
pub fn encode(band: Band, payload: &[u8], flavour: SideBand, out: &mut Vec<u8>) {
    for piece in payload.chunks(flavour.max_payload()) {
        let mut framed = Vec::with_capacity(piece.len() + 1);
        framed.push(band as u8);
        framed.extend_from_slice(piece);
        // A piece is at most max_payload() bytes, so the packet is within MAX_PKT_LEN.
        let _ = pktline::encode_data(&framed, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pktline::{Decoded, Pkt, decode};

    fn packets(mut bytes: &[u8]) -> Vec<Vec<u8>> {
        let mut found = Vec::new();
        while !bytes.is_empty() {
            match decode(bytes, 0) {
                Ok(Decoded::Complete {
                    pkt: Pkt::Data(payload),
                    consumed,
                }) => {
                    found.push(payload.to_vec());
                    bytes = &bytes[consumed..];
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        found
    }

    #[test]
    fn a_short_message_is_one_packet_with_its_band_byte() {
        let mut out = Vec::new();
        encode(Band::Progress, b"hello\n", SideBand::Large, &mut out);
        assert_eq!(out, b"000b\x02hello\n");
    }

    #[test]
    fn large_payloads_are_cut_at_65515_bytes() {
        let mut out = Vec::new();
        encode(
            Band::Data,
            &vec![b'a'; LARGE_MAX_PAYLOAD + 10],
            SideBand::Large,
            &mut out,
        );
        let found = packets(&out);
        assert_eq!(found.len(), 2);
        assert_eq!(found[0].len(), LARGE_MAX_PAYLOAD + 1);
        assert_eq!(found[1].len(), 11);
        assert!(found.iter().all(|p| p[0] == 1));
    }

    #[test]
    fn old_side_band_payloads_are_cut_at_995_bytes() {
        let mut out = Vec::new();
        encode(Band::Data, &vec![b'a'; 2000], SideBand::Small, &mut out);
        let found = packets(&out);
        assert_eq!(
            found.iter().map(Vec::len).collect::<Vec<_>>(),
            vec![996, 996, 11]
        );
    }

    #[test]
    fn an_empty_payload_writes_nothing() {
        let mut out = Vec::new();
        encode(Band::Error, b"", SideBand::Large, &mut out);
        assert!(out.is_empty());
    }
}
