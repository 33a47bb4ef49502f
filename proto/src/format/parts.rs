//! Object parts: Kubernetes objects as JSON lines (the API server's own JSON, one object a
//! line), zstd-compressed. Readable with `zstdcat part | jq`.
//!
//! Reading is bounded: a part decompressing to more than [`OBJECT_PART_PLAIN_MAX`] bytes, a line
//! longer than [`OBJECT_PART_LINE_MAX`], or a part asking for a larger zstd window than
//! [`ZSTD_WINDOW_LOG_MAX`], fails as it is read instead of expanding without end. The writer
//! refuses an object the reader would.

use std::io::{BufRead, BufReader, Read, Write};

use super::limits::{OBJECT_PART_LINE_MAX, OBJECT_PART_PLAIN_MAX};

/// zstd level: fast to write on a busy node, still about 8× on Kubernetes JSON.
const ZSTD_LEVEL: i32 = 3;

/// Largest zstd window a part may ask its reader for, as a power of two: 8 MiB. Level 3 writes
/// 2 MiB windows (log 21); zstd's own default maximum is 128 MiB.
const ZSTD_WINDOW_LOG_MAX: u32 = 23;

/// Builds one part in memory; [`PartWriter::finish`] returns the bytes to PUT.
pub struct PartWriter {
    encoder: zstd::Encoder<'static, Vec<u8>>,
    raw_bytes: usize,
    objects: usize,
}

impl PartWriter {
    /// An empty part.
    pub fn new() -> std::io::Result<Self> {
        Ok(Self {
            encoder: zstd::Encoder::new(Vec::new(), ZSTD_LEVEL)?,
            raw_bytes: 0,
            objects: 0,
        })
    }

    /// Appends one object; one longer than [`OBJECT_PART_LINE_MAX`] as JSON is refused (no reader
    /// would read it).
    pub fn push(&mut self, object: &serde_json::Value) -> std::io::Result<()> {
        let mut line = serde_json::to_vec(object)?;
        if line.len() as u64 > OBJECT_PART_LINE_MAX {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!(
                    "an object of {} bytes as JSON, more than the {OBJECT_PART_LINE_MAX} bytes an object part may hold in one line",
                    line.len()
                ),
            ));
        }
        line.push(b'\n');
        self.encoder.write_all(&line)?;
        self.raw_bytes += line.len();
        self.objects += 1;
        Ok(())
    }

    /// Uncompressed bytes so far.
    pub fn raw_bytes(&self) -> usize {
        self.raw_bytes
    }

    /// Objects so far.
    pub fn objects(&self) -> usize {
        self.objects
    }

    /// The compressed part.
    pub fn finish(self) -> std::io::Result<Vec<u8>> {
        self.encoder.finish()
    }
}

/// Reads the objects of a part one at a time, decompressing as it goes: memory holds the
/// compressed part and one object, never the part's objects all at once.
pub struct PartReader<R: Read> {
    plain: BufReader<Capped<zstd::Decoder<'static, BufReader<R>>>>,
    /// The longest line it reads.
    line_max: u64,
    /// The line being read, kept across objects.
    line: Vec<u8>,
}

impl<R: Read> PartReader<R> {
    /// Over a compressed part (`std::io::Cursor` of its bytes, say).
    pub fn new(compressed: R) -> std::io::Result<Self> {
        Self::with_limits(compressed, OBJECT_PART_PLAIN_MAX, OBJECT_PART_LINE_MAX)
    }

    pub(super) fn with_limits(compressed: R, limit: u64, line_max: u64) -> std::io::Result<Self> {
        let mut decoder = zstd::Decoder::new(compressed)?;
        decoder.window_log_max(ZSTD_WINDOW_LOG_MAX)?;
        Ok(Self {
            plain: BufReader::new(Capped {
                inner: decoder,
                left: limit,
                limit,
            }),
            line_max,
            line: Vec::new(),
        })
    }

    /// The next line, without its end; `None` at the end of the part. A line longer than
    /// `line_max` is an error, read no further than one byte past the limit.
    fn next_line(&mut self) -> std::io::Result<Option<&[u8]>> {
        self.line.clear();
        let n = (&mut self.plain)
            .take(self.line_max.saturating_add(1))
            .read_until(b'\n', &mut self.line)?;
        if n == 0 {
            return Ok(None);
        }
        if self.line.last() == Some(&b'\n') {
            self.line.pop();
        }
        if self.line.len() as u64 > self.line_max {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!(
                    "holds a line longer than {} bytes, the most one object may be",
                    self.line_max
                ),
            ));
        }
        Ok(Some(&self.line))
    }
}

/// A reader that fails once more than `limit` bytes come out of `inner`.
struct Capped<R> {
    inner: R,
    left: u64,
    limit: u64,
}

impl<R: Read> Read for Capped<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.left == 0 {
            // At the limit: fine if the stream ends here, an error if there is more.
            let mut probe = [0_u8; 1];
            return match self.inner.read(&mut probe)? {
                0 => Ok(0),
                _ => Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!(
                        "decompresses to more than {} bytes, the most an object part may hold",
                        self.limit
                    ),
                )),
            };
        }
        let room = usize::try_from(self.left).unwrap_or(usize::MAX).min(buf.len());
        let n = self.inner.read(&mut buf[..room])?;
        self.left -= n as u64;
        Ok(n)
    }
}

impl<R: Read> Iterator for PartReader<R> {
    type Item = std::io::Result<serde_json::Value>;

    fn next(&mut self) -> Option<Self::Item> {
        let line = match self.next_line() {
            Ok(line) => line?,
            Err(e) => return Some(Err(e)),
        };
        Some(serde_json::from_slice(line).map_err(std::io::Error::from))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_round_trip_through_a_part() {
        let objects = [
            serde_json::json!({"kind": "ConfigMap", "data": {"a": "1\n2"}}),
            serde_json::json!({"kind": "Secret"}),
        ];
        let mut w = PartWriter::new().expect("writer");
        for o in &objects {
            w.push(o).expect("push");
        }
        assert_eq!(w.objects(), 2);
        let bytes = w.finish().expect("finish");
        let back: Vec<_> = PartReader::new(bytes.as_slice())
            .expect("reader")
            .collect::<Result<_, _>>()
            .expect("read");
        assert_eq!(back, objects);
    }

    #[test]
    fn a_part_expanding_past_the_limit_fails_as_it_is_read() {
        let mut w = PartWriter::new().expect("writer");
        let object = serde_json::json!({"data": "x".repeat(1000)});
        for _ in 0..100 {
            w.push(&object).expect("push");
        }
        let raw = w.raw_bytes() as u64;
        let bytes = w.finish().expect("finish");
        assert!((bytes.len() as u64) < raw / 10, "compresses well");
        let exact = PartReader::with_limits(bytes.as_slice(), raw, OBJECT_PART_LINE_MAX).expect("reader");
        assert_eq!(exact.count(), 100, "a part of exactly the limit reads");
        let mut capped =
            PartReader::with_limits(bytes.as_slice(), raw - 1, OBJECT_PART_LINE_MAX).expect("reader");
        let err = capped.find_map(Result::err).expect("an error before the end");
        assert!(
            err.to_string()
                .starts_with(&format!("decompresses to more than {} bytes", raw - 1)),
            "{err}"
        );
    }

    #[test]
    fn a_line_longer_than_the_limit_fails_unparsed_and_the_writer_refuses_one() {
        let mut w = PartWriter::new().expect("writer");
        w.push(&serde_json::json!({"a": "x".repeat(100)})).expect("push");
        w.push(&serde_json::json!([1])).expect("push");
        let bytes = w.finish().expect("finish");
        let mut reader = PartReader::with_limits(bytes.as_slice(), 1 << 20, 100).expect("reader");
        let err = reader.next().expect("a line").expect_err("too long");
        assert!(err.to_string().contains("a line longer than 100 bytes"), "{err}");
        let exact = PartReader::with_limits(bytes.as_slice(), 1 << 20, 108).expect("reader");
        assert_eq!(exact.count(), 2, "a line of exactly the limit reads");

        let huge =
            serde_json::Value::String("x".repeat(usize::try_from(OBJECT_PART_LINE_MAX).expect("fits")));
        let refused = PartWriter::new()
            .expect("writer")
            .push(&huge)
            .expect_err("refused");
        assert_eq!(refused.kind(), std::io::ErrorKind::InvalidInput);
    }

    #[test]
    fn a_full_part_reads_back_under_the_window_bound() {
        // Over PART_MAX_BYTES, as the writer closes parts: its window fits the reader's bound.
        let mut w = PartWriter::new().expect("writer");
        let mut n = 0_u64;
        while w.raw_bytes() < crate::format::PART_MAX_BYTES + (1 << 20) {
            n += 1;
            w.push(&serde_json::json!({"n": n, "pad": format!("{:x}", n.wrapping_mul(0x9e37_79b9_7f4a_7c15)).repeat(20)}))
                .expect("push");
        }
        let bytes = w.finish().expect("finish");
        let back = PartReader::new(bytes.as_slice()).expect("reader");
        let objects: Vec<_> = back.collect::<Result<_, _>>().expect("objects");
        assert_eq!(objects.len() as u64, n);
    }
}
