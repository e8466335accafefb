//! The embedded web app's assets as the server sends them: each with an
//! ETag (a hash of its bytes) and the brotli and gzip forms tools/web-build
//! made beside it (`NAME.br`, `NAME.gz`), so even the first request after a
//! start gets them and the server never compresses at run time.

use std::sync::OnceLock;

/// One embedded asset: its bytes, its compressed forms, its validator.
pub struct Asset {
    pub name: &'static str,
    pub bytes: &'static [u8],
    /// `"<16 hex of BLAKE3>"`: the strong validator of the plain bytes.
    pub etag: String,
    pub br: Option<&'static [u8]>,
    pub gzip: Option<&'static [u8]>,
}

impl Asset {
    /// The form to send for `coding`, if this asset has one.
    pub fn form(&self, coding: Coding) -> Option<&'static [u8]> {
        match coding {
            Coding::Brotli => self.br,
            Coding::Gzip => self.gzip,
            Coding::Identity => Some(self.bytes),
        }
    }

    /// Whether what is sent depends on `Accept-Encoding`.
    pub fn varies(&self) -> bool {
        self.br.is_some() || self.gzip.is_some()
    }
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

/// Every embedded asset with its forms and ETag, computed on first use.
pub fn assets(embedded: &'static [(&'static str, &'static [u8])]) -> &'static [Asset] {
    static ASSETS: OnceLock<Vec<Asset>> = OnceLock::new();
    ASSETS.get_or_init(|| collect(embedded))
}

/// The assets of `embedded`, each paired with its `.br` and `.gz` forms,
/// which are not assets of their own.
fn collect(embedded: &'static [(&'static str, &'static [u8])]) -> Vec<Asset> {
    let form = |name: &str, suffix: &str| {
        embedded
            .iter()
            .find(|(n, _)| n.strip_suffix(suffix) == Some(name))
            .map(|&(_, bytes)| bytes)
    };
    embedded
        .iter()
        .filter(|(name, _)| !name.ends_with(".br") && !name.ends_with(".gz"))
        .map(|&(name, bytes)| Asset {
            name,
            bytes,
            etag: format!("\"{}\"", &blake3::hash(bytes).to_hex()[..16]),
            br: form(name, ".br"),
            gzip: form(name, ".gz"),
        })
        .collect()
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
    fn compressed_forms_go_with_their_asset_and_are_no_assets_themselves() {
        static FILES: &[(&str, &[u8])] = &[
            ("app.js", b"plain"),
            ("app.js.br", b"B"),
            ("app.js.gz", b"G"),
            ("index.html", b"<html>"),
            ("index.html.gz", b"g"),
            ("logo.png", b"P"),
        ];
        let all = collect(FILES);
        let names: Vec<&str> = all.iter().map(|a| a.name).collect();
        assert_eq!(names, ["app.js", "index.html", "logo.png"]);
        assert_eq!(all[0].form(Coding::Brotli), Some(&b"B"[..]));
        assert_eq!(all[0].form(Coding::Gzip), Some(&b"G"[..]));
        assert_eq!(all[0].form(Coding::Identity), Some(&b"plain"[..]));
        assert_eq!(all[1].form(Coding::Brotli), None);
        assert!(all[1].varies());
        assert!(!all[2].varies());
        assert_ne!(all[0].etag, all[1].etag);
    }
}
