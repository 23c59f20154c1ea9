//! The command section of a gzip-encoded receive-pack body.
//!
//! git never compresses receive-pack requests, but other clients may, and `git http-backend`
//! inflates `Content-Encoding: gzip` bodies for either service (git-smart-http.md §2). The gate
//! does not forward such pushes: withholding the last bytes of a compressed stream does not
//! reliably withhold the end of the pack inside it (a deflate stream may end with empty blocks
//! that carry no data), so the upstream could finish the push before the verdict. To still give
//! the client a proper per-ref refusal, the body is inflated only as far as the end of the
//! command section, which yields the capabilities and the ref names.

use std::io::{self, Write};

use flate2::write::GzDecoder;
use thiserror::Error;

use crate::receive_pack::{Capabilities, Parser, Progress, ReceivePackError};

/// The compressed body could not be read as far as the end of its command section.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum GzipError {
    /// The gzip or deflate data is corrupt.
    #[error("corrupt gzip data near byte {offset} of the body")]
    Corrupt {
        /// Compressed bytes fed so far.
        offset: u64,
    },
    /// The inflated command section is malformed.
    #[error("{0}")]
    Section(#[from] ReceivePackError),
}

/// Feeds inflated bytes to the command parser and stops the inflater once it is done.
struct ParserSink {
    parser: Parser,
    complete: bool,
    error: Option<ReceivePackError>,
}

impl Write for ParserSink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.complete || self.error.is_some() {
            return Err(io::Error::other("command section already read"));
        }
        match self.parser.feed(buf) {
            Ok(Progress::NeedMore) => Ok(buf.len()),
            Ok(Progress::Complete { .. }) => {
                self.complete = true;
                // Stops the inflater: nothing after the section is needed.
                Err(io::Error::other("command section complete"))
            }
            Err(err) => {
                self.error = Some(err);
                Err(io::Error::other("command section malformed"))
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Inflates a gzip body into a command parser, up to the end of the command section.
pub struct GzipSection {
    decoder: GzDecoder<ParserSink>,
    fed: u64,
}

impl std::fmt::Debug for GzipSection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GzipSection")
            .field("fed", &self.fed)
            .finish_non_exhaustive()
    }
}

impl GzipSection {
    /// Starts with an empty command parser.
    pub fn new(parser: Parser) -> GzipSection {
        let sink = ParserSink {
            parser,
            complete: false,
            error: None,
        };
        GzipSection {
            decoder: GzDecoder::new(sink),
            fed: 0,
        }
    }

    /// Feeds compressed bytes. Returns `true` once the command section is complete.
    pub fn feed(&mut self, compressed: &[u8]) -> Result<bool, GzipError> {
        if self.is_complete() {
            return Ok(true);
        }
        let written = self
            .decoder
            .write_all(compressed)
            .and_then(|()| self.decoder.flush());
        self.fed = self.fed.saturating_add(compressed.len() as u64);
        let sink = self.decoder.get_ref();
        if let Some(err) = &sink.error {
            return Err(GzipError::Section(err.clone()));
        }
        if sink.complete {
            return Ok(true);
        }
        match written {
            Ok(()) => Ok(false),
            Err(_) => Err(GzipError::Corrupt { offset: self.fed }),
        }
    }

    /// True once the command section is complete.
    pub fn is_complete(&self) -> bool {
        self.decoder.get_ref().complete
    }

    /// The parser, for the capabilities, the ref names, or the section.
    pub fn parser(&self) -> &Parser {
        &self.decoder.get_ref().parser
    }

    /// The client's capabilities, once the first command was inflated.
    pub fn capabilities(&self) -> Option<&Capabilities> {
        self.parser().capabilities()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::Compression;
    use flate2::write::GzEncoder;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
        encoder.write_all(data).expect("in memory");
        encoder.finish().expect("in memory")
    }

    fn body() -> Vec<u8> {
        let line = format!(
            "{} {} refs/heads/main\0 report-status side-band-64k",
            "1".repeat(40),
            "2".repeat(40)
        );
        let mut out = Vec::new();
        crate::pktline::encode_data(line.as_bytes(), &mut out).expect("small");
        out.extend_from_slice(b"0000PACK\0\0\0\x02\0\0\0\0");
        out.extend_from_slice(&[0; 20]);
        out
    }

    #[test]
    fn the_section_of_a_gzip_body_is_read_at_every_split() {
        let compressed = gzip(&body());
        for split in 0..compressed.len() {
            let mut section = GzipSection::new(Parser::default());
            let first = section.feed(&compressed[..split]).expect("valid prefix");
            let done = first || section.feed(&compressed[split..]).expect("valid rest");
            assert!(done, "split {split}");
            let parsed = section.parser().section().expect("complete");
            assert_eq!(parsed.commands[0].refname, "refs/heads/main");
            assert!(section.capabilities().is_some_and(|c| c.side_band_64k));
        }
    }

    #[test]
    fn corrupt_gzip_data_is_an_error() {
        let mut section = GzipSection::new(Parser::default());
        assert!(matches!(
            section.feed(b"not gzip at all"),
            Err(GzipError::Corrupt { .. })
        ));
    }

    #[test]
    fn a_malformed_inflated_section_is_a_section_error() {
        let mut section = GzipSection::new(Parser::default());
        assert!(matches!(
            section.feed(&gzip(b"zzzz")),
            Err(GzipError::Section(_))
        ));
    }
}
