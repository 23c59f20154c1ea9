//! Text bodies: `text/*`, diffs and patches, raw file endpoints. Masked anywhere, released as
//! soon as the scanner settles, so the body trails the input by at most the scanner's carry.

use std::sync::Arc;

use super::Shared;
use super::report::{MaskReport, Place};
use super::stream::{CopyRender, MaskStream};

/// Masks a text body.
#[derive(Debug)]
pub(crate) struct TextMasker {
    stream: MaskStream,
    /// Body offset of stream offset 0 (non-zero when a pkt-line or JSON body turned to text).
    base: u64,
    place: Place,
}

impl TextMasker {
    /// A masker whose first byte sits at body offset `base`.
    pub(crate) fn new(shared: &Arc<Shared>, base: u64, place: Place) -> TextMasker {
        TextMasker {
            stream: MaskStream::new(shared, true),
            base,
            place,
        }
    }

    /// Masks the next chunk, appending what can be released to `out`.
    pub(crate) fn feed(&mut self, chunk: &[u8], out: &mut Vec<u8>, report: &mut MaskReport) {
        self.stream.push(chunk);
        self.record(report);
        self.stream.release_settled(&mut CopyRender { out });
    }

    /// Ends the body, appending everything still held.
    pub(crate) fn finish(&mut self, out: &mut Vec<u8>, report: &mut MaskReport) {
        self.stream.finish();
        self.record(report);
        self.stream.release(u64::MAX, &mut CopyRender { out });
    }

    fn record(&mut self, report: &mut MaskReport) {
        for found in self.stream.take_found() {
            report.record(&found, self.base.saturating_add(found.start), self.place);
        }
    }
}
