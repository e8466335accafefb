//! The brotli and gzip forms of the assets, made once at build time: the
//! server sends them from its first request on and never compresses at
//! run time (it used to, on a background thread at each start, and sent
//! the app plain until that finished).

use std::io::Write;

/// Whether an asset of this name is worth compressing (images are
/// compressed already).
pub fn compressible(name: &str) -> bool {
    matches!(
        name.rsplit_once('.').map(|(_, ext)| ext),
        Some("html" | "js" | "wasm" | "css" | "svg" | "json" | "txt" | "map")
    )
}

/// `NAME.br` and `NAME.gz` for each compressible file of `files`, where
/// the form is smaller than the file: brotli at its best quality (11),
/// gzip at 9. The files are compressed side by side, one thread each.
pub fn precompressed(files: &[(String, Vec<u8>)]) -> Vec<(String, Vec<u8>)> {
    std::thread::scope(|s| {
        let jobs: Vec<_> = files
            .iter()
            // The page itself is under 1 KiB and still halves; below a few
            // hundred bytes the headers outweigh what compression saves.
            .filter(|(name, bytes)| compressible(name) && bytes.len() >= 256)
            .map(|(name, bytes)| s.spawn(move || forms(name, bytes)))
            .collect();
        jobs.into_iter()
            .flat_map(|job| job.join().expect("compressing in memory cannot fail"))
            .collect()
    })
}

fn forms(name: &str, bytes: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut br = Vec::new();
    {
        let mut w = brotli::CompressorWriter::new(&mut br, 64 * 1024, 11, 22);
        w.write_all(bytes).expect("writing to memory");
    }
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(bytes).expect("writing to memory");
    let gz = gz.finish().expect("writing to memory");
    [(format!("{name}.br"), br), (format!("{name}.gz"), gz)]
        .into_iter()
        .filter(|(_, form)| form.len() < bytes.len())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn each_form_decodes_to_its_file_and_only_text_is_compressed() {
        let text: Vec<u8> = (0..100_000u32)
            .flat_map(|i| format!("line {}\n", i % 97).into_bytes())
            .collect();
        let files = vec![
            ("app.js".to_string(), text.clone()),
            ("logo.png".to_string(), text.clone()),
            ("tiny.css".to_string(), b"a{}".to_vec()),
        ];
        let mut out = precompressed(&files);
        out.sort();
        let names: Vec<&str> = out.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["app.js.br", "app.js.gz"]);
        let mut back = Vec::new();
        brotli::Decompressor::new(&out[0].1[..], 4096)
            .read_to_end(&mut back)
            .unwrap();
        assert_eq!(back, text);
        let mut back = Vec::new();
        flate2::read::GzDecoder::new(&out[1].1[..])
            .read_to_end(&mut back)
            .unwrap();
        assert_eq!(back, text);
        assert!(out.iter().all(|(_, f)| f.len() * 10 < text.len()));
    }

    #[test]
    fn a_form_no_smaller_than_its_file_is_left_out() {
        // Bytes that do not compress: each form only adds its framing.
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let noise: Vec<u8> = (0..4096)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        assert!(precompressed(&[("noise.js".into(), noise)]).is_empty());
    }
}
