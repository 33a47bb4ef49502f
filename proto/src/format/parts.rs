//! Object parts: Kubernetes objects as JSON lines (the API server's own JSON, one object a
//! line), zstd-compressed. Readable with `zstdcat part | jq`.

use std::io::{BufRead, BufReader, Read, Write};

/// zstd level: fast to write on a busy node, still about 8× on Kubernetes JSON.
const ZSTD_LEVEL: i32 = 3;

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

    /// Appends one object.
    pub fn push(&mut self, object: &serde_json::Value) -> std::io::Result<()> {
        let mut line = serde_json::to_vec(object)?;
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
    lines: std::io::Lines<BufReader<zstd::Decoder<'static, BufReader<R>>>>,
}

impl<R: Read> PartReader<R> {
    /// Over a compressed part (`std::io::Cursor` of its bytes, say).
    pub fn new(compressed: R) -> std::io::Result<Self> {
        Ok(Self {
            lines: BufReader::new(zstd::Decoder::new(compressed)?).lines(),
        })
    }
}

impl<R: Read> Iterator for PartReader<R> {
    type Item = std::io::Result<serde_json::Value>;

    fn next(&mut self) -> Option<Self::Item> {
        let line = match self.lines.next()? {
            Ok(line) => line,
            Err(e) => return Some(Err(e)),
        };
        Some(serde_json::from_str(&line).map_err(std::io::Error::from))
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
}
