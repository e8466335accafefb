//! File name rules: what a valid Coffer path is and its normal form.
//!
//! A path is UTF-8 text of `/`-separated segments. Its normal form is
//! Unicode NFC (so `é` typed on macOS and on Windows is one name) with no
//! leading, trailing or repeated `/`. Rejected: an empty path, a `.` or `..`
//! segment, NUL or any other control character, invisible format
//! characters (bidi overrides that make `exe.txt` look like `txt.exe`,
//! zero-width spaces that make two names look alike), line and paragraph
//! separators, and more than [`MAX_PATH_BYTES`] bytes.

use thiserror::Error;
use unicode_normalization::UnicodeNormalization;
use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};

/// The longest path accepted, in bytes of UTF-8.
pub const MAX_PATH_BYTES: usize = 1024;

/// Why a path was rejected.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PathError {
    #[error("file name is empty")]
    Empty,
    #[error("file name is {0} bytes long; the limit is {MAX_PATH_BYTES}")]
    TooLong(usize),
    #[error("file name contains a control character (U+{0:04X})")]
    ControlCharacter(u32),
    #[error("file name contains a `.` or `..` segment")]
    DotSegment,
    #[error("file name contains an invisible format or separator character (U+{0:04X})")]
    InvisibleCharacter(u32),
}

/// Whether `c` may not appear in a name: a control character, a format
/// character (Cf: bidi controls, zero-width characters, the BOM…), or a
/// line or paragraph separator.
fn refused(c: char) -> Option<PathError> {
    if c.is_control() {
        return Some(PathError::ControlCharacter(c as u32));
    }
    match c.general_category() {
        GeneralCategory::Format
        | GeneralCategory::LineSeparator
        | GeneralCategory::ParagraphSeparator => Some(PathError::InvisibleCharacter(c as u32)),
        _ => None,
    }
}

/// Validates `raw` and returns its normal form.
pub fn normalize(raw: &str) -> Result<String, PathError> {
    if raw.len() > MAX_PATH_BYTES {
        return Err(PathError::TooLong(raw.len()));
    }
    if let Some(e) = raw.chars().find_map(refused) {
        return Err(e);
    }
    let nfc: String = raw.nfc().collect();
    if nfc.len() > MAX_PATH_BYTES {
        return Err(PathError::TooLong(nfc.len()));
    }
    let mut out = String::with_capacity(nfc.len());
    for segment in nfc.split('/').filter(|s| !s.is_empty()) {
        if segment == "." || segment == ".." {
            return Err(PathError::DotSegment);
        }
        if !out.is_empty() {
            out.push('/');
        }
        out.push_str(segment);
    }
    if out.is_empty() {
        return Err(PathError::Empty);
    }
    Ok(out)
}

/// Normalises a listing prefix: like [`normalize`], but empty is allowed
/// (everything) and a trailing `/` is kept (a folder).
pub fn normalize_prefix(raw: &str) -> Result<String, PathError> {
    if raw.trim_matches('/').is_empty() {
        return Ok(String::new());
    }
    let mut p = normalize(raw)?;
    if raw.ends_with('/') {
        p.push('/');
    }
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_form_strips_redundant_slashes() {
        assert_eq!(normalize("/a//b/c.txt/").unwrap(), "a/b/c.txt");
        assert_eq!(normalize("report.pdf").unwrap(), "report.pdf");
        assert_eq!(
            normalize("dir/ünïcode 名前.txt").unwrap(),
            "dir/ünïcode 名前.txt"
        );
    }

    #[test]
    fn hostile_names_are_rejected() {
        assert_eq!(normalize(""), Err(PathError::Empty));
        assert_eq!(normalize("///"), Err(PathError::Empty));
        assert_eq!(normalize("a/../etc/passwd"), Err(PathError::DotSegment));
        assert_eq!(normalize("./a"), Err(PathError::DotSegment));
        assert_eq!(normalize(".."), Err(PathError::DotSegment));
        assert_eq!(normalize("a\0b"), Err(PathError::ControlCharacter(0)));
        assert_eq!(normalize("a\nb"), Err(PathError::ControlCharacter(10)));
        assert_eq!(normalize("a\u{7f}"), Err(PathError::ControlCharacter(0x7f)));
        let long = "x".repeat(MAX_PATH_BYTES + 1);
        assert_eq!(
            normalize(&long),
            Err(PathError::TooLong(MAX_PATH_BYTES + 1))
        );
        assert!(normalize(&"x".repeat(MAX_PATH_BYTES)).is_ok());
    }

    /// The name rules as a table: input, then the normal form or the error.
    #[test]
    fn name_rules_table() {
        use PathError::*;
        let cases: &[(&str, Result<&str, PathError>)] = &[
            // NFC: decomposed (macOS) and precomposed (Windows) are one name.
            ("cafe\u{301}.txt", Ok("caf\u{e9}.txt")),
            ("caf\u{e9}.txt", Ok("caf\u{e9}.txt")),
            ("A\u{30a}ngstr\u{f6}m/x", Ok("\u{c5}ngstr\u{f6}m/x")),
            ("\u{212b}", Ok("\u{c5}")), // ANGSTROM SIGN -> A WITH RING
            ("한글", Ok("한글")),
            ("\u{1100}\u{1161}", Ok("\u{ac00}")), // conjoining jamo -> syllable
            ("emoji \u{1f600}.png", Ok("emoji \u{1f600}.png")),
            // Bidi overrides and isolates.
            ("invoice\u{202e}fdp.exe", Err(InvisibleCharacter(0x202e))),
            ("a\u{202a}b", Err(InvisibleCharacter(0x202a))),
            ("a\u{2066}b", Err(InvisibleCharacter(0x2066))),
            ("a\u{200f}b", Err(InvisibleCharacter(0x200f))),
            ("a\u{61c}b", Err(InvisibleCharacter(0x61c))),
            // Zero-width characters and the BOM.
            ("pass\u{200b}words.txt", Err(InvisibleCharacter(0x200b))),
            ("a\u{200d}b", Err(InvisibleCharacter(0x200d))),
            ("a\u{2060}b", Err(InvisibleCharacter(0x2060))),
            ("\u{feff}a", Err(InvisibleCharacter(0xfeff))),
            ("soft\u{ad}hyphen", Err(InvisibleCharacter(0xad))),
            ("tag\u{e0041}", Err(InvisibleCharacter(0xe0041))),
            // Line and paragraph separators, and controls.
            ("a\u{2028}b", Err(InvisibleCharacter(0x2028))),
            ("a\u{2029}b", Err(InvisibleCharacter(0x2029))),
            ("a\u{85}b", Err(ControlCharacter(0x85))),
            ("a\rb", Err(ControlCharacter(13))),
            ("a\u{1b}[31m", Err(ControlCharacter(0x1b))),
            // Still fine: ordinary spaces and punctuation.
            ("a b\u{a0}c\u{3000}d", Ok("a b\u{a0}c\u{3000}d")),
            ("x/../y", Err(DotSegment)),
        ];
        for (input, want) in cases {
            let got = normalize(input);
            assert_eq!(got.as_deref(), want.as_ref().map(|s| *s), "{input:?}");
        }
        // A name that grows past the limit in NFC is too long in NFC.
        let grows = "\u{2126}".repeat(MAX_PATH_BYTES / 3); // OHM SIGN -> OMEGA: same length
        assert!(normalize(&grows).is_ok());
    }

    #[test]
    fn dots_inside_names_are_fine() {
        assert_eq!(normalize(".hidden/..x/a.b").unwrap(), ".hidden/..x/a.b");
    }

    #[test]
    fn prefixes_keep_their_folder_slash() {
        assert_eq!(normalize_prefix("").unwrap(), "");
        assert_eq!(normalize_prefix("/").unwrap(), "");
        assert_eq!(normalize_prefix("/docs/").unwrap(), "docs/");
        assert_eq!(normalize_prefix("docs/re").unwrap(), "docs/re");
        assert!(normalize_prefix("../x").is_err());
    }
}
