//! The assets of `dist/`: wasm-bindgen run as a library over the built
//! module, every asset named by its content hash (Trunk's `name-<16 hex>`
//! form, which the server caches as immutable), written beside `dist/` and
//! swapped in whole.

use anyhow::Context;
use std::path::{Path, PathBuf};

/// The crate's name as wasm-bindgen's output files carry it.
const OUT_NAME: &str = "coffer-web";

/// A built app, in memory: served name and bytes of each file.
pub struct Bundle {
    pub files: Vec<(String, Vec<u8>)>,
}

/// Runs wasm-bindgen (`--target web`, no TypeScript, no name section) over
/// `wasm`; returns the JS glue and the processed module.
pub fn bindgen(wasm: &Path, scratch: &Path) -> anyhow::Result<(Vec<u8>, Vec<u8>)> {
    let _ = std::fs::remove_dir_all(scratch);
    std::fs::create_dir_all(scratch)?;
    wasm_bindgen_cli_support::Bindgen::new()
        .input_path(wasm)
        .web(true)?
        .typescript(false)
        .omit_default_module_path(false)
        // Function names for stack traces: a quarter of the module. A
        // panic still reports its message and source location. Kept with
        // COFFER_WEB_NAMES=1, for a profile that names the app's code.
        .remove_name_section(std::env::var_os("COFFER_WEB_NAMES").is_none())
        .remove_producers_section(true)
        .out_name(OUT_NAME)
        .generate(scratch)
        .context("wasm-bindgen")?;
    let js = std::fs::read(scratch.join(format!("{OUT_NAME}.js")))?;
    let module = std::fs::read(scratch.join(format!("{OUT_NAME}_bg.wasm")))?;
    anyhow::ensure!(
        !scratch.join("snippets").exists(),
        "wasm-bindgen wrote JS snippets, which this build does not serve yet"
    );
    Ok((js, module))
}

/// `stem-<16 hex of the hash of parts>suffix`.
pub fn hashed_name(stem: &str, suffix: &str, parts: &[&[u8]]) -> String {
    let mut h = blake3::Hasher::new();
    for p in parts {
        h.update(&(p.len() as u64).to_le_bytes());
        h.update(p);
    }
    let hex = h.finalize().to_hex();
    format!("{stem}-{}{suffix}", &hex[..16])
}

/// The JS glue and module under one hash of both (the glue is generated
/// for exactly that module); their served names.
pub fn app_names(js: &[u8], module: &[u8]) -> (String, String) {
    let js_name = hashed_name(OUT_NAME, ".js", &[js, module]);
    let wasm_name = js_name.replace(".js", "_bg.wasm");
    (js_name, wasm_name)
}

/// Writes `bundle` to `dist`: into a sibling folder first, then swapped in,
/// so a server build never embeds half an app.
pub fn install(bundle: &Bundle, dist: &Path) -> anyhow::Result<()> {
    let fresh = sibling(dist, "new");
    let old = sibling(dist, "old");
    let _ = std::fs::remove_dir_all(&fresh);
    let _ = std::fs::remove_dir_all(&old);
    std::fs::create_dir_all(&fresh)?;
    for (name, bytes) in &bundle.files {
        std::fs::write(fresh.join(name), bytes).with_context(|| format!("writing {name}"))?;
    }
    if dist.exists() {
        std::fs::rename(dist, &old).with_context(|| format!("moving {} aside", dist.display()))?;
    }
    std::fs::rename(&fresh, dist)?;
    let _ = std::fs::remove_dir_all(&old);
    Ok(())
}

fn sibling(dir: &Path, tag: &str) -> PathBuf {
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    dir.with_file_name(format!(".{name}.{tag}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_content_and_the_servers_hashed_form() {
        let (js, wasm) = app_names(b"glue", b"module");
        assert!(js.starts_with("coffer-web-") && js.ends_with(".js"), "{js}");
        assert_eq!(js.len(), "coffer-web-".len() + 16 + ".js".len());
        assert_eq!(wasm, js.replace(".js", "_bg.wasm"));
        assert_ne!(
            app_names(b"glue", b"other").0,
            js,
            "a new module, a new name"
        );
        assert_ne!(app_names(b"glu", b"emodule").0, js, "parts are delimited");
    }

    #[test]
    fn install_replaces_the_folder_whole() {
        let root = tempdir();
        let dist = root.join("dist");
        std::fs::create_dir_all(&dist).unwrap();
        std::fs::write(dist.join("stale.js"), b"old").unwrap();
        let bundle = Bundle {
            files: vec![("index.html".into(), b"<html>".to_vec())],
        };
        install(&bundle, &dist).unwrap();
        assert_eq!(std::fs::read(dist.join("index.html")).unwrap(), b"<html>");
        assert!(!dist.join("stale.js").exists());
        let left: Vec<_> = std::fs::read_dir(&root).unwrap().collect();
        assert_eq!(left.len(), 1, "no scratch folders left");
        std::fs::remove_dir_all(root).unwrap();
    }

    fn tempdir() -> PathBuf {
        let d = std::env::temp_dir().join(format!("coffer-web-build-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }
}
