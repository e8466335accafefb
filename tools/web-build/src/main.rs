//! `coffer-web-build`: builds the web app (`web/`) into `dist/`, which the
//! server embeds, with nothing to install but the wasm32 target: cargo
//! builds the module, wasm-bindgen runs as a library (the exact version of
//! the `wasm-bindgen` crate, as cargo-leptos does), every asset gets a
//! content-hashed name, and brotli and gzip forms beside it. Nothing changed since the last build: nothing is
//! redone, and `dist/` is left untouched (so the server is not rebuilt).
//! `trunk serve` stays the front-end development loop; both turn the same
//! `web/index.html` into the same page.

mod bundle;
mod compress;
mod page;

use anyhow::{ensure, Context};
use bundle::Bundle;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// Changes whenever this build's output for the same input may change.
const BUILDER: &str = "coffer-web-build 3, wasm-bindgen 0.2.130";

fn main() -> anyhow::Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let root = root.canonicalize().context("the repository root")?;
    let dist = match std::env::args_os().nth(1) {
        Some(d) => PathBuf::from(d),
        None => root.join("dist"),
    };
    let web = root.join("web");
    let target = web.join("target");

    let started = Instant::now();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .args([
            "build",
            "--release",
            "--target",
            "wasm32-unknown-unknown",
            "--manifest-path",
        ])
        .arg(web.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&target)
        .status()
        .context("running cargo")?;
    ensure!(
        status.success(),
        "building the web app's wasm module failed"
    );
    let wasm_path = target.join("wasm32-unknown-unknown/release/coffer-web.wasm");
    let wasm = std::fs::read(&wasm_path).with_context(|| format!("{}", wasm_path.display()))?;
    let template = std::fs::read_to_string(web.join("index.html"))?;
    let mut styles = Vec::new();
    for href in page::stylesheets(&template)? {
        let bytes = std::fs::read(web.join(&href)).with_context(|| format!("web/{href}"))?;
        styles.push((href, bytes));
    }

    // What `dist` was built from, and `dist` itself: another folder built
    // from the same inputs does not make this one current.
    let out = dist.to_string_lossy();
    let mut inputs: Vec<&[u8]> = vec![
        BUILDER.as_bytes(),
        out.as_bytes(),
        &wasm,
        template.as_bytes(),
    ];
    inputs.extend(styles.iter().map(|(_, b)| b.as_slice()));
    let stamp = bundle::hashed_name("inputs", "", &inputs);
    let stamp_path = target.join("dist.stamp");
    if dist.join("index.html").is_file()
        && std::fs::read_to_string(&stamp_path).is_ok_and(|s| s == stamp)
    {
        println!(
            "web app: {} is up to date ({:.1} s)",
            dist.display(),
            secs(started)
        );
        return Ok(());
    }

    let bound = Instant::now();
    let (js, module) = bundle::bindgen(&wasm_path, &target.join("bindgen"))?;
    let (js_name, wasm_name) = bundle::app_names(&js, &module);
    let mut files = Vec::new();
    let mut names = Vec::new();
    for (href, bytes) in styles {
        let path = Path::new(&href);
        let stem = path.file_stem().unwrap_or_default().to_string_lossy();
        let ext = path
            .extension()
            .map(|e| format!(".{}", e.to_string_lossy()));
        let name = bundle::hashed_name(&stem, &ext.unwrap_or_default(), &[&bytes]);
        names.push((href, name.clone()));
        files.push((name, bytes));
    }
    let hashed = |href: &str| {
        names
            .iter()
            .find(|(h, _)| h == href)
            .map(|(_, n)| n.clone())
    };
    let html = page::render(&template, &hashed, &js_name, &wasm_name)?;
    let module_len = module.len();
    files.push(("index.html".into(), html.into_bytes()));
    files.push((js_name, js));
    files.push((wasm_name, module));
    let bindgen_secs = secs(bound);
    let packing = Instant::now();
    let forms = compress::precompressed(&files);
    files.extend(forms);
    bundle::install(&Bundle { files }, &dist)?;
    std::fs::write(&stamp_path, stamp)?;
    println!(
        "web app: {} built ({} KiB module; wasm-bindgen {:.1} s, compressing {:.1} s, {:.1} s in all)",
        dist.display(),
        module_len / 1024,
        bindgen_secs,
        secs(packing),
        secs(started)
    );
    Ok(())
}

fn secs(since: Instant) -> f64 {
    since.elapsed().as_secs_f64()
}

#[cfg(test)]
mod tests {
    /// wasm-bindgen's library must be the very version of the crate the app
    /// links, or the module and its glue disagree at run time.
    #[test]
    fn wasm_bindgen_pins_agree() {
        let pin = |file: &str, krate: &str| {
            let text = std::fs::read_to_string(file).unwrap();
            let line = text
                .lines()
                .find(|l| l.starts_with(&format!("{krate} = ")))
                .unwrap_or_else(|| panic!("{file} pins no {krate}"))
                .to_string();
            line.split('"').nth(1).unwrap().to_string()
        };
        let dir = env!("CARGO_MANIFEST_DIR");
        let ours = pin(&format!("{dir}/Cargo.toml"), "wasm-bindgen-cli-support");
        let app = pin(&format!("{dir}/../../web/Cargo.toml"), "wasm-bindgen");
        assert_eq!(ours, app);
        assert!(super::BUILDER.contains(ours.trim_start_matches('=')));
    }
}
