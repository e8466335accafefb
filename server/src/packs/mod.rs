//! Packs: small chunks stored together in shared objects, so ten
//! thousand small files are a few objects per node, not ten thousand.
//!
//! - [`format`]: a pack's bytes (chunks, their index, a footer), built,
//!   read back and verified.
//! - [`ranges`]: which ranged GETs fetch a set of packed chunks.
//! - [`filler`]: the server's open pack, which uploads' small chunks
//!   fill, sealed, written and recorded.
//! - [`repack`]: packs mostly emptied by deletions, merged into new ones.
//! - [`reindex`]: where packed chunks are, rebuilt from the packs' own
//!   indexes on the nodes.
//!
//! A pack is named by the BLAKE3 of its bytes, so to the cluster it is
//! one more content-addressed chunk: it lives under `chunk_key` on the
//! nodes its name places it on, and replication, repair, scrub,
//! anti-entropy and recovery treat it like any chunk, verifying it by
//! its name. What is new is above them: a packed chunk's row names its
//! pack and offset, a pack stays while a live chunk names it, and reads
//! of a packed chunk are ranged. The rules (docs/decisions.md, "Packs"):
//! a chunk row names only a pack already durable on W nodes; a pack's
//! trailing index alone can rebuild its chunks' rows; a chunk of at
//! least [`PACK_BELOW`] bytes stays an object of its own.

pub mod filler;
pub mod format;
pub mod ranges;
pub mod reindex;
pub mod repack;

/// Chunks smaller than this go into packs: every chunk of a file below
/// FastCDC's minimum, and the small tail of a larger one.
pub const PACK_BELOW: usize = coffer_proto::chunking::MIN_CHUNK;

/// A pack is sealed once its chunks reach this many bytes.
pub const TARGET_PACK: u64 = 16 * 1024 * 1024;
