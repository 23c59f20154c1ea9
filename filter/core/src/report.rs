//! The HTTP body that refuses a push, built the way git's receive-pack would answer.
//!
//! git-smart-http.md §4 ("The receive-pack answer: report-status", "Minimal rejection answer"):
//! a report is `unpack ok`, one `ng <ref> <reason>` per command and an inner flush. When the
//! client asked for side-band-64k (or side-band) the whole report is the payload of band-1
//! packets, optional band-2 text goes before it, and an outer flush ends the stream. Without a
//! side band the report packets are the whole body. A client that asked for no report at all
//! gets a band-3 message (with a side band) or an `ERR` packet (without). Every length is
//! computed here; nothing is a hand-written constant.

use crate::pktline;
use crate::reason::{self, Reason};
use crate::receive_pack::Capabilities;
use crate::sideband::{self, Band, SideBand};

/// The `Content-Type` of a receive-pack answer (git-smart-http.md §2).
pub const RESULT_CONTENT_TYPE: &str = "application/x-git-receive-pack-result";

/// The most bytes of one band-2 information line.
pub const MAX_INFO_LINE_LEN: usize = 1000;

/// How the client wants the answer framed, from its capabilities.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReportMode {
    /// The side band to wrap the answer in, if any.
    pub side_band: Option<SideBand>,
    /// True when the client asked for report-status or report-status-v2.
    pub report_status: bool,
}

impl ReportMode {
    /// The framing a client with these capabilities expects. `side-band-64k` wins over
    /// `side-band` when both were sent.
    pub fn from_capabilities(caps: &Capabilities) -> ReportMode {
        let side_band = if caps.side_band_64k {
            Some(SideBand::Large)
        } else if caps.side_band {
            Some(SideBand::Small)
        } else {
            None
        };
        ReportMode {
            side_band,
            report_status: caps.wants_report(),
        }
    }
}

/// One refused ref and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefRefusal {
    /// The full ref name as the client sent it.
    pub refname: String,
    /// The reason shown in `! [remote rejected] ... (<reason>)`.
    pub reason: Reason,
}

/// The report-status packets alone: `unpack ok`, the `ng` lines, the inner flush.
pub fn report_status(refs: &[RefRefusal]) -> Vec<u8> {
    let mut out = Vec::new();
    pktline::encode_text("unpack ok", &mut out);
    for refusal in refs {
        pktline::encode_text(
            &format!("ng {} {}", refusal.refname, refusal.reason),
            &mut out,
        );
    }
    pktline::encode_flush(&mut out);
    out
}

/// The whole answer body refusing every ref in `refs`, with `info` lines shown as
/// `remote: <line>` before the per-ref statuses (only possible with a side band).
///
/// `mode` is `None` when the client's capabilities are unknown (the request broke before the
/// first command was read); the answer is then an `ERR` packet carrying `fallback`.
pub fn refusal(
    mode: Option<ReportMode>,
    info: &[String],
    refs: &[RefRefusal],
    fallback: &str,
) -> Vec<u8> {
    let Some(mode) = mode else {
        return error_packet(fallback);
    };
    if !mode.report_status {
        return fatal(mode, info, fallback);
    }
    let report = report_status(refs);
    let Some(flavour) = mode.side_band else {
        return report;
    };
    let mut out = Vec::new();
    write_info(info, flavour, &mut out);
    sideband::encode(Band::Data, &report, flavour, &mut out);
    pktline::encode_flush(&mut out);
    out
}

/// An answer without per-ref statuses, for a client that asked for no report: the info lines
/// and a band-3 message with a side band, else an `ERR` packet.
pub fn fatal(mode: ReportMode, info: &[String], message: &str) -> Vec<u8> {
    let Some(flavour) = mode.side_band else {
        return error_packet(message);
    };
    let mut out = Vec::new();
    write_info(info, flavour, &mut out);
    let line = format!("{}\n", reason::one_line(message, MAX_INFO_LINE_LEN));
    sideband::encode(Band::Error, line.as_bytes(), flavour, &mut out);
    pktline::encode_flush(&mut out);
    out
}

/// An `ERR <message>` packet. git prints `fatal: remote error: <message>`. Only valid where the
/// client reads plain packets: never after side-band was agreed (git-smart-http.md §1).
pub fn error_packet(message: &str) -> Vec<u8> {
    let mut out = Vec::new();
    pktline::encode_text(
        &format!("ERR {}", reason::one_line(message, MAX_INFO_LINE_LEN)),
        &mut out,
    );
    out
}

/// Band-2 packets carrying `info`, one line each, to go in front of the upstream's own answer
/// (a side-band stream may start with progress text before its data, gitprotocol-pack
/// "Packfile Data"). Nothing without a side band: those clients read plain packets only.
pub fn info_packets(mode: Option<ReportMode>, info: &[String]) -> Vec<u8> {
    let mut out = Vec::new();
    if let Some(flavour) = mode.and_then(|m| m.side_band) {
        write_info(info, flavour, &mut out);
    }
    out
}

fn write_info(info: &[String], flavour: SideBand, out: &mut Vec<u8>) {
    for line in info {
        let line = format!("{}\n", reason::one_line(line, MAX_INFO_LINE_LEN));
        sideband::encode(Band::Progress, line.as_bytes(), flavour, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pktline::{Decoded, Pkt, decode};

    fn refusals() -> Vec<RefRefusal> {
        vec![
            RefRefusal {
                refname: "refs/heads/main".into(),
                reason: Reason::new("gitgate:deny:protected", "open a pull request"),
            },
            RefRefusal {
                refname: "refs/heads/agent/fix-123".into(),
                reason: Reason::new("gitgate:refused:other-ref-refused", ""),
            },
        ]
    }

    /// Splits a body into its packets, checking every length on the way.
    fn packets(mut bytes: &[u8]) -> Vec<Option<Vec<u8>>> {
        let mut found = Vec::new();
        while !bytes.is_empty() {
            match decode(bytes, 0) {
                Ok(Decoded::Complete { pkt, consumed }) => {
                    found.push(match pkt {
                        Pkt::Data(payload) => Some(payload.to_vec()),
                        _ => None,
                    });
                    bytes = &bytes[consumed..];
                }
                other => panic!("bad framing: {other:?}"),
            }
        }
        found
    }

    const LARGE: ReportMode = ReportMode {
        side_band: Some(SideBand::Large),
        report_status: true,
    };

    #[test]
    fn the_report_lists_every_ref_with_its_reason() {
        let report = report_status(&refusals());
        assert_eq!(
            packets(&report),
            [
                Some(b"unpack ok\n".to_vec()),
                Some(b"ng refs/heads/main gitgate:deny:protected open a pull request\n".to_vec()),
                Some(b"ng refs/heads/agent/fix-123 gitgate:refused:other-ref-refused\n".to_vec()),
                None,
            ]
        );
    }

    #[test]
    fn with_side_band_the_report_is_wrapped_in_band_one_after_the_info_lines() {
        let info = vec!["gitgate: refs/heads/main is held".to_owned()];
        let body = refusal(Some(LARGE), &info, &refusals(), "refused");
        let found = packets(&body);
        assert_eq!(found.len(), 3);
        assert_eq!(
            found[0].as_deref(),
            Some(&b"\x02gitgate: refs/heads/main is held\n"[..])
        );
        let band_one = found[1].as_ref().expect("data");
        assert_eq!(band_one[0], 1);
        assert_eq!(&band_one[1..], report_status(&refusals()).as_slice());
        assert_eq!(found[2], None);
    }

    #[test]
    fn without_side_band_the_body_is_the_bare_report() {
        let mode = ReportMode {
            side_band: None,
            report_status: true,
        };
        let info = vec!["dropped".to_owned()];
        assert_eq!(
            refusal(Some(mode), &info, &refusals(), "x"),
            report_status(&refusals())
        );
    }

    #[test]
    fn the_old_side_band_cuts_the_report_into_small_packets() {
        let many: Vec<_> = (0..40)
            .map(|i| RefRefusal {
                refname: format!("refs/heads/branch-{i}"),
                reason: Reason::new("gitgate:deny:x", "a fairly long reason to fill the packet"),
            })
            .collect();
        let mode = ReportMode {
            side_band: Some(SideBand::Small),
            report_status: true,
        };
        let body = refusal(Some(mode), &[], &many, "x");
        let found = packets(&body);
        let mut report = Vec::new();
        for payload in found.iter().flatten() {
            assert!(payload.len() <= 996);
            assert_eq!(payload[0], 1);
            report.extend_from_slice(&payload[1..]);
        }
        assert_eq!(report, report_status(&many));
    }

    #[test]
    fn a_client_without_report_status_gets_a_band_three_message() {
        let mode = ReportMode {
            side_band: Some(SideBand::Large),
            report_status: false,
        };
        let body = refusal(Some(mode), &[], &refusals(), "gitgate: push refused");
        assert_eq!(
            packets(&body),
            [Some(b"\x03gitgate: push refused\n".to_vec()), None]
        );
    }

    #[test]
    fn a_client_without_side_band_or_report_gets_an_err_packet() {
        let mode = ReportMode {
            side_band: None,
            report_status: false,
        };
        let body = refusal(Some(mode), &[], &refusals(), "gitgate: push refused");
        assert_eq!(body, b"001eERR gitgate: push refused\n");
    }

    #[test]
    fn unknown_capabilities_give_an_err_packet() {
        assert_eq!(
            refusal(None, &[], &[], "bad\nrequest"),
            b"0014ERR bad request\n"
        );
    }

    #[test]
    fn the_reference_answer_from_the_protocol_notes_has_the_expected_size() {
        // git-smart-http.md §4: a 42-byte info line, a 136-byte band-1 packet, an outer flush.
        let info = vec!["policy: refs/heads/main is protected".to_owned()];
        let refs = vec![
            RefRefusal {
                refname: "refs/heads/main".into(),
                reason: Reason::new("gitgate:deny:protected", ""),
            },
            RefRefusal {
                refname: "refs/heads/agent/fix-123".into(),
                reason: Reason::new("gitgate:refused:other", ""),
            },
        ];
        let body = refusal(Some(LARGE), &info, &refs, "x");
        assert_eq!(&body[..4], b"002a");
        let found = packets(&body);
        assert_eq!(found.len(), 3);
    }
}
