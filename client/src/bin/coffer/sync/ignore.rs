//! `.cofferignore`: glob patterns, one per line, of paths sync leaves
//! alone on both sides.
//!
//! - Blank lines and lines starting with `#` are skipped.
//! - A pattern with no `/` matches a file or folder name at any depth
//!   (`*.tmp`, `node_modules`, `.DS_Store`). A trailing `/` is dropped, so
//!   `node_modules/` is `node_modules` (it matches a file of that name too).
//! - A pattern with a `/` inside, or starting with one, matches a path
//!   from the synced folder's root (`build/*.o`, `/docs/drafts`).
//! - Matching is case-sensitive, on names in Unicode NFC (patterns are
//!   brought to NFC too).
//! - A matched folder leaves out everything under it.
//! - `*` and `?` stay within one name; `**` crosses folders; `[abc]` and
//!   `{a,b}` work as in a shell.
//!
//! The file is read from the root of the synced folder and is itself not
//! synced: each computer says what it leaves out (as Syncthing's
//! `.stignore`). An ignored path is neither uploaded, downloaded nor
//! deleted on either side.

use anyhow::Context;
use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use std::path::Path;

/// The file's name, at the root of the synced folder.
pub const FILE: &str = ".cofferignore";

#[derive(Debug)]
pub struct Ignore {
    set: GlobSet,
    /// A hash of the patterns: what was agreed under other patterns is
    /// not trusted under these.
    pub digest: String,
}

impl Ignore {
    /// Reads `root/.cofferignore`; no file leaves out only the file itself.
    pub fn load(root: &Path) -> anyhow::Result<Self> {
        let path = root.join(FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => Self::parse(&text).with_context(|| format!("in {}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Self::parse(""),
            Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
        }
    }

    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let mut set = GlobSetBuilder::new();
        let mut add = |pattern: &str, line: usize| -> anyhow::Result<()> {
            let glob = GlobBuilder::new(pattern)
                .literal_separator(true)
                .backslash_escape(true)
                .build()
                .with_context(|| format!("line {line}: `{pattern}` is not a glob pattern"))?;
            set.add(glob);
            Ok(())
        };
        add(FILE, 0)?;
        // Temporary download files, on either side.
        add("**/.coffer-??????.part", 0)?;
        for (n, raw) in text.lines().enumerate() {
            let line = raw.trim_end_matches('\r').trim_end();
            if line.trim_start().is_empty() || line.trim_start().starts_with('#') {
                continue;
            }
            let pattern = line.trim_start().trim_end_matches('/');
            let (rooted, pattern) = match pattern.strip_prefix('/') {
                Some(p) => (true, p),
                None => (false, pattern),
            };
            if pattern.is_empty() {
                continue;
            }
            // Names are matched in the server's normal form (NFC), so a
            // pattern typed or pasted decomposed must be too.
            let pattern =
                coffer_client::normalize_name(pattern).unwrap_or_else(|_| pattern.to_string());
            if rooted || pattern.contains('/') {
                add(&pattern, n + 1)?;
            } else {
                add(&format!("**/{pattern}"), n + 1)?;
            }
        }
        Ok(Ignore {
            set: set.build().context("building the ignore patterns")?,
            digest: blake3::hash(text.as_bytes()).to_hex()[..16].to_string(),
        })
    }

    /// Whether the path `rel` (`/`-separated, from the root) or a folder
    /// above it is left out.
    pub fn ignores(&self, rel: &str) -> bool {
        let mut end = 0;
        loop {
            let next = rel[end..].find('/').map(|i| end + i);
            let prefix = &rel[..next.unwrap_or(rel.len())];
            if self.set.is_match(prefix) {
                return true;
            }
            match next {
                Some(i) => end = i + 1,
                None => return false,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_names_anywhere_and_rooted_paths_from_the_root() {
        let ig = Ignore::parse(
            "# build output\n\n*.tmp\nnode_modules/\n/docs/drafts\nbuild/*.o\n  .DS_Store  \n/cafe\u{301}\n",
        )
        .unwrap();
        for hit in [
            ".cofferignore",
            "a.tmp",
            "deep/er/b.tmp",
            "node_modules/x/y.js",
            "app/node_modules/z.js",
            "docs/drafts/one.md",
            "build/main.o",
            "photos/.DS_Store",
            "deep/.coffer-Ab12Cd.part",
            "caf\u{e9}/menu.txt",
        ] {
            assert!(ig.ignores(hit), "{hit} should be left out");
        }
        for miss in [
            "a.tmp.txt",
            "sub/.cofferignore.bak",
            "notes/docs/drafts/one.md",
            "build/sub/main.o",
            "node_modules.txt",
            "tmp",
            "deep/.coffer-notes.part",
            "menu/caf\u{e9}",
        ] {
            assert!(!ig.ignores(miss), "{miss} should be synced");
        }
    }

    #[test]
    fn a_bad_pattern_names_its_line() {
        let e = Ignore::parse("ok\n[unclosed\n").unwrap_err();
        assert!(format!("{e:#}").contains("line 2"), "{e:#}");
    }
}
