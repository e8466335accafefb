//! Zip archives written as a stream: stored (uncompressed) entries whose
//! sizes are known before their bytes, each followed by a data descriptor
//! with its CRC-32, and zip64 records wherever a size, an offset or the
//! count passes what 32 (or 16) bits hold. Memory is the central
//! directory (a few dozen bytes an entry), never the content.
//!
//! Why not a crate: async_zip 0.0.18's stream writer puts 32-bit
//! `0xFFFFFFFF` sizes in the data descriptors of zip64 entries, which
//! readers that trust the descriptor take literally; and the `zip` crate
//! wants a seekable output. Our sizes are known up front (the metadata
//! has them), which makes the exact layout short. APPNOTE 6.3.10 is the
//! reference; sections are named beside the records.

use bytes::{BufMut, Bytes, BytesMut};
use futures::{Stream, StreamExt};

/// Past this, a size or offset goes in a zip64 field.
const MAX32: u64 = 0xFFFF_FFFF;
/// Past this, the entry count goes in the zip64 end record.
const MAX16: u64 = 0xFFFF;
/// General purpose flags: sizes and CRC follow the data (bit 3); the
/// name is UTF-8 (bit 11).
const FLAGS: u16 = 0x0008 | 0x0800;
/// Made by: Unix (3), version 4.5.
const MADE_BY: u16 = (3 << 8) | 45;

/// One entry: a file (its bytes follow) or a folder (its name ends in
/// `/`, no bytes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The path inside the archive, `/`-separated, relative.
    pub name: String,
    /// Exactly the bytes that will follow; 0 for a folder.
    pub size: u64,
    /// Modification time, seconds since the Unix epoch (UTC).
    pub mtime: i64,
}

impl Entry {
    fn is_folder(&self) -> bool {
        self.name.ends_with('/')
    }

    /// Whether this entry's sizes need zip64 fields (decided before its
    /// bytes, from the size it will have).
    fn zip64(&self) -> bool {
        self.size >= MAX32
    }
}

/// What the central directory keeps of a written entry.
struct Written {
    entry: Entry,
    crc: u32,
    offset: u64,
}

/// The archive's layout: headers before each entry, a descriptor after
/// it, the central directory at the end. It writes no content itself;
/// [`archive`] interleaves the content.
#[derive(Default)]
pub struct Writer {
    offset: u64,
    written: Vec<Written>,
    open: Option<(Entry, u64)>,
}

/// Why an archive could not be written.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ZipError {
    #[error("{name} gave {got} bytes where {expected} were promised")]
    WrongSize {
        name: String,
        expected: u64,
        got: u64,
    },
    #[error("the name {0:?} cannot be in an archive")]
    BadName(String),
}

impl Writer {
    pub fn new() -> Self {
        Self::default()
    }

    /// The local file header of `entry` (4.3.7), whose bytes come next.
    pub fn begin(&mut self, entry: Entry) -> Result<Bytes, ZipError> {
        let name = entry.name.as_bytes();
        if name.is_empty() || name.len() > u16::MAX as usize - 64 || entry.name.starts_with('/') {
            return Err(ZipError::BadName(entry.name));
        }
        let zip64 = entry.zip64();
        let mut b = BytesMut::with_capacity(30 + name.len() + 29);
        b.put_u32_le(0x0403_4b50);
        b.put_u16_le(if zip64 { 45 } else { 20 });
        b.put_u16_le(FLAGS);
        b.put_u16_le(0); // stored
        let (time, date) = dos_time(entry.mtime);
        b.put_u16_le(time);
        b.put_u16_le(date);
        b.put_u32_le(0); // CRC: in the descriptor
        let sizes = if zip64 { MAX32 as u32 } else { 0 };
        b.put_u32_le(sizes);
        b.put_u32_le(sizes);
        b.put_u16_le(name.len() as u16);
        let mut extra = BytesMut::new();
        if zip64 {
            // 4.5.3: the local header carries both sizes; they are in the
            // descriptor, so zero here.
            extra.put_u16_le(0x0001);
            extra.put_u16_le(16);
            extra.put_u64_le(0);
            extra.put_u64_le(0);
        }
        put_unix_time(&mut extra, entry.mtime);
        b.put_u16_le(extra.len() as u16);
        b.put_slice(name);
        b.put_slice(&extra);
        let start = self.offset;
        self.offset += b.len() as u64;
        self.open = Some((entry, start));
        Ok(b.freeze())
    }

    /// The data descriptor (4.3.9) of the entry begun last, once exactly
    /// its `size` bytes, whose CRC-32 is `crc`, have followed its header.
    pub fn end(&mut self, crc: u32, got: u64) -> Result<Bytes, ZipError> {
        let (entry, offset) = self.open.take().expect("Writer::end follows Writer::begin");
        if got != entry.size {
            return Err(ZipError::WrongSize {
                name: entry.name,
                expected: entry.size,
                got,
            });
        }
        self.offset += entry.size;
        let mut b = BytesMut::with_capacity(24);
        b.put_u32_le(0x0807_4b50);
        b.put_u32_le(crc);
        if entry.zip64() {
            b.put_u64_le(entry.size);
            b.put_u64_le(entry.size);
        } else {
            b.put_u32_le(entry.size as u32);
            b.put_u32_le(entry.size as u32);
        }
        self.offset += b.len() as u64;
        self.written.push(Written { entry, crc, offset });
        Ok(b.freeze())
    }

    /// The central directory (4.3.12) and its end records (4.3.14-16).
    pub fn finish(self) -> Bytes {
        let mut b = BytesMut::new();
        let cd_start = self.offset;
        for w in &self.written {
            let name = w.entry.name.as_bytes();
            let big_size = w.entry.size >= MAX32;
            let big_offset = w.offset >= MAX32;
            let mut extra = BytesMut::new();
            if big_size || big_offset {
                // 4.5.3: only the fields whose 32-bit slot overflowed, in
                // this order.
                extra.put_u16_le(0x0001);
                extra.put_u16_le(8 * (2 * big_size as u16 + big_offset as u16));
                if big_size {
                    extra.put_u64_le(w.entry.size);
                    extra.put_u64_le(w.entry.size);
                }
                if big_offset {
                    extra.put_u64_le(w.offset);
                }
            }
            put_unix_time(&mut extra, w.entry.mtime);
            b.put_u32_le(0x0201_4b50);
            b.put_u16_le(MADE_BY);
            b.put_u16_le(if w.entry.zip64() { 45 } else { 20 });
            b.put_u16_le(FLAGS);
            b.put_u16_le(0);
            let (time, date) = dos_time(w.entry.mtime);
            b.put_u16_le(time);
            b.put_u16_le(date);
            b.put_u32_le(w.crc);
            let size32 = w.entry.size.min(MAX32) as u32;
            b.put_u32_le(size32);
            b.put_u32_le(size32);
            b.put_u16_le(name.len() as u16);
            b.put_u16_le(extra.len() as u16);
            b.put_u16_le(0); // comment
            b.put_u16_le(0); // disk
            b.put_u16_le(0); // internal attributes
            let (mode, dos) = if w.entry.is_folder() {
                (0o040755u32, 0x10)
            } else {
                (0o100644u32, 0)
            };
            b.put_u32_le((mode << 16) | dos);
            b.put_u32_le(w.offset.min(MAX32) as u32);
            b.put_slice(name);
            b.put_slice(&extra);
        }
        let cd_size = b.len() as u64;
        let count = self.written.len() as u64;
        if count >= MAX16 || cd_size >= MAX32 || cd_start >= MAX32 {
            let record = cd_start + cd_size;
            // 4.3.14: the zip64 end of central directory record.
            b.put_u32_le(0x0606_4b50);
            b.put_u64_le(44);
            b.put_u16_le(MADE_BY);
            b.put_u16_le(45);
            b.put_u32_le(0);
            b.put_u32_le(0);
            b.put_u64_le(count);
            b.put_u64_le(count);
            b.put_u64_le(cd_size);
            b.put_u64_le(cd_start);
            // 4.3.15: its locator.
            b.put_u32_le(0x0706_4b50);
            b.put_u32_le(0);
            b.put_u64_le(record);
            b.put_u32_le(1);
        }
        // 4.3.16: the end of central directory record.
        b.put_u32_le(0x0605_4b50);
        b.put_u16_le(0);
        b.put_u16_le(0);
        b.put_u16_le(count.min(MAX16) as u16);
        b.put_u16_le(count.min(MAX16) as u16);
        b.put_u32_le(cd_size.min(MAX32) as u32);
        b.put_u32_le(cd_start.min(MAX32) as u32);
        b.put_u16_le(0);
        b.freeze()
    }
}

/// The extended timestamp field (0x5455): the modification time in UTC,
/// which the DOS time (local, two-second steps) cannot say.
fn put_unix_time(extra: &mut BytesMut, mtime: i64) {
    extra.put_u16_le(0x5455);
    extra.put_u16_le(5);
    extra.put_u8(1);
    extra.put_i32_le(mtime.clamp(i32::MIN as i64, i32::MAX as i64) as i32);
}

/// MS-DOS time and date of `mtime` (taken as UTC), clamped to the years
/// DOS can say (1980-2107).
fn dos_time(mtime: i64) -> (u16, u16) {
    let t = time::OffsetDateTime::from_unix_timestamp(mtime)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    if t.year() < 1980 {
        return (0, (1 << 5) | 1);
    }
    let year = (t.year() - 1980).min(127) as u16;
    let date = (year << 9) | ((t.month() as u16) << 5) | t.day() as u16;
    let time = ((t.hour() as u16) << 11) | ((t.minute() as u16) << 5) | (t.second() as u16 / 2);
    (time, date)
}

/// One entry and its content, for [`archive`].
pub struct Source<E> {
    pub entry: Entry,
    pub body: futures::stream::BoxStream<'static, Result<Bytes, E>>,
}

/// The archive of `sources`, streamed: each entry's content passes
/// through as it comes, with a CRC-32 taken on the way. The stream ends
/// with an error (and no central directory) if a source fails or gives
/// another number of bytes than its entry says; a client then has a
/// short, invalid file rather than a wrong one.
pub fn archive<E, S>(sources: S) -> impl Stream<Item = Result<Bytes, E>> + Send
where
    E: From<ZipError> + Send + 'static,
    S: Stream<Item = Result<Source<E>, E>> + Send + Unpin + 'static,
{
    /// The entry being streamed: its content, the CRC so far, its bytes.
    type Open<E> = (
        futures::stream::BoxStream<'static, Result<Bytes, E>>,
        crc32fast::Hasher,
        u64,
    );
    struct State<S, E> {
        sources: S,
        writer: Option<Writer>,
        body: Option<Open<E>>,
    }
    let state = State {
        sources,
        writer: Some(Writer::new()),
        body: None,
    };
    // Each step yields one piece: content, a header, a descriptor, the
    // directory, or the error that ends the archive.
    futures::stream::unfold(state, |mut s| async move {
        let writer = s.writer.as_mut()?;
        let out = if let Some((body, crc, got)) = s.body.as_mut() {
            match body.next().await {
                Some(Ok(piece)) => {
                    crc.update(&piece);
                    *got += piece.len() as u64;
                    Ok(piece)
                }
                Some(Err(e)) => Err(e),
                None => {
                    let (_, crc, got) = s.body.take().expect("just matched");
                    writer.end(crc.finalize(), got).map_err(E::from)
                }
            }
        } else {
            match s.sources.next().await {
                Some(Ok(source)) => {
                    let header = writer.begin(source.entry).map_err(E::from);
                    if header.is_ok() {
                        s.body = Some((source.body, crc32fast::Hasher::new(), 0));
                    }
                    header
                }
                Some(Err(e)) => Err(e),
                None => Ok(s.writer.take().expect("checked above").finish()),
            }
        };
        if out.is_err() {
            s.writer = None;
        }
        Some((out, s))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, size: u64) -> Entry {
        Entry {
            name: name.into(),
            size,
            mtime: 1_700_000_000,
        }
    }

    #[test]
    fn dos_times_are_in_two_second_steps_and_clamped_to_1980() {
        // 2023-11-14 22:13:20 UTC
        let (time, date) = dos_time(1_700_000_000);
        assert_eq!(date, ((2023 - 1980) << 9) | (11 << 5) | 14);
        assert_eq!(time, (22 << 11) | (13 << 5) | 10);
        assert_eq!(dos_time(0), (0, (1 << 5) | 1));
    }

    #[test]
    fn a_short_body_is_an_error_not_a_descriptor() {
        let mut w = Writer::new();
        w.begin(entry("a.txt", 5)).unwrap();
        assert_eq!(
            w.end(0, 4),
            Err(ZipError::WrongSize {
                name: "a.txt".into(),
                expected: 5,
                got: 4
            })
        );
    }

    #[test]
    fn absolute_and_empty_names_are_refused() {
        let mut w = Writer::new();
        assert!(w.begin(entry("/etc/passwd", 1)).is_err());
        assert!(w.begin(entry("", 1)).is_err());
    }

    #[test]
    fn big_entries_and_offsets_get_zip64_fields_and_small_ones_do_not() {
        let mut w = Writer::new();
        let small = w.begin(entry("small", 3)).unwrap();
        // Local header 30 + name 5 + timestamp field 9: no zip64 field.
        assert_eq!(small.len(), 30 + 5 + 9);
        assert_eq!(w.end(7, 3).unwrap().len(), 16);
        let big = w.begin(entry("big", MAX32 + 1)).unwrap();
        assert_eq!(big.len(), 30 + 3 + 20 + 9);
        assert_eq!(&big[18..26], &[0xFF; 8]);
        assert_eq!(w.end(9, MAX32 + 1).unwrap().len(), 24);
        let after = w.begin(entry("after", 1)).unwrap();
        assert_eq!(after.len(), 30 + 5 + 9);
        w.end(1, 1).unwrap();
        let end = w.finish();
        // The zip64 end record and locator come before the classic one.
        let eocd = &end[end.len() - 22..];
        assert_eq!(&eocd[..4], &0x0605_4b50u32.to_le_bytes());
        assert_eq!(&eocd[16..20], &[0xFF; 4], "the directory starts past 4 GiB");
        let locator = &end[end.len() - 42..end.len() - 22];
        assert_eq!(&locator[..4], &0x0706_4b50u32.to_le_bytes());
    }

    #[tokio::test]
    async fn the_stream_interleaves_headers_content_and_descriptors() {
        let sources = vec![
            Ok::<_, ZipError>(Source {
                entry: entry("dir/", 0),
                body: futures::stream::empty().boxed(),
            }),
            Ok(Source {
                entry: entry("dir/a.txt", 5),
                body: futures::stream::iter(vec![
                    Ok(Bytes::from_static(b"he")),
                    Ok(Bytes::from_static(b"llo")),
                ])
                .boxed(),
            }),
        ];
        let out: Vec<_> = archive(futures::stream::iter(sources)).collect().await;
        let bytes: Vec<u8> = out.into_iter().flat_map(|r| r.unwrap()).collect();
        let at = bytes
            .windows(5)
            .position(|w| w == b"hello")
            .expect("content is stored as is");
        let descriptor = &bytes[at + 5..at + 21];
        assert_eq!(&descriptor[..4], &0x0807_4b50u32.to_le_bytes());
        assert_eq!(&descriptor[4..8], &crc32fast::hash(b"hello").to_le_bytes());
        assert_eq!(
            &bytes[bytes.len() - 22..bytes.len() - 18],
            &0x0605_4b50u32.to_le_bytes()
        );
    }

    #[tokio::test]
    async fn a_source_that_lies_about_its_size_ends_the_stream_without_a_directory() {
        let sources = vec![Ok::<_, ZipError>(Source {
            entry: entry("a", 10),
            body: futures::stream::iter(vec![Ok(Bytes::from_static(b"short"))]).boxed(),
        })];
        let out: Vec<_> = archive(futures::stream::iter(sources)).collect().await;
        assert!(matches!(out.last(), Some(Err(ZipError::WrongSize { .. }))));
        assert_eq!(out.iter().filter(|r| r.is_err()).count(), 1);
    }
}
