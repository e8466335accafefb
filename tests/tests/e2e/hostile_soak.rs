//! The "hostile clients" soak: while strangers attack one server at once
//! (400 concurrent bad logins, 4,000 silent connections, 64 oversized user
//! names, 300 slow share-link readers and 64 quota-busting sessions), a
//! well-behaved client logs in, uploads and downloads 20 files, and the
//! server stays under 1 GiB of memory. It prints its figures for
//! RELIABILITY.md.

use coffer_proto::pb::coffer_auth_client::CofferAuthClient;
use coffer_proto::pb::coffer_share_client::CofferShareClient;
use coffer_proto::pb::file_storage_client::FileStorageClient;
use coffer_proto::pb::{CreateShareLinkRequest, LoginRequest};
use coffer_tests::data::{download, pattern, session_plan, upload_bytes};
use coffer_tests::server::{get_head, proc_bytes, Bearer, Server, ServerOpts};
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::AsyncReadExt;
use tonic::service::interceptor::InterceptedService;
use tonic::Code;

const GIB: u64 = 1 << 30;

/// The `n`th of many client hosts, in 127.x.y.z by `net`.
fn host(net: u8, n: u32) -> IpAddr {
    IpAddr::from([127, net, (n / 250) as u8, (n % 250) as u8 + 1])
}

async fn connect_from(addr: SocketAddr, from: IpAddr) -> std::io::Result<tokio::net::TcpStream> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(from, 0))?;
    socket.connect(addr).await
}

fn tally(counts: &mut BTreeMap<String, u32>, what: impl Into<String>) {
    *counts.entry(what.into()).or_default() += 1;
}

#[tokio::test]
async fn a_well_behaved_client_is_served_while_strangers_attack() {
    let server = Server::start(ServerOpts::embedded().process())
        .await
        .unwrap();
    let pid = server.pid().expect("a process");
    let mut admin = server.client().await;
    upload_bytes(&mut admin, "big.bin", &pattern(8 << 20, 1))
        .await
        .unwrap();
    let link = CofferShareClient::new(server.channel_as(server.token()).await)
        .create_share_link(CreateShareLinkRequest {
            file_name: "big.bin".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mallory = server
        .add_user("mallory", "mallory-password-1", false)
        .await;
    let out = server.command(&["user", "quota", "mallory", "10MB"]).await;
    assert!(out.success, "{out:?}");
    server.add_user("carol", "carol-password-1", false).await;
    let idle_rss = proc_bytes(pid, "VmRSS:");

    // Memory, sampled through the whole attack.
    let stop = Arc::new(AtomicBool::new(false));
    let peak = Arc::new(AtomicU64::new(0));
    let sampler = {
        let (stop, peak) = (stop.clone(), peak.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                peak.fetch_max(proc_bytes(pid, "VmRSS:"), Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };
    // Every attack is set up first (connections made), then all start at
    // once, with carol.
    let (go, gate) = tokio::sync::watch::channel(false);
    let mut attacks = tokio::task::JoinSet::new();

    // 400 concurrent wrong guesses at carol's password, one per address.
    for i in 0..400u32 {
        let channel = server.channel_from(Some(host(3, i))).await;
        let mut gate = gate.clone();
        attacks.spawn(async move {
            gate.wait_for(|open| *open).await.unwrap();
            let r = CofferAuthClient::new(channel)
                .login(LoginRequest {
                    username: "carol".into(),
                    password: format!("guess {i}"),
                })
                .await;
            ("bad login", r.map(drop).map_err(|e| e.code()))
        });
    }
    // 64 user names of 3 MiB, each different.
    let huge = "x".repeat(3 << 20);
    for i in 0..64u32 {
        let channel = server.channel_from(Some(host(4, i))).await;
        let name = format!("{i}{huge}");
        let mut gate = gate.clone();
        attacks.spawn(async move {
            gate.wait_for(|open| *open).await.unwrap();
            let r = CofferAuthClient::new(channel)
                .max_encoding_message_size(8 << 20)
                .login(LoginRequest {
                    username: name,
                    password: "wrong".into(),
                })
                .await;
            ("huge name", r.map(drop).map_err(|e| e.code()))
        });
    }
    // 300 share-link readers that take the response head and then read
    // nothing more.
    let held_reads = Arc::new(tokio::sync::Mutex::new(Vec::new()));
    for i in 0..300u32 {
        let (url, from) = (link.url.clone(), host(5, i));
        let target = server.addr().trim_start_matches("http://").parse().unwrap();
        let conn = connect_from(target, from).await.unwrap();
        let held = held_reads.clone();
        let mut gate = gate.clone();
        attacks.spawn(async move {
            gate.wait_for(|open| *open).await.unwrap();
            let mut conn = conn;
            let Ok((code, _)) = get_head(&mut conn, &url, &[]).await else {
                return ("slow reader", Err(Code::Aborted));
            };
            held.lock().await.push(conn);
            match code {
                200 => ("slow reader", Ok(())),
                429 => ("slow reader", Err(Code::ResourceExhausted)),
                503 => ("slow reader", Err(Code::Unavailable)),
                _ => ("slow reader", Err(Code::Unknown)),
            }
        });
    }
    // 64 sessions of 6 MB each against mallory's quota of 10 MB.
    for i in 0..64u64 {
        let channel = InterceptedService::new(
            server.channel_from(Some(host(6, i as u32))).await,
            Bearer::new(Some(&mallory)),
        );
        let mut gate = gate.clone();
        attacks.spawn(async move {
            gate.wait_for(|open| *open).await.unwrap();
            let (plan, _) = session_plan(&format!("bust{i}.bin"), &pattern(6_000_000, 100 + i));
            let r = FileStorageClient::new(channel).start_upload(plan).await;
            ("quota session", r.map(drop).map_err(|e| e.code()))
        });
    }

    // Meanwhile, carol logs in from her own address, uploads 20 files
    // and downloads them again. Like any good client, she tries again
    // (up to a minute) when told the server is busy.
    let channel = server
        .channel_from(Some(IpAddr::from([127, 0, 0, 250])))
        .await;
    // Go: the attacks, and 4,000 connections that never send a byte (200
    // per address), opened as fast as they connect.
    let target: SocketAddr = server.addr().trim_start_matches("http://").parse().unwrap();
    go.send(true).unwrap();
    let started = Instant::now();
    let silent = tokio::spawn(async move {
        let mut conns = Vec::new();
        for i in 0..4000u32 {
            let from = IpAddr::from([127, 0, 2 + (i / 200) as u8, 1]);
            conns.push(connect_from(target, from).await.unwrap());
        }
        conns
    });
    let good_started = Instant::now();
    let mut auth = CofferAuthClient::new(channel.clone());
    let mut tries = 0;
    let token = loop {
        tries += 1;
        match auth
            .login(LoginRequest {
                username: "carol".into(),
                password: "carol-password-1".into(),
            })
            .await
        {
            Ok(r) => break r.into_inner().access_token,
            Err(e) if e.code() == Code::Unavailable && tries < 60 => {
                tokio::time::sleep(Duration::from_secs(1)).await
            }
            Err(e) => panic!("carol could not log in after {tries} tries: {e:?}"),
        }
    };
    let login_secs = good_started.elapsed().as_secs_f64();
    let mut carol =
        FileStorageClient::new(InterceptedService::new(channel, Bearer::new(Some(&token))));
    for i in 0..20u64 {
        let data = pattern(50_000 * (i as usize + 1), 1000 + i);
        upload_bytes(&mut carol, &format!("carol/{i}.bin"), &data)
            .await
            .unwrap_or_else(|e| panic!("carol's upload {i}: {e:?}"));
    }
    for i in 0..20u64 {
        let data = pattern(50_000 * (i as usize + 1), 1000 + i);
        let got = download(&mut carol, &format!("carol/{i}.bin"), 0)
            .await
            .unwrap_or_else(|e| panic!("carol's download {i}: {e:?}"));
        assert!(got == data, "carol's file {i} came back different");
    }
    let good_secs = good_started.elapsed().as_secs_f64();

    // The attacks end (refused, or held until we let go).
    let mut outcomes = BTreeMap::new();
    while let Some(r) = tokio::time::timeout(Duration::from_secs(300), attacks.join_next())
        .await
        .expect("an attack was still running after 5 minutes")
    {
        let (what, r) = r.unwrap();
        tally(
            &mut outcomes,
            match r {
                Ok(()) => format!("{what}: served"),
                Err(code) => format!("{what}: {code:?}"),
            },
        );
    }
    let mut silent = silent.await.unwrap();
    let silent_closed = {
        let mut closed = 0;
        for c in &mut silent {
            let mut b = [0u8; 1];
            if let Ok(Ok(0) | Err(_)) =
                tokio::time::timeout(Duration::from_millis(1), c.read(&mut b)).await
            {
                closed += 1;
            }
        }
        closed
    };
    stop.store(true, Ordering::SeqCst);
    sampler.await.unwrap();
    let peak = peak.load(Ordering::SeqCst);
    println!(
        "hostile clients soak: idle RSS {} MiB, peak RSS {} MiB; carol logged in after {login_secs:.1} s \
         ({tries} tries) and moved 20 files both ways in {good_secs:.1} s; the attack ran {:.1} s; \
         {silent_closed} of 4000 silent connections closed by the server by the end; outcomes {outcomes:?}",
        idle_rss >> 20,
        peak >> 20,
        started.elapsed().as_secs_f64(),
    );
    assert!(peak < GIB, "the server peaked at {} MiB", peak >> 20);
    // Every stranger met a limit: no wrong guess got in, mallory's
    // sessions held at most one 6 MB reservation, and one share link did
    // not take more than its share of downloads.
    assert_eq!(outcomes.get("bad login: served"), None, "{outcomes:?}");
    assert_eq!(outcomes.get("huge name: served"), None, "{outcomes:?}");
    assert!(
        outcomes.get("quota session: served").copied().unwrap_or(0) <= 1,
        "{outcomes:?}"
    );
    assert!(
        outcomes.get("slow reader: served").copied().unwrap_or(0) <= 32,
        "{outcomes:?}"
    );
    drop(held_reads);
    drop(silent);
}
