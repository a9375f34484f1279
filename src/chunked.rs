//! The chunked transfer coding of a request body (RFC 9112 §7.1), decoded as it arrives.
//!
//! Invariants a reviewer can check in this file alone:
//! - the body is hexadecimal chunk sizes (then optional spaces or tabs, and extensions after a
//!   `;`, ignored), each chunk's data followed by exactly CRLF, a zero-size chunk, trailer lines
//!   `name: value` (dropped, never passed on) and an empty line;
//! - every line ends in CRLF and has no other control character but tab; a size line or trailer
//!   line is at most `LINE_LIMIT` bytes and a size at most 15 significant hexadecimal digits,
//!   so nothing here can overflow;
//! - `decode` never consumes a byte past the body's end: what follows is the next request.

use crate::error::ApiError;
use crate::head::{is_control, is_token};

/// Longest chunk-size or trailer line.
const LINE_LIMIT: usize = 4 * 1024;

const MALFORMED: ApiError = ApiError::BadRequest("Malformed chunked body");

#[derive(Debug, Default)]
pub struct Chunked {
    state: State,
    /// The line being read (a chunk size, the CRLF after data, or a trailer).
    line: Vec<u8>,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum State {
    #[default]
    Size,
    Data(usize),
    DataEnd,
    Trailer,
    Done,
}

impl Chunked {
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Decodes from `input`, appending data to `out`; returns how many bytes of `input` belong
    /// to the body (all of it unless the body ended within it).
    pub fn decode(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<usize, ApiError> {
        let mut used = 0;
        while used < input.len() && !self.is_done() {
            if let State::Data(left) = self.state {
                let take = left.min(input.len() - used);
                out.extend_from_slice(&input[used..used + take]);
                used += take;
                self.state = if take == left { State::DataEnd } else { State::Data(left - take) };
                continue;
            }
            self.line.push(input[used]);
            used += 1;
            let after_data = self.state == State::DataEnd && !b"\r\n".starts_with(&self.line);
            if after_data || self.line.len() > LINE_LIMIT {
                return Err(MALFORMED);
            }
            if !self.line.ends_with(b"\n") {
                continue;
            }
            let line = std::mem::take(&mut self.line);
            let line = line.strip_suffix(b"\r\n").ok_or(MALFORMED)?;
            if line.iter().any(|b| *b != b'\t' && is_control(b)) {
                return Err(MALFORMED);
            }
            let field = |line: &[u8]| {
                line.iter().position(|&b| b == b':').is_some_and(|at| at > 0 && line[..at].iter().all(is_token))
            };
            self.state = match self.state {
                State::Size => match chunk_size(line)? {
                    0 => State::Trailer,
                    size => State::Data(size),
                },
                State::DataEnd if line.is_empty() => State::Size,
                State::DataEnd => return Err(MALFORMED),
                State::Trailer if line.is_empty() => State::Done,
                State::Trailer if field(line) => State::Trailer, // a trailer field, dropped
                _ => return Err(MALFORMED),
            };
        }
        Ok(used)
    }
}

/// The size on a chunk-size line: hexadecimal digits, then optionally `;` and extensions.
fn chunk_size(line: &[u8]) -> Result<usize, ApiError> {
    let digits = line.split(|&b| b == b';').next().unwrap_or_default();
    let digits = &digits[..digits.len() - digits.iter().rev().take_while(|b| matches!(b, b' ' | b'\t')).count()];
    let significant = digits.iter().position(|&b| b != b'0').map_or(&digits[digits.len()..], |at| &digits[at..]);
    if digits.is_empty() || significant.len() > 15 || !digits.iter().all(u8::is_ascii_hexdigit) {
        return Err(MALFORMED);
    }
    let digits = std::str::from_utf8(significant).map_err(|_| MALFORMED)?;
    if digits.is_empty() { Ok(0) } else { usize::from_str_radix(digits, 16).map_err(|_| MALFORMED) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(pieces: &[&[u8]]) -> Result<(Vec<u8>, bool, usize), ApiError> {
        let mut chunked = Chunked::default();
        let (mut out, mut used) = (Vec::new(), 0);
        for piece in pieces {
            used = chunked.decode(piece, &mut out)?;
        }
        Ok((out, chunked.is_done(), used))
    }

    #[test]
    fn chunked_bodies_are_decoded_however_they_are_split() {
        let body: &[u8] = b"5;name=value\r\nhello\r\n6 \r\n world\r\n0\r\nTrailer: x\r\n\r\nGET /next";
        let (out, done, used) = decode_all(&[body]).unwrap();
        assert_eq!((out.as_slice(), done), (&b"hello world"[..], true));
        assert_eq!(&body[used..], b"GET /next", "the rest begins the next request");
        for split in 1..body.len() - 9 {
            let (first, second) = body.split_at(split);
            let (out, done, _) = decode_all(&[first, second]).unwrap();
            assert_eq!((out.as_slice(), done), (&b"hello world"[..], true), "split at {split}");
        }
        let (out, done, _) = decode_all(&[b"000000000000000A\r\n0123456789\r\n0\r\n\r\n"]).unwrap();
        assert_eq!((out.len(), done), (10, true), "leading zeros do not count against the size's length");
        let (out, done, _) = decode_all(&[b"A\r\n0123456789\r\n"]).unwrap();
        assert_eq!((out.len(), done), (10, false), "waits for the last chunk");
    }

    #[test]
    fn malformed_chunks_are_refused() {
        let long_size = format!("{}\r\n", "1".repeat(LINE_LIMIT + 1));
        let cases: &[&[u8]] = &[
            b"x\r\n",
            b"\r\n",
            b"-1\r\n",
            b"+5\r\nhello\r\n",
            b"5\nhello\r\n",
            b"5\r\nhelloXY",
            b"1000000000000000\r\n",
            b"0\r\nTrailer: x\n",
            b"5\r\r\nhello\r\n",
            b"5\x0c\r\nhello\r\n",
            b"5;a=\x00\r\nhello\r\n",
            b"0\r\nno colon\r\n\r\n",
            b"0\r\n: x\r\n\r\n",
            long_size.as_bytes(),
        ];
        for case in cases {
            let result = decode_all(&[case]);
            assert!(matches!(result, Err(ApiError::BadRequest(_))), "{}: {result:?}", String::from_utf8_lossy(case));
        }
    }
}
