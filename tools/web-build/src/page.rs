//! The served page: `web/index.html` with its `data-trunk` links (the
//! stylesheets and the Rust crate) turned into links to the hashed assets
//! and the module loader Trunk writes, so the page is the same whichever
//! tool built it.

use anyhow::{bail, ensure, Context};

/// The `href` of every `<link data-trunk rel="css">`, in page order.
pub fn stylesheets(template: &str) -> anyhow::Result<Vec<String>> {
    let mut out = Vec::new();
    for (start, end) in links(template)? {
        let tag = &template[start..end];
        if tag.contains("data-trunk") && attr(tag, "rel") == Some("css") {
            out.push(
                attr(tag, "href")
                    .context("a css link without href")?
                    .to_string(),
            );
        }
    }
    Ok(out)
}

/// The page, each stylesheet at the name `hashed` gives its `href`, and
/// the loader of `js` and `wasm` (served names, without the leading `/`).
pub fn render(
    template: &str,
    hashed: &dyn Fn(&str) -> Option<String>,
    js: &str,
    wasm: &str,
) -> anyhow::Result<String> {
    let mut out = String::with_capacity(template.len() + 1024);
    let mut copied = 0;
    let mut loaders = 0;
    for (start, end) in links(template)? {
        let tag = &template[start..end];
        if !tag.contains("data-trunk") {
            continue;
        }
        out.push_str(&template[copied..start]);
        copied = end;
        if attr(tag, "rel") == Some("css") {
            let href = attr(tag, "href").context("a css link without href")?;
            let name = hashed(href).with_context(|| format!("no hashed name for {href}"))?;
            out.push_str(&format!(r#"<link rel="stylesheet" href="/{name}"/>"#));
        } else if attr(tag, "rel") == Some("rust") {
            out.push_str(&loader(js, wasm));
            loaders += 1;
        } else {
            bail!("web/index.html: a data-trunk link this build does not know: {tag}");
        }
    }
    out.push_str(&template[copied..]);
    ensure!(
        loaders == 1,
        "web/index.html needs exactly one <link data-trunk rel=\"rust\">"
    );
    Ok(out)
}

/// Trunk's loader: the module, the wasm it starts, and preloads of both.
fn loader(js: &str, wasm: &str) -> String {
    format!(
        r#"<script type="module">
import init, * as bindings from '/{js}';
const wasm = await init({{ module_or_path: '/{wasm}' }});
window.wasmBindings = bindings;
dispatchEvent(new CustomEvent("TrunkApplicationStarted", {{detail: {{wasm}}}}));
</script>
<link rel="modulepreload" href="/{js}" crossorigin="anonymous"><link rel="preload" href="/{wasm}" crossorigin="anonymous" as="fetch" type="application/wasm">"#
    )
}

/// Where each `<link ...>` tag of `template` starts and ends.
fn links(template: &str) -> anyhow::Result<Vec<(usize, usize)>> {
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(at) = template[from..].find("<link") {
        let start = from + at;
        let end = start
            + template[start..]
                .find('>')
                .context("a <link> without its '>'")?
            + 1;
        out.push((start, end));
        from = end;
    }
    Ok(out)
}

/// The value of attribute `name` in `tag` (double-quoted).
fn attr<'a>(tag: &'a str, name: &str) -> Option<&'a str> {
    let key = format!(" {name}=\"");
    let at = tag.find(&key)? + key.len();
    Some(&tag[at..at + tag[at..].find('"')?])
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: &str = r#"<html><head>
<link data-trunk rel="css" href="style.css" />
<link rel="icon" href="/favicon.ico">
<link data-trunk rel="rust" data-wasm-opt="0" />
</head><body></body></html>"#;

    #[test]
    fn trunk_links_become_hashed_assets_and_the_loader() {
        assert_eq!(stylesheets(PAGE).unwrap(), ["style.css"]);
        let hashed = |h: &str| (h == "style.css").then(|| "style-0123456789abcdef.css".to_string());
        let page = render(PAGE, &hashed, "app-1.js", "app-1_bg.wasm").unwrap();
        assert!(page.contains(r#"<link rel="stylesheet" href="/style-0123456789abcdef.css"/>"#));
        assert!(page.contains("import init, * as bindings from '/app-1.js';"));
        assert!(page.contains("init({ module_or_path: '/app-1_bg.wasm' })"));
        assert!(
            page.contains(r#"<link rel="icon" href="/favicon.ico">"#),
            "other links stay"
        );
        assert!(!page.contains("data-trunk"));
        assert!(page.ends_with("</head><body></body></html>"));
    }

    #[test]
    fn unknown_or_missing_links_are_refused() {
        let none = |_: &str| None;
        let copy = PAGE.replace(
            r#"rel="css" href="style.css""#,
            r#"rel="copy-dir" href="x""#,
        );
        assert!(render(&copy, &none, "a.js", "a.wasm").is_err());
        assert!(
            render(PAGE, &none, "a.js", "a.wasm").is_err(),
            "a css link with no asset"
        );
        let no_rust = PAGE.replace(r#"<link data-trunk rel="rust" data-wasm-opt="0" />"#, "");
        let hashed = |_: &str| Some("s.css".to_string());
        assert!(render(&no_rust, &hashed, "a.js", "a.wasm").is_err());
    }
}
