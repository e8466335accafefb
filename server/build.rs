//! Embeds the built web app (`dist/` at the repository root, from tools/web-build) in the
//! server binary, so it serves the app whatever its working directory.
//! Without a `dist/` at build time the binary carries no app (and says so
//! at `/`); `scripts/run.sh` and `scripts/test.sh` build the app first.
//! `COFFER_WEB_DIR` serves a directory instead, for front-end work.

use std::path::{Path, PathBuf};

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            files(&p, out);
        } else {
            out.push(p);
        }
    }
}

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let dist = manifest.join("..").join("dist");
    // Watched whole, and also while it is missing (cargo then runs this
    // script on every build, so the app is embedded as soon as it exists).
    println!("cargo:rerun-if-changed={}", dist.display());
    let mut found = Vec::new();
    if dist.join("index.html").is_file() {
        files(&dist, &mut found);
        found.sort();
    }
    let mut code = String::from("/// The built web app: (path under `/`, bytes).\n");
    code.push_str("pub static ASSETS: &[(&str, &[u8])] = &[\n");
    for f in &found {
        let rel = f
            .strip_prefix(&dist)
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/");
        let abs = f.canonicalize().unwrap();
        code.push_str(&format!(
            "    ({rel:?}, include_bytes!({:?})),\n",
            abs.display().to_string()
        ));
    }
    code.push_str("];\n");
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap()).join("web_assets.rs");
    std::fs::write(out, code).unwrap();
}
