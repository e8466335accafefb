//! Zip downloads (`POST /zip`): folders and selections as one archive,
//! checked by Info-ZIP's `unzip -t` and Python's `zipfile`, the tickets
//! that open only their own selection, bad input, and an archive past
//! 4 GiB (synthetic, streamed, never stored) that both readers accept.

use coffer_proto::pb::coffer_auth_client::CofferAuthClient;
use coffer_proto::pb::file_storage_client::FileStorageClient;
use coffer_proto::pb::{ArchiveLinkRequest, MakeFolderRequest};
use coffer_tests::data::{pattern, upload_bytes};
use coffer_tests::server::{http_request, Server, ServerOpts};
use std::collections::BTreeMap;
use std::path::Path;
use tonic::Code;

/// The form body naming `paths`.
fn form(paths: &[&str]) -> Vec<u8> {
    let mut s = String::new();
    for p in paths {
        if !s.is_empty() {
            s.push('&');
        }
        s.push_str("path=");
        for b in p.bytes() {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                s.push(b as char);
            } else {
                s.push_str(&format!("%{b:02X}"));
            }
        }
    }
    s.into_bytes()
}

/// POSTs the selection to `url` (with a bearer token if given).
pub(crate) async fn post_zip(
    server: &Server,
    url: &str,
    token: Option<&str>,
    paths: &[&str],
) -> (u16, String, Vec<u8>) {
    let auth = token.map(|t| format!("Bearer {t}"));
    let mut headers = vec![("Content-Type", "application/x-www-form-urlencoded")];
    if let Some(a) = &auth {
        headers.push(("Authorization", a.as_str()));
    }
    http_request(server.addr(), "POST", url, &headers, &form(paths)).await
}

/// `unzip -t` passes on `zip`, and Python's `zipfile` reads every entry
/// (checking each CRC) and unpacks it: the names it lists, and the files
/// it unpacked (name to bytes).
pub(crate) fn check_zip(zip: &Path) -> (Vec<String>, BTreeMap<String, Vec<u8>>) {
    let out = std::process::Command::new("unzip")
        .arg("-tq")
        .arg(zip)
        .output()
        .expect("run unzip (scripts/install-test-deps.sh installs it)");
    assert!(
        out.status.success(),
        "unzip -t: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let into = zip.with_extension("unpacked");
    let script = "import sys, zipfile, json\n\
                  z = zipfile.ZipFile(sys.argv[1])\n\
                  bad = z.testzip()\n\
                  assert bad is None, bad\n\
                  z.extractall(sys.argv[2])\n\
                  print(json.dumps(z.namelist()))\n";
    let out = std::process::Command::new("python3")
        .args(["-c", script])
        .arg(zip)
        .arg(&into)
        .output()
        .expect("run python3");
    assert!(
        out.status.success(),
        "python zipfile: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let names: Vec<String> = serde_json::from_slice(&out.stdout).unwrap();
    let mut files = BTreeMap::new();
    for n in &names {
        if !n.ends_with('/') {
            files.insert(n.clone(), std::fs::read(into.join(n)).unwrap());
        }
    }
    (names, files)
}

#[tokio::test]
async fn folders_and_selections_download_as_one_zip_that_unzip_and_python_accept() {
    let server = Server::start(ServerOpts::embedded()).await.unwrap();
    let alice = server.add_user("alice", "alice-password-1", false).await;
    let mut files: FileStorageClient<_> = server.client_as(Some(&alice)).await;
    let mut auth = CofferAuthClient::new(server.channel_as(Some(&alice)).await);
    let big = pattern(5 * 1024 * 1024 + 3, 7);
    let stored: Vec<(&str, Vec<u8>)> = vec![
        ("trip/ü notes <b>.txt", b"day one\n".to_vec()),
        ("trip/photos/a.bin", big.clone()),
        ("trip/photos/b.bin", pattern(1000, 8)),
        ("trip2/not this.txt", b"neighbour\n".to_vec()),
        ("other.txt", b"other\n".to_vec()),
    ];
    for (name, bytes) in &stored {
        upload_bytes(&mut files, name, bytes).await.unwrap();
    }
    files
        .make_folder(MakeFolderRequest {
            path: "trip/empty".into(),
        })
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();

    // A folder, through a ticket as the web app does: the tree under the
    // folder's own name, empty folders included, the neighbour left out.
    let link = auth
        .archive_link(ArchiveLinkRequest {
            paths: vec!["trip".into()],
        })
        .await
        .unwrap()
        .into_inner();
    assert!(link.url.starts_with("/zip?ticket="), "{}", link.url);
    let (code, head, body) = post_zip(&server, &link.url, None, &["trip"]).await;
    assert_eq!(code, 200, "{head}");
    let lower = head.to_lowercase();
    assert!(lower.contains("content-type: application/zip"), "{head}");
    assert!(lower.contains("filename=\"trip.zip\""), "{head}");
    let zip = dir.path().join("trip.zip");
    std::fs::write(&zip, &body).unwrap();
    let (names, unpacked) = check_zip(&zip);
    assert_eq!(
        names,
        vec![
            "trip/",
            "trip/empty/",
            "trip/photos/a.bin",
            "trip/photos/b.bin",
            "trip/ü notes <b>.txt",
        ]
    );
    for (name, bytes) in &stored[..3] {
        assert!(unpacked[*name] == *bytes, "{name} differs in the zip");
    }

    // A selection across folders, with a bearer token: names relative to
    // the folder holding them all.
    let (code, head, body) = post_zip(
        &server,
        "/zip",
        Some(&alice),
        &["trip/photos/a.bin", "trip/ü notes <b>.txt"],
    )
    .await;
    assert_eq!(code, 200, "{head}");
    let zip = dir.path().join("chosen.zip");
    std::fs::write(&zip, &body).unwrap();
    let (names, unpacked) = check_zip(&zip);
    assert_eq!(names, vec!["photos/a.bin", "ü notes <b>.txt"]);
    assert!(unpacked["photos/a.bin"] == big);

    // A ticket opens only its own selection, in its own order.
    for other in [
        vec!["trip", "other.txt"],
        vec!["other.txt"],
        vec![],
        vec!["trip/"],
    ] {
        let (code, head, _) = post_zip(&server, &link.url, None, &other).await;
        assert_eq!(code, 403, "{other:?}: {head}");
    }
    let mut forged = link.url.clone();
    forged.pop();
    assert_eq!(post_zip(&server, &forged, None, &["trip"]).await.0, 401);
    assert_eq!(post_zip(&server, "/zip", None, &["trip"]).await.0, 401);

    // Names that are not there, or not names: a clear status up front.
    let err = auth
        .archive_link(ArchiveLinkRequest {
            paths: vec!["trip".into(), "nothing here".into()],
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
    let (code, _, body) = post_zip(&server, "/zip", Some(&alice), &["nothing here"]).await;
    assert_eq!(code, 404, "{}", String::from_utf8_lossy(&body));
    for bad in [vec![], vec!["../etc"], vec!["trip/photos/a.bin/"]] {
        let (code, _, body) = post_zip(&server, "/zip", Some(&alice), &bad).await;
        assert!(
            code == 400 || code == 404,
            "{bad:?}: {code} {}",
            String::from_utf8_lossy(&body)
        );
    }

    // Nobody else's files, by ticket or token.
    let bob = server.add_user("bob", "bob-password-1", false).await;
    let mut bobs = CofferAuthClient::new(server.channel_as(Some(&bob)).await);
    let err = bobs
        .archive_link(ArchiveLinkRequest {
            paths: vec!["trip".into()],
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    assert_eq!(
        post_zip(&server, "/zip", Some(&bob), &["trip"]).await.0,
        404
    );
}

/// Writes `bytes` to `file`, leaving holes where they are all zero, so a
/// synthetic archive of zeros takes no disk.
struct SparseWriter(std::fs::File, u64);

impl SparseWriter {
    fn put(&mut self, bytes: &[u8]) {
        use std::io::{Seek, SeekFrom, Write};
        if bytes.iter().all(|b| *b == 0) {
            self.0.seek(SeekFrom::Current(bytes.len() as i64)).unwrap();
        } else {
            self.0.write_all(bytes).unwrap();
        }
        self.1 += bytes.len() as u64;
    }

    fn close(self) -> u64 {
        self.0.set_len(self.1).unwrap();
        self.1
    }
}

#[tokio::test]
async fn an_archive_past_4_gib_and_65535_entries_is_valid_zip64() {
    use bytes::Bytes;
    use coffer_server::zip::{archive, Entry, Source, ZipError};
    use futures::StreamExt;
    const MIB: usize = 1 << 20;
    let zeros = Bytes::from(vec![0u8; MIB]);
    let big = 4 * 1024 + 5; // MiB: past 4 GiB
    let mut sources: Vec<Result<Source<ZipError>, ZipError>> = Vec::new();
    // More entries than 16 bits count...
    for i in 0..70_000u32 {
        sources.push(Ok(Source {
            entry: Entry {
                name: format!("many/{i:05}.txt"),
                size: 2,
                mtime: 1_700_000_000,
            },
            body: futures::stream::iter([Ok(Bytes::from_static(b"ok"))]).boxed(),
        }));
    }
    // ...an entry larger than 32 bits say...
    let z = zeros.clone();
    sources.push(Ok(Source {
        entry: Entry {
            name: "zeros.bin".into(),
            size: (big * MIB) as u64,
            mtime: 1_700_000_000,
        },
        body: futures::stream::iter((0..big).map(move |_| Ok(z.clone()))).boxed(),
    }));
    // ...and one that starts past 4 GiB.
    sources.push(Ok(Source {
        entry: Entry {
            name: "after.txt".into(),
            size: 5,
            mtime: 1_700_000_000,
        },
        body: futures::stream::iter([Ok(Bytes::from_static(b"after"))]).boxed(),
    }));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.zip");
    let mut out = SparseWriter(std::fs::File::create(&path).unwrap(), 0);
    let mut stream = std::pin::pin!(archive(futures::stream::iter(sources)));
    while let Some(piece) = stream.next().await {
        out.put(&piece.unwrap());
    }
    let len = out.close();
    assert!(len > 4 << 30, "{len}");

    let out = std::process::Command::new("unzip")
        .arg("-tq")
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "unzip -t: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let script = "import sys, zipfile, zlib\n\
                  z = zipfile.ZipFile(sys.argv[1])\n\
                  infos = z.infolist()\n\
                  assert len(infos) == 70002, len(infos)\n\
                  big = z.getinfo('zeros.bin')\n\
                  assert big.file_size == int(sys.argv[2]), big.file_size\n\
                  crc = 0\n\
                  with z.open(big) as f:\n\
                  \x20   while True:\n\
                  \x20       b = f.read(1 << 22)\n\
                  \x20       if not b: break\n\
                  \x20       crc = zlib.crc32(b, crc)\n\
                  assert crc == big.CRC\n\
                  after = z.getinfo('after.txt')\n\
                  assert after.header_offset > 1 << 32, after.header_offset\n\
                  assert z.read('after.txt') == b'after'\n\
                  assert z.read('many/69999.txt') == b'ok'\n\
                  print('ok')\n";
    let out = std::process::Command::new("python3")
        .args(["-c", script])
        .arg(&path)
        .arg((big * MIB).to_string())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "python zipfile: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
