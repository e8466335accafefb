//! One thumbnail from one image's bytes, in bounded memory: the format is
//! sniffed from the bytes, the header's dimensions are checked against a
//! pixel cap before anything is decoded, the decoder's own allocations
//! are capped, EXIF orientation is applied, and the result is a JPEG no
//! larger than the asked edge.

use image::{DynamicImage, ImageDecoder, ImageReader, Limits};
use std::io::Cursor;

/// Why an image has no thumbnail (the client shows a placeholder).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RenderError {
    #[error("not an image this server decodes")]
    NotAnImage,
    #[error("{width} x {height} pixels is over the {cap} pixels thumbnails decode")]
    TooManyPixels { width: u32, height: u32, cap: u64 },
    #[error("the image is damaged or truncated: {0}")]
    Damaged(String),
}

/// The most bytes a decoder may hold at once, beyond the pixels counted
/// by the pixel cap (four bytes a pixel at most).
fn alloc_cap(max_pixels: u64) -> u64 {
    max_pixels * 4 + 64 * 1024 * 1024
}

/// A JPEG of `bytes` (an image) whose longer edge is at most `edge`
/// pixels, turned upright by its EXIF orientation. Images of more than
/// `max_pixels` are refused from their header alone.
pub fn thumbnail(bytes: &[u8], edge: u32, max_pixels: u64) -> Result<Vec<u8>, RenderError> {
    let mut reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|_| RenderError::NotAnImage)?;
    match reader.format() {
        None => return Err(RenderError::NotAnImage),
        // The JPEG decoder fills a cut-off scan with grey; a thumbnail of
        // half a photo is not one to keep.
        Some(image::ImageFormat::Jpeg) if !jpeg_is_whole(bytes) => {
            return Err(RenderError::Damaged(
                "the JPEG ends before its last scan does".into(),
            ))
        }
        Some(_) => {}
    }
    let mut limits = Limits::default();
    limits.max_alloc = Some(alloc_cap(max_pixels));
    reader.limits(limits);
    let mut decoder = reader.into_decoder().map_err(|e| match e {
        image::ImageError::Unsupported(_) => RenderError::NotAnImage,
        other => RenderError::Damaged(other.to_string()),
    })?;
    let (width, height) = decoder.dimensions();
    if u64::from(width) * u64::from(height) > max_pixels {
        return Err(RenderError::TooManyPixels {
            width,
            height,
            cap: max_pixels,
        });
    }
    let orientation = decoder
        .orientation()
        .unwrap_or(image::metadata::Orientation::NoTransforms);
    let mut img =
        DynamicImage::from_decoder(decoder).map_err(|e| RenderError::Damaged(e.to_string()))?;
    if img.width() > edge || img.height() > edge {
        img = img.thumbnail(edge, edge);
    }
    img.apply_orientation(orientation);
    // JPEG has no alpha: transparent parts show as white.
    let rgb = flatten(img);
    let mut out = Vec::new();
    let encoder = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 82);
    rgb.write_with_encoder(encoder)
        .map_err(|e| RenderError::Damaged(e.to_string()))?;
    Ok(out)
}

/// Whether a JPEG's last scan (its last SOS marker) is followed by an
/// end-of-image marker. Inside a scan a 0xFF byte is always followed by 0
/// or a restart marker, so neither marker can appear there by chance.
fn jpeg_is_whole(bytes: &[u8]) -> bool {
    let last_scan = bytes.windows(2).rposition(|w| w == [0xFF, 0xDA]);
    let last_end = bytes.windows(2).rposition(|w| w == [0xFF, 0xD9]);
    matches!((last_scan, last_end), (Some(s), Some(e)) if e > s)
}

/// `img` as RGB over white.
fn flatten(img: DynamicImage) -> DynamicImage {
    if !img.color().has_alpha() {
        return DynamicImage::ImageRgb8(img.into_rgb8());
    }
    let rgba = img.into_rgba8();
    let mut rgb = image::RgbImage::new(rgba.width(), rgba.height());
    for (to, from) in rgb.pixels_mut().zip(rgba.pixels()) {
        let a = u16::from(from[3]);
        for c in 0..3 {
            to[c] = ((u16::from(from[c]) * a + 255 * (255 - a)) / 255) as u8;
        }
    }
    DynamicImage::ImageRgb8(rgb)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(width: u32, height: u32) -> Vec<u8> {
        let img =
            image::RgbImage::from_fn(width, height, |x, y| image::Rgb([x as u8, y as u8, 128]));
        let mut out = Vec::new();
        DynamicImage::ImageRgb8(img)
            .write_to(&mut Cursor::new(&mut out), image::ImageFormat::Png)
            .unwrap();
        out
    }

    fn size_of(jpeg: &[u8]) -> (u32, u32) {
        let img = image::load_from_memory(jpeg).unwrap();
        (img.width(), img.height())
    }

    #[test]
    fn the_longer_edge_fits_and_the_shape_is_kept() {
        assert_eq!(
            size_of(&thumbnail(&png(600, 300), 256, 1 << 26).unwrap()),
            (256, 128)
        );
        // Small images are not enlarged.
        assert_eq!(
            size_of(&thumbnail(&png(40, 30), 256, 1 << 26).unwrap()),
            (40, 30)
        );
    }

    #[test]
    fn a_header_naming_too_many_pixels_is_refused_before_decoding() {
        // A PNG header claiming 50,000 x 50,000 pixels, with no data.
        let mut bomb = png(1, 1);
        bomb[16..20].copy_from_slice(&50_000u32.to_be_bytes());
        bomb[20..24].copy_from_slice(&50_000u32.to_be_bytes());
        let crc = crc32fast::hash(&bomb[12..29]);
        bomb[29..33].copy_from_slice(&crc.to_be_bytes());
        let err = thumbnail(&bomb, 256, 1 << 26).unwrap_err();
        assert_eq!(
            err,
            RenderError::TooManyPixels {
                width: 50_000,
                height: 50_000,
                cap: 1 << 26
            }
        );
    }

    #[test]
    fn truncated_and_foreign_bytes_are_errors_not_panics() {
        let whole = png(300, 300);
        assert!(matches!(
            thumbnail(&whole[..whole.len() / 2], 256, 1 << 26),
            Err(RenderError::Damaged(_))
        ));
        assert_eq!(
            thumbnail(b"plain text", 256, 1 << 26),
            Err(RenderError::NotAnImage)
        );
    }
}
