//! The pack object's layout: chunks end to end, then their index, then a
//! fixed footer. Pure: it lays out and checks bytes, nothing else.
//!
//! ```text
//! [chunk 0][chunk 1]…[chunk n-1][entry 0]…[entry n-1][footer]
//! entry  = BLAKE3 id (32) | offset u64 LE | length u32 LE        (44 bytes)
//! footer = index length u32 LE | count u32 LE |
//!          BLAKE3 of the index (32) | magic "CofferP1"            (48 bytes)
//! ```
//!
//! A chunk's bytes are stored as they are, so a ranged GET of an entry's
//! range returns exactly the chunk, checked like any chunk by hashing it
//! to its id. The index at the end lets the chunk → pack table be rebuilt
//! from the nodes alone (two ranged GETs per pack: the footer, then the
//! index), and a pack is named by the BLAKE3 of all its bytes, so one
//! hash verifies a whole replica, as it does any chunk.

use std::collections::HashSet;
use std::ops::Range;

/// Bytes of one index entry.
pub const ENTRY_LEN: usize = 32 + 8 + 4;
/// Bytes of the footer.
pub const FOOTER_LEN: usize = 4 + 4 + 32 + 8;
/// The footer's last bytes: the format and its version.
pub const MAGIC: &[u8; 8] = b"CofferP1";

/// One chunk inside a pack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Entry {
    /// BLAKE3 of the chunk's bytes (the chunk id, raw).
    pub id: [u8; 32],
    /// Where its bytes start in the pack.
    pub offset: u64,
    pub len: u32,
}

impl Entry {
    /// The chunk id as the rest of Coffer writes it (lowercase hex).
    pub fn id_hex(&self) -> String {
        hex::encode(self.id)
    }

    /// Its bytes' range in the pack.
    pub fn range(&self) -> Range<u64> {
        self.offset..self.offset + u64::from(self.len)
    }

    fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.id);
        out.extend_from_slice(&self.offset.to_le_bytes());
        out.extend_from_slice(&self.len.to_le_bytes());
    }

    fn read(b: &[u8]) -> Entry {
        let mut id = [0; 32];
        id.copy_from_slice(&b[..32]);
        Entry {
            id,
            offset: u64::from_le_bytes(b[32..40].try_into().expect("8 bytes")),
            len: u32::from_le_bytes(b[40..44].try_into().expect("4 bytes")),
        }
    }
}

/// A chunk id (64 hex digits) as the index stores it.
pub fn id_bytes(id: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(id, &mut out).ok()?;
    Some(out)
}

/// Why bytes are not a well-formed pack.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PackError {
    #[error("{len} bytes are too few for a pack's footer")]
    TooShort { len: u64 },
    #[error("the footer does not end with the pack magic")]
    BadMagic,
    #[error("the footer's index ({index_len} bytes for {count} entries) does not fit the pack")]
    IndexOutside { index_len: u32, count: u32 },
    #[error("the index does not hash to the footer's hash")]
    IndexHash,
    #[error("entry {at} does not start where the one before it ends")]
    Misplaced { at: usize },
    #[error("the entries end at {end}, not where the index starts ({data})")]
    Unaccounted { end: u64, data: u64 },
    #[error("entry {at} repeats a chunk already in the pack")]
    Duplicate { at: usize },
    #[error("entry {at}'s bytes do not hash to its id")]
    ChunkHash { at: usize },
    #[error("the pack does not hash to its name")]
    PackHash,
    #[error("a pack holds at most {max} bytes of chunks")]
    Full { max: u64 },
}

/// A pack being filled.
#[derive(Debug, Default)]
pub struct Builder {
    bytes: Vec<u8>,
    entries: Vec<Entry>,
    ids: HashSet<[u8; 32]>,
}

/// A finished pack: its bytes, its name and what it holds.
#[derive(Debug, Clone)]
pub struct Sealed {
    /// BLAKE3 of `bytes`, lowercase hex: the pack's name.
    pub id: String,
    pub bytes: bytes::Bytes,
    pub entries: Vec<Entry>,
}

impl Builder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a chunk, whose id the caller has checked; a chunk already
    /// in this pack is not stored twice (its entry is returned).
    pub fn push(&mut self, id: [u8; 32], data: &[u8]) -> Result<Entry, PackError> {
        if !self.ids.insert(id) {
            return Ok(*self
                .entries
                .iter()
                .find(|e| e.id == id)
                .expect("an id in the set has an entry"));
        }
        let len = u32::try_from(data.len()).map_err(|_| PackError::Full {
            max: u64::from(u32::MAX),
        })?;
        let entry = Entry {
            id,
            offset: self.bytes.len() as u64,
            len,
        };
        self.bytes.extend_from_slice(data);
        self.entries.push(entry);
        Ok(entry)
    }

    /// Bytes of chunks so far.
    pub fn data_len(&self) -> u64 {
        self.bytes.len() as u64
    }

    pub fn count(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Writes the index and footer after the chunks and names the pack.
    pub fn seal(self) -> Sealed {
        let Builder {
            mut bytes, entries, ..
        } = self;
        let mut index = Vec::with_capacity(entries.len() * ENTRY_LEN);
        for e in &entries {
            e.write(&mut index);
        }
        let index_len = u32::try_from(index.len()).expect("an index of u32 entries fits");
        let count = u32::try_from(entries.len()).expect("fewer than 2^32 entries");
        bytes.reserve(index.len() + FOOTER_LEN);
        bytes.extend_from_slice(&index);
        bytes.extend_from_slice(&index_len.to_le_bytes());
        bytes.extend_from_slice(&count.to_le_bytes());
        bytes.extend_from_slice(blake3::hash(&index).as_bytes());
        bytes.extend_from_slice(MAGIC);
        let id = blake3::hash(&bytes).to_hex().to_string();
        Sealed {
            id,
            bytes: bytes.into(),
            entries,
        }
    }
}

/// What the footer says about the index before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Footer {
    pub index_len: u32,
    pub count: u32,
    pub index_hash: [u8; 32],
}

impl Footer {
    /// Where the index lies in a pack of `pack_len` bytes.
    pub fn index_range(&self, pack_len: u64) -> Result<Range<u64>, PackError> {
        let outside = PackError::IndexOutside {
            index_len: self.index_len,
            count: self.count,
        };
        if u64::from(self.index_len) != u64::from(self.count) * ENTRY_LEN as u64 {
            return Err(outside);
        }
        let end = pack_len
            .checked_sub(FOOTER_LEN as u64)
            .ok_or(PackError::TooShort { len: pack_len })?;
        let start = end.checked_sub(u64::from(self.index_len)).ok_or(outside)?;
        Ok(start..end)
    }
}

/// Reads the footer from a pack's last `FOOTER_LEN` bytes.
pub fn parse_footer(tail: &[u8]) -> Result<Footer, PackError> {
    if tail.len() < FOOTER_LEN {
        return Err(PackError::TooShort {
            len: tail.len() as u64,
        });
    }
    let f = &tail[tail.len() - FOOTER_LEN..];
    if &f[40..48] != MAGIC {
        return Err(PackError::BadMagic);
    }
    let mut index_hash = [0; 32];
    index_hash.copy_from_slice(&f[8..40]);
    Ok(Footer {
        index_len: u32::from_le_bytes(f[0..4].try_into().expect("4 bytes")),
        count: u32::from_le_bytes(f[4..8].try_into().expect("4 bytes")),
        index_hash,
    })
}

/// Checks and decodes the index of a pack of `pack_len` bytes: it hashes
/// to the footer's hash, and its entries cover the chunk bytes exactly,
/// in order, each chunk once.
pub fn parse_index(footer: &Footer, index: &[u8], pack_len: u64) -> Result<Vec<Entry>, PackError> {
    let range = footer.index_range(pack_len)?;
    if index.len() as u64 != range.end - range.start {
        return Err(PackError::IndexOutside {
            index_len: footer.index_len,
            count: footer.count,
        });
    }
    if blake3::hash(index).as_bytes() != &footer.index_hash {
        return Err(PackError::IndexHash);
    }
    let mut entries = Vec::with_capacity(footer.count as usize);
    let mut seen = HashSet::with_capacity(footer.count as usize);
    let mut end = 0u64;
    for (at, raw) in index.chunks_exact(ENTRY_LEN).enumerate() {
        let e = Entry::read(raw);
        if e.offset != end {
            return Err(PackError::Misplaced { at });
        }
        if !seen.insert(e.id) {
            return Err(PackError::Duplicate { at });
        }
        end = e.range().end;
        entries.push(e);
    }
    if end != range.start {
        return Err(PackError::Unaccounted {
            end,
            data: range.start,
        });
    }
    Ok(entries)
}

/// The index of a whole pack held in memory.
pub fn read_index(pack: &[u8]) -> Result<Vec<Entry>, PackError> {
    let footer = parse_footer(pack)?;
    let range = footer.index_range(pack.len() as u64)?;
    parse_index(
        &footer,
        &pack[range.start as usize..range.end as usize],
        pack.len() as u64,
    )
}

/// Checks a whole replica of pack `id`: its bytes hash to its name, its
/// index is sound, and every chunk hashes to its id. Returns the entries.
pub fn verify(pack: &[u8], id: &str) -> Result<Vec<Entry>, PackError> {
    if blake3::hash(pack).to_hex().as_str() != id {
        return Err(PackError::PackHash);
    }
    let entries = read_index(pack)?;
    for (at, e) in entries.iter().enumerate() {
        let r = e.range();
        if blake3::hash(&pack[r.start as usize..r.end as usize]).as_bytes() != &e.id {
            return Err(PackError::ChunkHash { at });
        }
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(n: u8, len: usize) -> ([u8; 32], Vec<u8>) {
        let data: Vec<u8> = (0..len).map(|i| (i as u8).wrapping_mul(n) ^ n).collect();
        (*blake3::hash(&data).as_bytes(), data)
    }

    fn sample() -> (Sealed, Vec<Vec<u8>>) {
        let mut b = Builder::new();
        let mut datas = Vec::new();
        for (n, len) in [(1u8, 4096), (2, 1), (3, 70_000), (4, 0)] {
            let (id, data) = chunk(n, len);
            b.push(id, &data).unwrap();
            datas.push(data);
        }
        (b.seal(), datas)
    }

    #[test]
    fn a_sealed_pack_reads_back_and_verifies() {
        let (p, datas) = sample();
        let entries = verify(&p.bytes, &p.id).unwrap();
        assert_eq!(entries, p.entries);
        for (e, d) in entries.iter().zip(&datas) {
            let r = e.range();
            assert_eq!(&p.bytes[r.start as usize..r.end as usize], d.as_slice());
            assert_eq!(e.id_hex(), coffer_proto::chunking::chunk_id(d));
        }
        // The footer alone says where the index is: two ranged reads.
        let footer = parse_footer(&p.bytes[p.bytes.len() - FOOTER_LEN..]).unwrap();
        let r = footer.index_range(p.bytes.len() as u64).unwrap();
        let index = &p.bytes[r.start as usize..r.end as usize];
        assert_eq!(
            parse_index(&footer, index, p.bytes.len() as u64).unwrap(),
            entries
        );
    }

    #[test]
    fn a_chunk_pushed_twice_is_stored_once() {
        let mut b = Builder::new();
        let (id, data) = chunk(7, 1000);
        let first = b.push(id, &data).unwrap();
        let again = b.push(id, &data).unwrap();
        assert_eq!(first, again);
        assert_eq!((b.count(), b.data_len()), (1, 1000));
    }

    #[test]
    fn an_empty_pack_is_well_formed() {
        let p = Builder::new().seal();
        assert_eq!(p.bytes.len(), FOOTER_LEN);
        assert_eq!(verify(&p.bytes, &p.id).unwrap(), vec![]);
    }

    #[test]
    fn damage_anywhere_is_found() {
        let (p, _) = sample();
        let len = p.bytes.len();
        let flip = |at: usize| {
            let mut b = p.bytes.to_vec();
            b[at] ^= 0x40;
            b
        };
        // A chunk's byte: the pack's name no longer matches, and the
        // chunk no longer matches its id.
        let bad = flip(10);
        assert_eq!(verify(&bad, &p.id), Err(PackError::PackHash));
        let renamed = blake3::hash(&bad).to_hex().to_string();
        assert_eq!(verify(&bad, &renamed), Err(PackError::ChunkHash { at: 0 }));
        // The index, the footer's hash, its magic.
        let index_at = len - FOOTER_LEN - 4 * ENTRY_LEN + 33;
        assert_eq!(read_index(&flip(index_at)), Err(PackError::IndexHash));
        assert_eq!(read_index(&flip(len - 20)), Err(PackError::IndexHash));
        assert_eq!(read_index(&flip(len - 1)), Err(PackError::BadMagic));
        // Counts that do not fit.
        let mut b = p.bytes.to_vec();
        b[len - FOOTER_LEN + 4] = 200;
        assert!(matches!(
            read_index(&b),
            Err(PackError::IndexOutside { .. })
        ));
        // Cut short.
        assert!(matches!(
            read_index(&p.bytes[..FOOTER_LEN - 1]),
            Err(PackError::TooShort { .. })
        ));
        assert!(read_index(&p.bytes[..len - 1]).is_err());
    }

    #[test]
    fn an_index_must_cover_the_chunks_exactly_and_once() {
        // Indexes written by hand, each sealed with a correct hash, so
        // only the layout rule can refuse them.
        let pack = |entries: &[Entry], data_len: usize| {
            let mut bytes = vec![0u8; data_len];
            let mut index = Vec::new();
            for e in entries {
                e.write(&mut index);
            }
            bytes.extend_from_slice(&index);
            bytes.extend_from_slice(&(index.len() as u32).to_le_bytes());
            bytes.extend_from_slice(&(entries.len() as u32).to_le_bytes());
            bytes.extend_from_slice(blake3::hash(&index).as_bytes());
            bytes.extend_from_slice(MAGIC);
            bytes
        };
        let e = |n: u8, offset: u64, len: u32| Entry {
            id: [n; 32],
            offset,
            len,
        };
        assert_eq!(
            read_index(&pack(&[e(1, 0, 10), e(2, 10, 5)], 15))
                .unwrap()
                .len(),
            2
        );
        assert_eq!(
            read_index(&pack(&[e(1, 0, 10), e(2, 12, 3)], 15)),
            Err(PackError::Misplaced { at: 1 })
        );
        assert_eq!(
            read_index(&pack(&[e(1, 0, 10), e(1, 10, 5)], 15)),
            Err(PackError::Duplicate { at: 1 })
        );
        assert_eq!(
            read_index(&pack(&[e(1, 0, 10)], 15)),
            Err(PackError::Unaccounted { end: 10, data: 15 })
        );
        assert_eq!(
            read_index(&pack(&[e(1, 0, 20)], 15)),
            Err(PackError::Unaccounted { end: 20, data: 15 })
        );
    }
}
