//! The embedded web app's assets as the server sends them: each with an
//! ETag (a hash of its bytes) and, for the compressible ones, brotli and
//! gzip forms made once per process in the background, so no request
//! waits for them. Until they are ready, assets go out uncompressed.

use std::sync::OnceLock;

/// One embedded asset: its bytes, and what is derived from them.
pub struct Asset {
    pub name: &'static str,
    pub bytes: &'static [u8],
    /// `"<16 hex of BLAKE3>"`: the strong validator of the plain bytes.
    pub etag: String,
}

/// The compressed forms of one asset, where compressing pays.
#[derive(Default)]
pub struct Packed {
    pub br: Option<Vec<u8>>,
    pub gzip: Option<Vec<u8>>,
}

/// A content coding the server can send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coding {
    Brotli,
    Gzip,
    Identity,
}

impl Coding {
    /// The `Content-Encoding` value, and the suffix its ETag carries.
    pub fn token(self) -> Option<&'static str> {
        match self {
            Coding::Brotli => Some("br"),
            Coding::Gzip => Some("gzip"),
            Coding::Identity => None,
        }
    }
}

/// Whether an asset of this name is worth compressing (images are
/// compressed already).
pub fn compressible(name: &str) -> bool {
    matches!(
        name.rsplit_once('.').map(|(_, ext)| ext),
        Some("html" | "js" | "wasm" | "css" | "svg" | "json" | "txt" | "map")
    )
}

/// Every embedded asset with its ETag, computed on first use.
pub fn assets(embedded: &'static [(&'static str, &'static [u8])]) -> &'static [Asset] {
    static ASSETS: OnceLock<Vec<Asset>> = OnceLock::new();
    ASSETS.get_or_init(|| {
        embedded
            .iter()
            .map(|&(name, bytes)| Asset {
                name,
                bytes,
                etag: format!("\"{}\"", &blake3::hash(bytes).to_hex()[..16]),
            })
            .collect()
    })
}

static PACKED: OnceLock<Vec<Packed>> = OnceLock::new();

/// Starts compressing `assets` on a thread of its own, once per process.
pub fn pack_in_background(assets: &'static [Asset]) {
    static STARTED: std::sync::Once = std::sync::Once::new();
    STARTED.call_once(|| {
        std::thread::spawn(move || {
            let packed = assets.iter().map(pack).collect();
            let _ = PACKED.set(packed);
        });
    });
}

/// The compressed forms of asset `i`, once they are ready.
pub fn packed(i: usize) -> Option<&'static Packed> {
    PACKED.get().and_then(|p| p.get(i))
}

/// Brotli at its best in release builds (once per process, a few seconds
/// for the module); lighter in debug builds, where it would take minutes.
const BROTLI_QUALITY: u32 = if cfg!(debug_assertions) { 5 } else { 11 };

fn pack(a: &Asset) -> Packed {
    use std::io::Write;
    // The page itself is under 1 KiB and still halves; below a few hundred
    // bytes the headers outweigh what compression saves.
    if !compressible(a.name) || a.bytes.len() < 256 {
        return Packed::default();
    }
    let mut br = Vec::new();
    {
        let mut w = brotli::CompressorWriter::new(&mut br, 64 * 1024, BROTLI_QUALITY, 22);
        if w.write_all(a.bytes).is_err() {
            return Packed::default();
        }
    }
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    let gzip = gz.write_all(a.bytes).ok().and_then(|_| gz.finish().ok());
    // A form no smaller than the original is not worth sending.
    let smaller = |v: Vec<u8>| (v.len() < a.bytes.len()).then_some(v);
    Packed {
        br: smaller(br),
        gzip: gzip.and_then(smaller),
    }
}

/// The codings `accept` (an `Accept-Encoding` value) allows, by the
/// server's preference: brotli, then gzip, then none. A coding with
/// `q=0` is refused; `*` stands for any not named; identity is always
/// acceptable unless refused outright, which this server ignores (it
/// always can send the plain bytes).
pub fn acceptable(accept: Option<&str>) -> Vec<Coding> {
    let mut named: Vec<(String, bool)> = Vec::new();
    for part in accept.unwrap_or("").split(',') {
        let mut fields = part.split(';');
        let token = fields.next().unwrap_or("").trim().to_ascii_lowercase();
        if token.is_empty() {
            continue;
        }
        let refused = fields.any(|f| {
            let f = f.trim();
            f.strip_prefix("q=")
                .or_else(|| f.strip_prefix("Q="))
                .and_then(|q| q.trim().parse::<f32>().ok())
                .is_some_and(|q| q <= 0.0)
        });
        named.push((token, !refused));
    }
    let allows = |t: &str| match named.iter().find(|(n, _)| n == t) {
        Some((_, ok)) => *ok,
        None => named.iter().any(|(n, ok)| n == "*" && *ok),
    };
    let mut out = Vec::new();
    if allows("br") {
        out.push(Coding::Brotli);
    }
    if allows("gzip") || allows("x-gzip") {
        out.push(Coding::Gzip);
    }
    out.push(Coding::Identity);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codings_follow_accept_encoding_and_never_send_what_is_refused() {
        use Coding::*;
        assert_eq!(acceptable(None), [Identity]);
        assert_eq!(acceptable(Some("")), [Identity]);
        assert_eq!(
            acceptable(Some("gzip, deflate, br, zstd")),
            [Brotli, Gzip, Identity]
        );
        assert_eq!(acceptable(Some("gzip")), [Gzip, Identity]);
        assert_eq!(acceptable(Some("br;q=0, gzip;q=0.5")), [Gzip, Identity]);
        assert_eq!(acceptable(Some("*")), [Brotli, Gzip, Identity]);
        assert_eq!(acceptable(Some("*;q=0, identity")), [Identity]);
        assert_eq!(acceptable(Some("*, br;q=0")), [Gzip, Identity]);
        assert_eq!(acceptable(Some("BR")), [Brotli, Identity]);
    }

    #[test]
    fn packed_forms_decode_to_the_asset() {
        use std::io::Read;
        let text: Vec<u8> = (0..100_000u32)
            .flat_map(|i| format!("line {}\n", i % 97).into_bytes())
            .collect();
        let text: &'static [u8] = Box::leak(text.into_boxed_slice());
        let a = Asset {
            name: "app.js",
            bytes: text,
            etag: String::new(),
        };
        let p = pack(&a);
        let br = p.br.expect("brotli pays on text");
        let mut back = Vec::new();
        brotli::Decompressor::new(&br[..], 4096)
            .read_to_end(&mut back)
            .unwrap();
        assert_eq!(back, text);
        let gz = p.gzip.expect("gzip pays on text");
        let mut back = Vec::new();
        flate2::read::GzDecoder::new(&gz[..])
            .read_to_end(&mut back)
            .unwrap();
        assert_eq!(back, text);
        let png = Asset {
            name: "logo.png",
            bytes: text,
            etag: String::new(),
        };
        assert!(pack(&png).br.is_none(), "images are not compressed again");
    }
}
