//! What kind of media a file is, by its name: how the server serves it to
//! be shown (`/view/`) and which viewer the web app opens for it. One
//! table, so the two never disagree.

/// A file's kind, for showing it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Media {
    /// A raster image browsers decode.
    Image(&'static str),
    /// SVG: an image that can carry script.
    Svg,
    Audio(&'static str),
    Video(&'static str),
    Pdf,
    /// HTML: shown rendered, in a sandbox without script.
    Html,
    /// Prose, data or source code, shown as text; Markdown is rendered.
    Text {
        markdown: bool,
    },
    /// Nothing a browser shows safely: saved instead.
    Other,
}

impl Media {
    /// The `Content-Type` to show it under; `None` for [`Media::Other`].
    pub fn content_type(self) -> Option<&'static str> {
        Some(match self {
            Media::Image(t) | Media::Audio(t) | Media::Video(t) => t,
            Media::Svg => "image/svg+xml",
            Media::Pdf => "application/pdf",
            Media::Html => "text/html; charset=utf-8",
            Media::Text { .. } => "text/plain; charset=utf-8",
            Media::Other => return None,
        })
    }
}

/// Extensions shown as plain text: prose, data and source code. Markup a
/// browser would run (XHTML, XML with stylesheets) is text too.
const TEXT: &[&str] = &[
    "txt", "csv", "tsv", "log", "json", "yaml", "yml", "toml", "ini", "cfg", "conf", "xml",
    "xhtml", "rs", "py", "js", "mjs", "ts", "tsx", "jsx", "c", "h", "cc", "cpp", "hpp", "go",
    "java", "kt", "rb", "php", "sh", "bash", "zsh", "css", "scss", "sql", "swift", "lua", "pl",
    "r", "tex", "srt", "vtt", "diff", "patch",
];

/// The kind of the file at `path`, by its extension (case ignored).
pub fn media(path: &str) -> Media {
    let name = path.rsplit('/').next().unwrap_or(path);
    let ext = name
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "png" => Media::Image("image/png"),
        "jpg" | "jpeg" => Media::Image("image/jpeg"),
        "gif" => Media::Image("image/gif"),
        "webp" => Media::Image("image/webp"),
        "avif" => Media::Image("image/avif"),
        "bmp" => Media::Image("image/bmp"),
        "ico" => Media::Image("image/x-icon"),
        "svg" => Media::Svg,
        "mp3" => Media::Audio("audio/mpeg"),
        "m4a" | "aac" => Media::Audio("audio/mp4"),
        "ogg" | "oga" | "opus" => Media::Audio("audio/ogg"),
        "wav" => Media::Audio("audio/wav"),
        "flac" => Media::Audio("audio/flac"),
        "mp4" | "m4v" => Media::Video("video/mp4"),
        "webm" => Media::Video("video/webm"),
        "ogv" => Media::Video("video/ogg"),
        "mov" => Media::Video("video/quicktime"),
        "html" | "htm" => Media::Html,
        "pdf" => Media::Pdf,
        "md" | "markdown" => Media::Text { markdown: true },
        e if TEXT.contains(&e) => Media::Text { markdown: false },
        _ => Media::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_come_from_the_extension_in_any_case() {
        assert_eq!(media("a/Page.HTML"), Media::Html);
        assert_eq!(media("x.svg"), Media::Svg);
        assert_eq!(media("IMG_1.JPG"), Media::Image("image/jpeg"));
        assert_eq!(media("main.rs"), Media::Text { markdown: false });
        assert_eq!(media("README.md"), Media::Text { markdown: true });
        assert_eq!(
            media("feed.xhtml").content_type(),
            Some("text/plain; charset=utf-8")
        );
        assert_eq!(media("setup.exe"), Media::Other);
        assert_eq!(media("noext"), Media::Other);
        assert_eq!(media("dir.png/file"), Media::Other);
    }
}
