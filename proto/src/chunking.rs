//! The chunking scheme, part of the protocol: FastCDC (v2020) with fixed
//! parameters, and BLAKE3 chunk ids.
//!
//! Every client and the server must cut the same bytes at the same places,
//! or dedup across clients breaks; so the parameters are constants here and
//! never configuration. [`Chunker`] cuts a stream incrementally and yields
//! exactly the chunks that [`chunk_spans`] yields for the whole content.

use bytes::{Bytes, BytesMut};
use fastcdc::v2020::FastCDC;

/// Smallest chunk FastCDC cuts (except a file's last chunk).
pub const MIN_CHUNK: usize = 256 * 1024;
/// Average chunk size FastCDC aims for.
pub const AVG_CHUNK: usize = 1024 * 1024;
/// Largest chunk; also the largest `PutChunk` payload accepted.
pub const MAX_CHUNK: usize = 4 * 1024 * 1024;

/// The id of a chunk: BLAKE3 of its bytes, lowercase hex.
pub fn chunk_id(data: &[u8]) -> String {
    blake3::hash(data).to_hex().to_string()
}

/// Whether `s` has the form of a chunk id (64 lowercase hex digits).
pub fn is_chunk_id(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The key-derivation context of the content hash. Part of the protocol.
pub const CONTENT_HASH_CONTEXT: &str = "coffer 2026-11 content hash";

/// The content hash of a file: BLAKE3 (derive-key mode, context
/// [`CONTENT_HASH_CONTEXT`]) over the 32-byte ids of its chunks in order.
/// A hash of block hashes, like Dropbox's `content_hash`: whoever knows the
/// chunk list can check it without the bytes, so the server computes it
/// itself instead of trusting a client's claim.
#[derive(Debug, Clone)]
pub struct ContentHasher(blake3::Hasher);

impl Default for ContentHasher {
    fn default() -> Self {
        Self(blake3::Hasher::new_derive_key(CONTENT_HASH_CONTEXT))
    }
}

impl ContentHasher {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds the next chunk by its id. An id that is not 64 hex digits is
    /// an error (the caller validates ids before).
    pub fn push_id(&mut self, id: &str) -> Result<(), hex::FromHexError> {
        let mut raw = [0u8; 32];
        hex::decode_to_slice(id, &mut raw)?;
        self.0.update(&raw);
        Ok(())
    }

    /// Adds the next chunk by its bytes.
    pub fn push_chunk(&mut self, data: &[u8]) {
        self.0.update(blake3::hash(data).as_bytes());
    }

    /// The hash, lowercase hex.
    pub fn finish(&self) -> String {
        self.0.finalize().to_hex().to_string()
    }
}

/// The content hash of a byte stream: cuts it as [`Chunker`] does and
/// hashes the chunks as they become final. For checking a download.
#[derive(Debug, Default)]
pub struct StreamContentHasher {
    chunker: Chunker,
    hasher: ContentHasher,
}

impl StreamContentHasher {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds the next bytes.
    pub fn update(&mut self, data: &[u8]) {
        for c in self.chunker.push(data) {
            self.hasher.push_chunk(&c);
        }
    }

    /// The content hash of everything added.
    pub fn finish(mut self) -> String {
        for c in std::mem::take(&mut self.chunker).finish() {
            self.hasher.push_chunk(&c);
        }
        self.hasher.finish()
    }
}

/// The content hash of a chunk list given by ids.
pub fn content_hash<'a>(
    ids: impl IntoIterator<Item = &'a str>,
) -> Result<String, hex::FromHexError> {
    let mut h = ContentHasher::new();
    for id in ids {
        h.push_id(id)?;
    }
    Ok(h.finish())
}

/// The content hash of a whole buffer.
pub fn content_hash_of(data: &[u8]) -> String {
    let mut h = ContentHasher::new();
    for (o, l) in chunk_spans(data) {
        h.push_chunk(&data[o..o + l]);
    }
    h.finish()
}

/// Chunk boundaries of a whole buffer, as `(offset, length)` pairs.
pub fn chunk_spans(data: &[u8]) -> Vec<(usize, usize)> {
    if data.is_empty() {
        return Vec::new();
    }
    cutter(data).map(|c| (c.offset, c.length)).collect()
}

fn cutter(data: &[u8]) -> FastCDC<'_> {
    FastCDC::new(data, MIN_CHUNK as u32, AVG_CHUNK as u32, MAX_CHUNK as u32)
}

/// Cuts a byte stream into chunks as it arrives, holding at most
/// [`MAX_CHUNK`] bytes plus the last pushed slice.
///
/// A chunk's end depends only on the bytes from its start up to
/// [`MAX_CHUNK`] further, so once that many are buffered the first cut is
/// final, and the stream cuts exactly as the whole content would.
#[derive(Debug, Default)]
pub struct Chunker {
    buf: BytesMut,
}

impl Chunker {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds bytes and returns the chunks that are now final.
    pub fn push(&mut self, data: &[u8]) -> Vec<Bytes> {
        self.buf.extend_from_slice(data);
        let mut out = Vec::new();
        while self.buf.len() >= MAX_CHUNK {
            let len = cutter(&self.buf)
                .next()
                .map_or(self.buf.len(), |c| c.length);
            out.push(self.buf.split_to(len).freeze());
        }
        out
    }

    /// Ends the stream and returns the remaining chunks.
    pub fn finish(mut self) -> Vec<Bytes> {
        let spans = chunk_spans(&self.buf);
        spans
            .into_iter()
            .map(|(_, len)| self.buf.split_to(len).freeze())
            .collect()
    }

    /// Bytes buffered but not yet cut.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
        let mut x = seed | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    #[test]
    fn streaming_cuts_match_whole_content_cuts() {
        let data = pseudo_random(11 * 1024 * 1024 + 3, 7);
        let whole: Vec<&[u8]> = chunk_spans(&data)
            .iter()
            .map(|&(o, l)| &data[o..o + l])
            .collect();
        for piece in [
            1usize,
            1000,
            64 * 1024,
            3 * 1024 * 1024 + 5,
            9 * 1024 * 1024,
        ] {
            let mut c = Chunker::new();
            let mut got = Vec::new();
            for part in data.chunks(piece) {
                got.extend(c.push(part));
                assert!(c.buffered() < MAX_CHUNK + piece);
            }
            got.extend(c.finish());
            let got: Vec<&[u8]> = got.iter().map(|b| &b[..]).collect();
            assert_eq!(got, whole, "piece size {piece}");
        }
    }

    #[test]
    fn chunk_sizes_respect_the_parameters() {
        let data = pseudo_random(20 * 1024 * 1024, 3);
        let spans = chunk_spans(&data);
        assert!(spans.len() > 5);
        let (last, rest) = spans.split_last().unwrap();
        for &(_, len) in rest {
            assert!((MIN_CHUNK..=MAX_CHUNK).contains(&len), "{len}");
        }
        assert!(last.1 <= MAX_CHUNK);
        assert_eq!(spans.iter().map(|s| s.1).sum::<usize>(), data.len());
    }

    #[test]
    fn an_insert_changes_only_nearby_chunks() {
        let data = pseudo_random(16 * 1024 * 1024, 11);
        let mut edited = data.clone();
        let mid = data.len() / 2;
        edited.splice(mid..mid, pseudo_random(1024, 99));
        let ids = |d: &[u8]| -> std::collections::HashSet<String> {
            chunk_spans(d)
                .iter()
                .map(|&(o, l)| chunk_id(&d[o..o + l]))
                .collect()
        };
        let (before, after) = (ids(&data), ids(&edited));
        assert!(after.difference(&before).count() <= 3);
    }

    #[test]
    fn empty_and_tiny_inputs() {
        assert!(chunk_spans(&[]).is_empty());
        assert!(Chunker::new().finish().is_empty());
        let mut c = Chunker::new();
        assert!(c.push(b"x").is_empty());
        assert_eq!(c.finish(), vec![Bytes::from_static(b"x")]);
    }

    #[test]
    fn chunk_ids_are_blake3_hex() {
        let id = chunk_id(b"hello");
        assert!(is_chunk_id(&id));
        assert_eq!(id, blake3::hash(b"hello").to_hex().as_str());
        assert!(!is_chunk_id(&id.to_uppercase()));
        assert!(!is_chunk_id("abc"));
        assert!(!is_chunk_id(&format!("{}g", &id[..63])));
    }

    #[test]
    fn the_content_hash_covers_chunk_ids_in_order() {
        let data = pseudo_random(6_000_000, 7);
        let spans = chunk_spans(&data);
        assert!(spans.len() > 1);
        let ids: Vec<String> = spans
            .iter()
            .map(|&(o, l)| chunk_id(&data[o..o + l]))
            .collect();
        let by_ids = content_hash(ids.iter().map(String::as_str)).unwrap();
        assert_eq!(by_ids, content_hash_of(&data));
        // Not the plain BLAKE3 of the bytes, and order matters.
        assert_ne!(by_ids, blake3::hash(&data).to_hex().as_str());
        let mut swapped = ids.clone();
        swapped.swap(0, 1);
        assert_ne!(
            content_hash(swapped.iter().map(String::as_str)).unwrap(),
            by_ids
        );
        assert!(content_hash(["zz"]).is_err());
        let mut stream = StreamContentHasher::new();
        data.chunks(100_003).for_each(|p| stream.update(p));
        assert_eq!(stream.finish(), by_ids);
        // Empty content: no chunks.
        assert_eq!(content_hash_of(&[]), content_hash([]).unwrap());
    }
}
