//! A streaming brotli encoder that ends its stream properly.
//!
//! Pingora 0.9.1's brotli compressor only flushes at the end and never writes brotli's final
//! block, so decoders see a truncated stream; this one finishes it.

use brotli::CompressorWriter;
use bytes::Bytes;
use pingora::protocols::http::compression::{Encode, COMPRESSION_ERROR};
use pingora::OrErr;
use std::io::Write;
use std::time::{Duration, Instant};

/// brotli's window (2^19 bytes), as Pingora uses.
const WINDOW_BITS: u32 = 19;
const BUFFER: usize = 4096;

pub(super) struct BrotliEncoder {
    writer: Option<CompressorWriter<Vec<u8>>>,
    total_in: usize,
    total_out: usize,
    spent: Duration,
}

impl BrotliEncoder {
    pub(super) fn new(level: u32) -> Self {
        BrotliEncoder {
            writer: Some(CompressorWriter::new(
                Vec::new(),
                BUFFER,
                level,
                WINDOW_BITS,
            )),
            total_in: 0,
            total_out: 0,
            spent: Duration::ZERO,
        }
    }
}

impl Encode for BrotliEncoder {
    fn encode(&mut self, input: &[u8], end: bool) -> pingora::Result<Bytes> {
        let start = Instant::now();
        let Some(writer) = self.writer.as_mut() else {
            return Ok(Bytes::new());
        };
        self.total_in += input.len();
        writer
            .write_all(input)
            .or_err(COMPRESSION_ERROR, "while compressing brotli")?;
        let out = if end {
            // Consuming the writer writes the last block.
            self.writer
                .take()
                .map(|w| w.into_inner())
                .unwrap_or_default()
        } else {
            std::mem::take(writer.get_mut())
        };
        self.total_out += out.len();
        self.spent += start.elapsed();
        Ok(out.into())
    }

    fn stat(&self) -> (&'static str, usize, usize, Duration) {
        ("brotli", self.total_in, self.total_out, self.spent)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn the_stream_decodes_completely() {
        let text: Vec<u8> = b"brotli in pieces. "
            .iter()
            .copied()
            .cycle()
            .take(100_000)
            .collect();
        let mut enc = BrotliEncoder::new(4);
        let mut out = Vec::new();
        for piece in text.chunks(7000) {
            out.extend_from_slice(&enc.encode(piece, false).unwrap());
        }
        out.extend_from_slice(&enc.encode(&[], true).unwrap());
        let mut back = Vec::new();
        brotli::Decompressor::new(out.as_slice(), 4096)
            .read_to_end(&mut back)
            .unwrap();
        assert_eq!(back, text);
        assert_eq!(enc.stat().1, 100_000);
    }
}
