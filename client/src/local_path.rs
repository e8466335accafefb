//! How a name the server lists becomes a path on this computer: the one
//! rule `coffer get`, `coffer sync` and its steps share.
//!
//! A remote name comes from the server, and so from anyone who can write
//! into the folder (the same account's other device, a stolen token, a
//! hostile server). It becomes a local path only if every segment is a
//! plain file name that every common disk can hold, on every OS: no `..`
//! or `.`, no root or drive prefix, no `\` or `:`, none of the names and
//! characters Windows cannot hold (`CON`, `NUL`, `COM1`…, `<>"|?*`, a
//! trailing dot or space, control characters), nothing over 255 bytes.
//! The same rule applies on Linux and macOS, so a folder synced there
//! behaves the same when it is later synced on Windows. A name that fails
//! is reported and skipped, as Dropbox does with names Windows cannot
//! hold: never written, and never taken as deleted.

use std::fmt;
use std::path::PathBuf;

/// Why a name cannot be a local path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unfit {
    /// Not in the normal form this client sends (the server never lists
    /// one, so it is not to be trusted).
    NotNormal,
    /// Not below the folder being fetched or synced.
    Outside,
    /// An empty segment, `.` or `..`: it would climb out of the folder.
    Climbs,
    /// A character Windows cannot hold in a name (`\` and `:` among them:
    /// a path separator and a drive or stream prefix there).
    Character(char),
    /// A device name Windows reserves (`CON`, `NUL`, `COM1`…), with or
    /// without an extension.
    Reserved(String),
    /// A segment ending in a dot or a space (Windows drops them, so two
    /// names would be one file there).
    Trailing,
    /// A segment over 255 bytes, more than common disks take.
    TooLong,
}

impl fmt::Display for Unfit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Unfit::NotNormal => write!(f, "not a valid Coffer name"),
            Unfit::Outside => write!(f, "not inside the folder"),
            Unfit::Climbs => write!(f, "it would leave the folder"),
            Unfit::Character(c) => write!(f, "Windows cannot hold {c:?} in a name"),
            Unfit::Reserved(n) => write!(f, "{n} is a device name on Windows"),
            Unfit::Trailing => write!(f, "Windows cannot hold a name ending in a dot or space"),
            Unfit::TooLong => write!(f, "a name segment over {MAX_SEGMENT} bytes"),
        }
    }
}

impl std::error::Error for Unfit {}

/// The longest segment a local path may have, in bytes.
pub const MAX_SEGMENT: usize = 255;

/// Characters Windows refuses in a name, besides control characters.
const WINDOWS_FORBIDDEN: &[char] = &['<', '>', ':', '"', '\\', '|', '?', '*'];

/// Device names Windows reserves, whatever follows a dot.
const RESERVED: &[&str] = &[
    "CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$", "COM0", "COM1", "COM2", "COM3", "COM4",
    "COM5", "COM6", "COM7", "COM8", "COM9", "COM¹", "COM²", "COM³", "LPT0", "LPT1", "LPT2", "LPT3",
    "LPT4", "LPT5", "LPT6", "LPT7", "LPT8", "LPT9", "LPT¹", "LPT²", "LPT³",
];

/// Whether `segment` can be a file or folder name on every common disk.
pub fn check_segment(segment: &str) -> Result<(), Unfit> {
    if segment.is_empty() || segment == "." || segment == ".." {
        return Err(Unfit::Climbs);
    }
    if let Some(c) = segment
        .chars()
        .find(|c| c.is_control() || WINDOWS_FORBIDDEN.contains(c) || *c == '/')
    {
        return Err(Unfit::Character(c));
    }
    if segment.len() > MAX_SEGMENT {
        return Err(Unfit::TooLong);
    }
    if segment.ends_with('.') || segment.ends_with(' ') {
        return Err(Unfit::Trailing);
    }
    // Windows reads "CON.txt" and "con .txt" as the device too.
    let stem = segment.split('.').next().unwrap_or(segment).trim_end();
    if let Some(r) = RESERVED.iter().find(|r| r.eq_ignore_ascii_case(stem)) {
        return Err(Unfit::Reserved((*r).to_string()));
    }
    Ok(())
}

/// Whether the `/`-separated relative path `rel` can be written under a
/// local folder: every segment passes [`check_segment`].
pub fn check_relative(rel: &str) -> Result<(), Unfit> {
    rel.split('/').try_for_each(check_segment)
}

/// The local path, relative to the folder it lands in, of the file the
/// server lists as `name` under the remote folder `folder` (without its
/// trailing `/`). Anything but a plain relative path of portable names,
/// strictly below `folder/`, is refused.
pub fn local_path(folder: &str, name: &str) -> Result<PathBuf, Unfit> {
    match crate::normalize_name(name) {
        Ok(n) if n == name => {}
        _ => return Err(Unfit::NotNormal),
    }
    let rel = name
        .strip_prefix(folder)
        .and_then(|r| r.strip_prefix('/'))
        .ok_or(Unfit::Outside)?;
    check_relative(rel)?;
    Ok(rel.split('/').collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_names_below_the_folder_become_relative_paths() {
        assert_eq!(
            local_path("d", "d/a/b.txt").unwrap(),
            PathBuf::from("a").join("b.txt")
        );
        assert_eq!(
            local_path("d", "d/.hidden/naïve café.tar.gz").unwrap(),
            PathBuf::from(".hidden").join("naïve café.tar.gz")
        );
        assert!(local_path("d", "d/CONSOLE.txt").is_ok());
        assert!(local_path("d", "d/com10").is_ok());
    }

    #[test]
    fn names_that_climb_or_hold_a_root_are_refused() {
        for bad in [
            "d/../x",
            "d/a/../../x",
            "../d/x",
            "/etc/passwd",
            "e/x",
            "dx/y",
            "d",
            "d/",
            "d//x",
            "d/./x",
            "d/a\\..\\..\\x",
            "d/..\\..\\AppData\\Roaming\\Startup\\x.bat",
            "d/C:\\Windows\\x",
            "d/C:x",
            "d/\\\\server\\share\\x",
            "d/\u{0}",
            "d/a\u{1b}b",
        ] {
            assert!(local_path("d", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn names_windows_cannot_hold_are_refused_on_every_os() {
        for (bad, why) in [
            ("d/CON", Unfit::Reserved("CON".into())),
            ("d/a/nul.txt", Unfit::Reserved("NUL".into())),
            ("d/Com1.tar.gz", Unfit::Reserved("COM1".into())),
            ("d/lpt9", Unfit::Reserved("LPT9".into())),
            ("d/aux .txt", Unfit::Reserved("AUX".into())),
            ("d/x.", Unfit::Trailing),
            ("d/x ", Unfit::Trailing),
            ("d/dir./x", Unfit::Trailing),
            ("d/a:b", Unfit::Character(':')),
            ("d/a?b", Unfit::Character('?')),
            ("d/a*b", Unfit::Character('*')),
            ("d/a|b", Unfit::Character('|')),
            ("d/a<b>", Unfit::Character('<')),
            ("d/\"q\"", Unfit::Character('"')),
        ] {
            assert_eq!(local_path("d", bad), Err(why), "{bad:?}");
        }
        let long = format!("d/{}", "a".repeat(MAX_SEGMENT + 1));
        assert_eq!(local_path("d", &long), Err(Unfit::TooLong));
        assert!(local_path("d", &format!("d/{}", "a".repeat(MAX_SEGMENT))).is_ok());
    }

    #[test]
    fn a_name_not_in_normal_form_is_refused() {
        // Decomposed "é": the server lists only the composed form.
        assert_eq!(local_path("d", "d/cafe\u{301}"), Err(Unfit::NotNormal));
    }
}
