//! The nemesis: at random times, from the run's seed, it breaks things
//! while the clients work, several at once: it freezes, kills, restarts
//! and wipes Garage nodes, kills coffer-servers, flips bytes in stored
//! objects, runs gc, repair and scrub on either server, cuts or slows the
//! links between the servers and a node, and restarts PostgreSQL.
//!
//! The fault model it stays within, the one Coffer promises to survive:
//! stored bytes are destroyed (wiped, flipped) on one node only, the
//! run's victim, so every chunk acknowledged on W = 2 nodes keeps a good
//! copy; everything else (frozen, killed, cut off, slow) comes back.

use super::cluster::{NodeState, SoakCluster};
use super::history::History;
use crate::proxy::Fault;
use coffer_proto::pb::coffer_admin_client::CofferAdminClient;
use coffer_proto::pb::RunWorkerRequest;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A fault to end at a time.
enum Heal {
    Resume(usize),
    Restart(usize),
    Link(usize),
    Server(usize),
}

/// Injects faults into `cluster` until `until`, then heals everything.
pub async fn run(
    seed: u64,
    cluster: &mut SoakCluster,
    until: Instant,
    history: Arc<History>,
) -> anyhow::Result<()> {
    let mut rng = StdRng::seed_from_u64(seed ^ 0x006e_656d_6573_6973);
    let victim = rng.random_range(0..cluster.nodes.len());
    history.event("victim", format!("node {victim} may lose its data"));
    let mut pending: Vec<(Instant, Heal)> = Vec::new();
    while Instant::now() < until {
        let wait = Duration::from_millis(rng.random_range(500..3000));
        tokio::time::sleep(wait.min(until.saturating_duration_since(Instant::now()))).await;
        cluster.revive_crashed(&history).await?;
        // End the faults that are due.
        let now = Instant::now();
        let (due, later): (Vec<_>, Vec<_>) = pending.into_iter().partition(|(at, _)| *at <= now);
        pending = later;
        for (_, heal) in due {
            end(cluster, heal, &history).await?;
        }
        if Instant::now() >= until {
            break;
        }
        let lasting = Instant::now() + Duration::from_millis(rng.random_range(1000..8000));
        let node = rng.random_range(0..cluster.nodes.len());
        let node_up = cluster.node_state[node] == NodeState::Up
            && cluster.proxies[node].fault() == Fault::None;
        let down = cluster
            .node_state
            .iter()
            .filter(|s| **s != NodeState::Up)
            .count();
        let server = rng.random_range(0..cluster.servers.len());
        match rng.random_range(0..100) {
            0..12 if node_up && down < 2 => {
                cluster.nodes[node].pause();
                cluster.node_state[node] = NodeState::Frozen;
                history.fault("freeze node", format!("node {node}"));
                pending.push((lasting, Heal::Resume(node)));
            }
            12..22 if node_up && down < 2 => {
                cluster.nodes[node].kill().await;
                cluster.node_state[node] = NodeState::Down;
                history.fault("kill node", format!("node {node}"));
                pending.push((lasting, Heal::Restart(node)));
            }
            22..27 if cluster.node_state[victim] == NodeState::Up => {
                history.fault("wipe node", format!("node {victim}"));
                cluster.nodes[victim].wipe_and_restart().await?;
            }
            27..35 if cluster.node_state[victim] == NodeState::Up => {
                flip(cluster, victim, &mut rng, &history).await;
            }
            35..45 if cluster.server_up.iter().all(|u| *u) => {
                cluster.servers[server].kill().await;
                cluster.server_up[server] = false;
                history.fault("kill server", format!("server {server}"));
                let back = Instant::now() + Duration::from_millis(rng.random_range(500..4000));
                pending.push((back, Heal::Server(server)));
            }
            45..70 if cluster.server_up[server] => {
                let name = ["gc", "repair", "scrub"][rng.random_range(0..3)];
                history.fault("run worker", format!("{name} on server {server}"));
                let addr = cluster.servers[server].addr().to_string();
                tokio::spawn(async move {
                    let Ok(ch) = super::workload::channel(&addr) else {
                        return;
                    };
                    let mut admin = CofferAdminClient::new(ch);
                    let run = admin.run_worker(RunWorkerRequest {
                        name: name.into(),
                        wait: false,
                    });
                    tokio::time::timeout(Duration::from_secs(30), run)
                        .await
                        .ok();
                });
            }
            70..80 if node_up && down < 2 => {
                cluster.proxies[node].set(Fault::Cut);
                history.fault("cut link", format!("servers to node {node}"));
                pending.push((lasting, Heal::Link(node)));
            }
            80..92 if node_up => {
                let delay = Duration::from_millis(rng.random_range(50..4000));
                cluster.proxies[node].set(Fault::Delay(delay));
                history.fault("slow link", format!("servers to node {node}: {delay:?}"));
                pending.push((lasting, Heal::Link(node)));
            }
            92..100 => {
                history.fault("restart postgres", String::new());
                tokio::task::block_in_place(|| cluster.pg.restart())?;
            }
            _ => {}
        }
    }
    for (_, heal) in pending {
        end(cluster, heal, &history).await?;
    }
    history.event("heal", "every fault ended".into());
    cluster.revive_crashed(&history).await?;
    cluster.heal().await
}

async fn end(cluster: &mut SoakCluster, heal: Heal, history: &History) -> anyhow::Result<()> {
    match heal {
        Heal::Resume(n) => {
            cluster.nodes[n].resume();
            cluster.node_state[n] = NodeState::Up;
            history.event("resume node", format!("node {n}"));
        }
        Heal::Restart(n) => {
            cluster.nodes[n].restart().await?;
            cluster.node_state[n] = NodeState::Up;
            history.event("restart node", format!("node {n}"));
        }
        Heal::Link(n) => {
            cluster.proxies[n].set(Fault::None);
            history.event("heal link", format!("servers to node {n}"));
        }
        Heal::Server(s) => {
            cluster.servers[s].restart().await?;
            cluster.server_up[s] = true;
            history.event("restart server", format!("server {s}"));
        }
    }
    Ok(())
}

/// Flips one byte of one stored chunk on `node`.
async fn flip(cluster: &SoakCluster, node: usize, rng: &mut StdRng, history: &History) {
    let n = &cluster.nodes[node];
    let Ok(keys) = n.list_keys("chunks/").await else {
        return;
    };
    if keys.is_empty() {
        return;
    }
    let key = &keys[rng.random_range(0..keys.len())];
    let Ok(mut data) = n.get(key).await else {
        return;
    };
    if data.is_empty() {
        return;
    }
    let at = rng.random_range(0..data.len());
    data[at] ^= 0x40;
    if n.put(key, data).await.is_ok() {
        history.fault("flip byte", format!("node {node}: {key} at {at}"));
    }
}
