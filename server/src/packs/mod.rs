//! Packs: small chunks stored together in shared objects, so ten
//! thousand small files are a few objects per node, not ten thousand.
//!
//! - [`format`]: a pack's bytes (chunks, their index, a footer), built,
//!   read back and verified.
//! - [`ranges`]: which ranged GETs fetch a set of packed chunks.
//!
//! A pack is named by the BLAKE3 of its bytes and kept under
//! [`pack_key`] on the nodes its name places it on, like a chunk. The
//! rules the rest of the server keeps (docs/decisions.md, "Packs"): an
//! index row names only a pack durable on W nodes; a pack's trailing
//! index alone can rebuild its rows; a chunk of at least [`PACK_BELOW`]
//! bytes stays an object of its own.

pub mod format;
pub mod ranges;

/// Chunks smaller than this go into packs: every chunk of a file below
/// FastCDC's minimum, and the small tail of a larger one.
pub const PACK_BELOW: usize = coffer_proto::chunking::MIN_CHUNK;

/// A pack is sealed once its chunks reach this many bytes.
pub const TARGET_PACK: u64 = 16 * 1024 * 1024;

/// The object key of pack `id` (outside `chunks/`, so a listing of
/// chunks never meets one).
pub fn pack_key(id: &str) -> String {
    format!("coffer/packs/{}/{}", &id[..2.min(id.len())], id)
}

/// The pack id in a key made by [`pack_key`], if it is one.
pub fn pack_id_of_key(key: &str) -> Option<&str> {
    let (prefix, id) = key.strip_prefix("coffer/packs/")?.split_once('/')?;
    (coffer_proto::chunking::is_chunk_id(id) && id.starts_with(prefix) && prefix.len() == 2)
        .then_some(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pack_keys_round_trip_and_nothing_else_parses() {
        let id = format::Builder::new().seal().id;
        assert_eq!(pack_id_of_key(&pack_key(&id)), Some(id.as_str()));
        for bad in [
            "coffer/packs/ab".to_string(),
            format!("coffer/packs/zz/{id}"),
            format!("chunks/{}/{id}", &id[..2]),
            format!("coffer/packs/{}/{}x", &id[..2], &id[..63]),
        ] {
            assert_eq!(pack_id_of_key(&bad), None, "{bad}");
        }
    }
}
