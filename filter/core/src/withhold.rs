//! The tail withholder: forward a body as it streams, minus its last bytes.
//!
//! envoy-wasm.md §1.5: pausing the final body callback holds nothing back on HTTP/1.1 (the end
//! arrives as a separate empty callback, after the upstream already has every byte). What works
//! is to keep the last K bytes of the stream inside the filter until the verdict is known. For a
//! push those bytes hold the pack trailer (20 or 32 bytes) or the final flush of a delete-only
//! push, so the upstream cannot finish the push early. K = [`TAIL_LEN`].

/// Bytes withheld at the end of the stream: more than a SHA-256 pack trailer.
pub const TAIL_LEN: usize = 64;

/// Forwards everything but the last `keep` bytes seen so far.
#[derive(Debug, Clone)]
pub struct TailWithholder {
    keep: usize,
    /// The withheld bytes: at most `keep` between calls to [`TailWithholder::push`].
    held: Vec<u8>,
}

impl Default for TailWithholder {
    fn default() -> Self {
        TailWithholder::new(TAIL_LEN)
    }
}

impl TailWithholder {
    /// A withholder keeping the last `keep` bytes.
    pub fn new(keep: usize) -> TailWithholder {
        TailWithholder {
            keep,
            held: Vec::with_capacity(keep),
        }
    }

    /// Takes the next chunk; returns the bytes that may be forwarded now, in stream order.
    pub fn push(&mut self, chunk: &[u8]) -> Vec<u8> {
        let total = self.held.len().saturating_add(chunk.len());
        let Some(forward_len) = total.checked_sub(self.keep).filter(|&n| n > 0) else {
            self.held.extend_from_slice(chunk);
            return Vec::new();
        };
        let mut forward = Vec::with_capacity(forward_len);
        let from_held = forward_len.min(self.held.len());
        forward.extend(self.held.drain(..from_held));
        let from_chunk = forward_len - from_held;
        let (now, later) = chunk.split_at(from_chunk.min(chunk.len()));
        forward.extend_from_slice(now);
        self.held.extend_from_slice(later);
        forward
    }

    /// Adds a chunk to the held bytes without forwarding anything (for the end of the stream).
    pub fn hold(&mut self, chunk: &[u8]) {
        self.held.extend_from_slice(chunk);
    }

    /// The withheld bytes.
    pub fn held(&self) -> &[u8] {
        &self.held
    }

    /// Releases everything held.
    pub fn take(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.held)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_k_bytes_are_held_and_the_rest_forwarded() {
        let mut tail = TailWithholder::new(4);
        assert_eq!(tail.push(b"abcdefgh"), b"abcd");
        assert_eq!(tail.held(), b"efgh");
        assert_eq!(tail.push(b"ij"), b"ef");
        assert_eq!(tail.take(), b"ghij");
        assert!(tail.held().is_empty());
    }

    #[test]
    fn small_chunks_accumulate_until_more_than_k_arrived() {
        let mut tail = TailWithholder::new(4);
        assert!(tail.push(b"ab").is_empty());
        assert!(tail.push(b"cd").is_empty());
        assert_eq!(tail.push(b"e"), b"a");
        assert_eq!(tail.take(), b"bcde");
    }

    #[test]
    fn forwarded_and_held_bytes_are_the_stream_in_order_at_every_split() {
        let stream: Vec<u8> = (0..=255).collect();
        for split in 0..stream.len() {
            let mut tail = TailWithholder::default();
            let mut out = tail.push(&stream[..split]);
            out.extend(tail.push(&stream[split..]));
            assert_eq!(tail.held().len(), TAIL_LEN);
            out.extend(tail.take());
            assert_eq!(out, stream);
        }
    }

    #[test]
    fn hold_keeps_a_final_chunk_entirely() {
        let mut tail = TailWithholder::new(2);
        assert_eq!(tail.push(b"abc"), b"a");
        tail.hold(b"def");
        assert_eq!(tail.take(), b"bcdef");
    }
}
