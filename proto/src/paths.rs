//! File name rules: what a valid Coffer path is and its normal form.
//!
//! A path is UTF-8 text of `/`-separated segments. Its normal form has no
//! leading, trailing or repeated `/`. Rejected: an empty path, a `.` or `..`
//! segment, NUL or any other control character, and more than
//! [`MAX_PATH_BYTES`] bytes.

use thiserror::Error;

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
}

/// Validates `raw` and returns its normal form.
pub fn normalize(raw: &str) -> Result<String, PathError> {
    if raw.len() > MAX_PATH_BYTES {
        return Err(PathError::TooLong(raw.len()));
    }
    if let Some(c) = raw.chars().find(|c| c.is_control()) {
        return Err(PathError::ControlCharacter(c as u32));
    }
    let mut out = String::with_capacity(raw.len());
    for segment in raw.split('/').filter(|s| !s.is_empty()) {
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
