//! Thumbnails (`GET /thumb/…`) on the real server: turned upright by EXIF,
//! kept on the nodes once per owner and content, revalidated by ETag,
//! refused with a reason for what cannot be decoded safely (a 50,000 x
//! 50,000 PNG, a truncated JPEG, text), and deleted by gc with the last
//! version that had their content.

use coffer_tests::data::upload_bytes;
use coffer_tests::server::{http_get_with, Server, ServerOpts};
use std::io::Cursor;
use std::path::Path;

/// A 300 x 200 JPEG, red on its left half, whose EXIF says "rotate 90°
/// clockwise to show" (orientation 6).
fn sideways_jpeg() -> Vec<u8> {
    let img = image::RgbImage::from_fn(300, 200, |x, _| {
        if x < 150 {
            image::Rgb([220, 20, 20])
        } else {
            image::Rgb([20, 20, 220])
        }
    });
    let mut jpeg = Vec::new();
    image::DynamicImage::ImageRgb8(img)
        .write_to(&mut Cursor::new(&mut jpeg), image::ImageFormat::Jpeg)
        .unwrap();
    // APP1: "Exif\0\0", a big-endian TIFF header, one IFD entry 0x0112
    // (Orientation), SHORT, 1, value 6.
    let mut tiff = b"MM\0\x2a\0\0\0\x08\0\x01\x01\x12\0\x03\0\0\0\x01\0\x06\0\0\0\0\0\0".to_vec();
    let mut app1 = b"Exif\0\0".to_vec();
    app1.append(&mut tiff);
    let mut out = jpeg[..2].to_vec();
    out.extend_from_slice(&[0xFF, 0xE1]);
    out.extend_from_slice(&((app1.len() + 2) as u16).to_be_bytes());
    out.extend_from_slice(&app1);
    out.extend_from_slice(&jpeg[2..]);
    out
}

/// A valid PNG header naming 50,000 x 50,000 pixels, and no pixels.
fn bomb_png() -> Vec<u8> {
    let mut png = Vec::new();
    image::DynamicImage::ImageRgb8(image::RgbImage::new(1, 1))
        .write_to(&mut Cursor::new(&mut png), image::ImageFormat::Png)
        .unwrap();
    png[16..20].copy_from_slice(&50_000u32.to_be_bytes());
    png[20..24].copy_from_slice(&50_000u32.to_be_bytes());
    let crc = crc(&png[12..29]);
    png[29..33].copy_from_slice(&crc.to_be_bytes());
    png
}

fn crc(bytes: &[u8]) -> u32 {
    let mut c = !0u32;
    for &b in bytes {
        c ^= u32::from(b);
        for _ in 0..8 {
            c = if c & 1 == 1 {
                (c >> 1) ^ 0xEDB8_8320
            } else {
                c >> 1
            };
        }
    }
    !c
}

/// Thumbnail objects on the embedded default's local nodes.
fn thumb_objects(data_dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for i in 1..=3 {
        let dir = data_dir.join(format!("nodes/node{i}/coffer/thumbs"));
        if let Ok(list) = std::fs::read_dir(dir) {
            out.extend(
                list.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned()),
            );
        }
    }
    out.sort();
    out
}

#[tokio::test]
async fn thumbnails_are_upright_cached_bounded_and_collected() {
    let server = Server::start(ServerOpts::embedded().with("COFFER_KEEP_VERSIONS", "1"))
        .await
        .unwrap();
    let token = server.token().expect("authentication is on").to_string();
    let bearer = format!("Bearer {token}");
    let auth = [("Authorization", bearer.as_str())];
    let mut files = server.client().await;
    let photo = sideways_jpeg();
    upload_bytes(&mut files, "pics/photo.jpg", &photo)
        .await
        .unwrap();

    let (code, head, body) =
        http_get_with(server.addr(), "/thumb/pics/photo.jpg?edge=256", &auth).await;
    assert_eq!(code, 200, "{head}\n{}", String::from_utf8_lossy(&body));
    assert!(
        head.to_lowercase().contains("content-type: image/jpeg"),
        "{head}"
    );
    let thumb = image::load_from_memory(&body).unwrap().into_rgb8();
    // Upright: 200 x 300 scaled to a 256 edge, the red half on top.
    assert_eq!(thumb.height(), 256, "{}x{}", thumb.width(), thumb.height());
    assert!((170..=171).contains(&thumb.width()), "{}", thumb.width());
    let top = thumb.get_pixel(thumb.width() / 2, 20);
    let bottom = thumb.get_pixel(thumb.width() / 2, 236);
    assert!(top[0] > 150 && top[2] < 100, "top {top:?}");
    assert!(bottom[2] > 150 && bottom[0] < 100, "bottom {bottom:?}");

    // Kept on the nodes, and revalidated by its ETag.
    let mut kept = Vec::new();
    for _ in 0..50 {
        kept = thumb_objects(server.data_dir());
        if !kept.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(
        !kept.is_empty() && kept.iter().all(|k| k.ends_with("-256.jpg")),
        "{kept:?}"
    );
    let etag = head
        .lines()
        .find_map(|l| {
            l.strip_prefix("etag: ")
                .or_else(|| l.strip_prefix("ETag: "))
        })
        .unwrap()
        .trim()
        .to_string();
    let mut again = auth.to_vec();
    again.push(("If-None-Match", etag.as_str()));
    let (code, _, _) = http_get_with(server.addr(), "/thumb/pics/photo.jpg?edge=256", &again).await;
    assert_eq!(code, 304);
    let (code, _, same) =
        http_get_with(server.addr(), "/thumb/pics/photo.jpg?edge=256", &auth).await;
    assert_eq!(
        (code, same == body),
        (200, true),
        "served from the nodes, unchanged"
    );

    // What cannot be decoded safely: a clear 422 with the reason, and
    // nothing kept.
    let truncated = photo[..photo.len() / 2].to_vec();
    let cases: [(&str, Vec<u8>, &str); 3] = [
        ("bad/bomb.png", bomb_png(), "pixels"),
        ("bad/cut.jpg", truncated, "damaged"),
        ("bad/text.jpg", b"just some text".to_vec(), "not an image"),
    ];
    for (name, bytes, why) in &cases {
        upload_bytes(&mut files, name, bytes).await.unwrap();
        let (code, _, body) = http_get_with(server.addr(), &format!("/thumb/{name}"), &auth).await;
        let text = String::from_utf8_lossy(&body);
        assert_eq!(code, 422, "{name}: {text}");
        assert!(text.contains(why), "{name}: {text}");
    }
    upload_bytes(&mut files, "bad/notes.txt", b"text")
        .await
        .unwrap();
    assert_eq!(
        http_get_with(server.addr(), "/thumb/bad/notes.txt", &auth)
            .await
            .0,
        422
    );
    assert_eq!(
        http_get_with(server.addr(), "/thumb/pics/photo.jpg?edge=999", &auth)
            .await
            .0,
        400
    );
    assert_eq!(
        http_get_with(server.addr(), "/thumb/pics/photo.jpg", &[])
            .await
            .0,
        401
    );
    assert_eq!(
        http_get_with(server.addr(), "/thumb/pics/none.jpg", &auth)
            .await
            .0,
        404
    );
    assert_eq!(
        thumb_objects(server.data_dir()),
        kept,
        "only the photo's thumbnail is kept"
    );

    // A new version replaces the only one that had the old content (one
    // version kept): gc deletes the old thumbnail from the nodes.
    let mut other = photo.clone();
    let at = other.len() - 10;
    other[at] ^= 0xFF;
    upload_bytes(&mut files, "pics/photo.jpg", &other)
        .await
        .unwrap();
    let report = server.run_worker("gc").await;
    assert!(report.contains("1 thumbnails"), "{report}");
    assert!(thumb_objects(server.data_dir()).is_empty());
}
