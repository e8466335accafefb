//! A client generated only from the tutorial's original `storage.proto`
//! works unchanged against Coffer.

use coffer_tests::data::pattern;
use coffer_tests::seed::{FileDownloadRequest, FileMetadataRequest, FileRequest, MetadataResponse};
use coffer_tests::server::Conn;
use coffer_tests::server::{Server, ServerOpts};
use tonic::metadata::MetadataValue;

type SeedClient = coffer_tests::seed::file_storage_client::FileStorageClient<Conn>;

fn is_rfc3339(s: &str) -> bool {
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).is_ok()
}

async fn download(c: &mut SeedClient, name: &str) -> Vec<u8> {
    let mut stream = c
        .download_file(FileDownloadRequest {
            file_name: name.into(),
        })
        .await
        .unwrap()
        .into_inner();
    let mut back = Vec::new();
    while let Some(m) = stream.message().await.unwrap() {
        back.extend_from_slice(&m.file_data);
    }
    back
}

async fn metadata(c: &mut SeedClient, name: &str) -> MetadataResponse {
    c.get_metadata(FileMetadataRequest {
        file_name: name.into(),
    })
    .await
    .unwrap()
    .into_inner()
}

/// One message without a name; only the `filename` header names the file.
async fn upload_by_header(c: &mut SeedClient, name: &'static str, data: &[u8]) {
    let msgs = vec![FileRequest {
        file_data: data.to_vec(),
        file_name: String::new(),
    }];
    let mut req = tonic::Request::new(tokio_stream::iter(msgs));
    req.metadata_mut()
        .insert("filename", MetadataValue::from_static(name));
    c.upload_file(req).await.unwrap();
}

async fn tutorial_client_uploads_downloads_and_reads_metadata_with(opts: ServerOpts) {
    let server = Server::start(opts).await.unwrap();
    let mut c = server.seed_client().await;
    let data = pattern(3 * 1024 * 1024 + 17, 5);

    // fileName in every message, as the tutorial's client sends it.
    let msgs: Vec<FileRequest> = data
        .chunks(64 * 1024)
        .map(|b| FileRequest {
            file_data: b.to_vec(),
            file_name: "notes/tutorial.txt".into(),
        })
        .collect();
    let resp = c
        .upload_file(tokio_stream::iter(msgs))
        .await
        .unwrap()
        .into_inner();
    assert!(!resp.message.is_empty());

    assert!(
        download(&mut c, "notes/tutorial.txt").await == data,
        "downloaded bytes differ"
    );

    let md = metadata(&mut c, "notes/tutorial.txt").await;
    assert_eq!(md.file_name, "notes/tutorial.txt");
    assert_eq!(md.version, "1");
    assert!(is_rfc3339(&md.upload_time), "{}", md.upload_time);

    // Second upload: only a `filename` header names the file.
    upload_by_header(&mut c, "notes/tutorial.txt", b"second").await;
    let md = metadata(&mut c, "notes/tutorial.txt").await;
    assert_eq!(md.version, "2");
    assert!(is_rfc3339(&md.upload_time));

    // A header-only upload of a new file.
    upload_by_header(&mut c, "header-only.txt", b"by header").await;
    assert_eq!(download(&mut c, "header-only.txt").await, b"by header");
    assert_eq!(download(&mut c, "notes/tutorial.txt").await, b"second");
}

#[tokio::test]
async fn tutorial_client_uploads_downloads_and_reads_metadata() {
    tutorial_client_uploads_downloads_and_reads_metadata_with(ServerOpts::embedded()).await
}

#[tokio::test]
async fn tutorial_client_uploads_downloads_and_reads_metadata_on_postgres() {
    tutorial_client_uploads_downloads_and_reads_metadata_with(
        ServerOpts::embedded().on_postgres().await,
    )
    .await
}

/// Lists the services through server reflection, v1 or v1alpha, as generic
/// gRPC tools do, sending `authorization` (if any) as given.
async fn reflected_services(
    server: &Server,
    v1alpha: bool,
    authorization: Option<&str>,
) -> Vec<String> {
    use tonic_reflection::pb::{v1, v1alpha as alpha};
    let channel = server.channel_with_header(authorization).await;
    if v1alpha {
        let mut c = alpha::server_reflection_client::ServerReflectionClient::new(channel);
        let req = alpha::ServerReflectionRequest {
            host: String::new(),
            message_request: Some(
                alpha::server_reflection_request::MessageRequest::ListServices(String::new()),
            ),
        };
        let mut answers = c
            .server_reflection_info(tokio_stream::iter([req]))
            .await
            .unwrap()
            .into_inner();
        match answers.message().await.unwrap().unwrap().message_response {
            Some(alpha::server_reflection_response::MessageResponse::ListServicesResponse(l)) => {
                l.service.into_iter().map(|s| s.name).collect()
            }
            other => panic!("not a service list: {other:?}"),
        }
    } else {
        let mut c = v1::server_reflection_client::ServerReflectionClient::new(channel);
        let req = v1::ServerReflectionRequest {
            host: String::new(),
            message_request: Some(v1::server_reflection_request::MessageRequest::ListServices(
                String::new(),
            )),
        };
        let mut answers = c
            .server_reflection_info(tokio_stream::iter([req]))
            .await
            .unwrap()
            .into_inner();
        match answers.message().await.unwrap().unwrap().message_response {
            Some(v1::server_reflection_response::MessageResponse::ListServicesResponse(l)) => {
                l.service.into_iter().map(|s| s.name).collect()
            }
            other => panic!("not a service list: {other:?}"),
        }
    }
}

/// Reflection answers anyone, as grpcurl needs before its first call (a
/// login): it tells nothing that the public proto does not. A token, even
/// a forged one, changes nothing.
#[tokio::test]
async fn reflection_lists_the_services_over_v1_and_v1alpha_to_anyone() {
    let server = Server::start(ServerOpts::embedded()).await.unwrap();
    let token = format!("Bearer {}", server.token().unwrap_or_default());
    for (v1alpha, authorization) in [
        (false, None),
        (true, None),
        (false, Some(token.as_str())),
        (true, Some("Bearer forged.token.here")),
    ] {
        let names = reflected_services(&server, v1alpha, authorization).await;
        for want in [
            "FileStorage",
            "CofferAdmin",
            "CofferAuth",
            "CofferShare",
            "grpc.health.v1.Health",
        ] {
            assert!(
                names.iter().any(|n| n == want),
                "v1alpha={v1alpha}: {want} missing from {names:?}"
            );
        }
    }
}
