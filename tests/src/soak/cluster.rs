//! The cluster under test, all real processes on loopback: two
//! coffer-servers on one PostgreSQL, four Garage nodes (three copies of
//! every chunk, a write quorum of two), each node behind a fault-injecting
//! proxy that both servers reach it through.

use crate::garage::{start_cluster, GarageNode};
use crate::postgres::PgCluster;
use crate::proxy::{Fault, Proxy};
use crate::server::{Server, ServerOpts};
use anyhow::Context;
use std::time::Duration;

/// Nodes, copies a chunk, and the write quorum.
pub const NODES: usize = 4;
pub const REPLICATION: usize = 3;
pub const WRITE_QUORUM: usize = 2;
pub const SERVERS: usize = 2;

/// The history's name for a server that exited by itself.
pub const CRASH: &str = "server crashed";

/// What a node is going through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeState {
    Up,
    Frozen,
    Down,
}

pub struct SoakCluster {
    pub pg: PgCluster,
    pub nodes: Vec<GarageNode>,
    pub node_state: Vec<NodeState>,
    pub proxies: Vec<Proxy>,
    pub servers: Vec<Server>,
    pub server_up: Vec<bool>,
}

impl SoakCluster {
    /// Starts the cluster; servers keep the newest `keep_versions` versions
    /// of each file (gc removes older ones), so a long soak's data stays
    /// bounded and retention runs under faults too.
    pub async fn start(keep_versions: u32) -> anyhow::Result<SoakCluster> {
        let pg = tokio::task::spawn_blocking(PgCluster::start_crash_safe).await??;
        let url = pg.database().await?;
        let nodes = start_cluster(NODES).await?;
        let mut proxies = Vec::new();
        for n in &nodes {
            let upstream = n
                .endpoint()
                .trim_start_matches("http://")
                .parse()
                .context("a node's address")?;
            proxies.push(Proxy::start(upstream).await?);
        }
        let mut opts = ServerOpts::on_garage(&nodes)
            .process()
            .without_auth()
            .with("COFFER_DATABASE_URL", &url)
            .with("COFFER_REPLICATION", &REPLICATION.to_string())
            .with("COFFER_WRITE_QUORUM", &WRITE_QUORUM.to_string())
            // Gc collects at once: what protects uploads is the holds.
            .with("COFFER_GC_GRACE_SECS", "0")
            // Small chunks in packs: the faults meet packed data.
            .with("COFFER_PACKS", "true")
            .with("COFFER_KEEP_VERSIONS", &keep_versions.to_string())
            .with("COFFER_SCRUB_RATE_MIB", "0")
            // A killed server's worker leases pass on within seconds.
            .with("COFFER_LEASE_SECS", "5")
            .with("COFFER_REPAIR_RATE_MIB", "0")
            .with("RUST_LOG", "info,coffer_server=debug");
        for (i, p) in proxies.iter().enumerate() {
            let key = format!("MINIO_ENDPOINT_{}", i + 1);
            opts = opts.without(&key).with(&key, &p.endpoint());
        }
        let mut servers = Vec::new();
        for _ in 0..SERVERS {
            // A fixed port: clients reach a restarted server where it was.
            let port = crate::ports::free_port()?;
            servers.push(Server::start(opts.clone().with("PORT", &port.to_string())).await?);
        }
        Ok(SoakCluster {
            pg,
            node_state: vec![NodeState::Up; nodes.len()],
            nodes,
            proxies,
            server_up: vec![true; servers.len()],
            servers,
        })
    }

    /// Starts again every server whose process ended by itself (a crash:
    /// the nemesis only kills what it marks down), saying so in the
    /// history.
    pub async fn revive_crashed(
        &mut self,
        history: &super::history::History,
    ) -> anyhow::Result<()> {
        for (i, s) in self.servers.iter_mut().enumerate() {
            if !self.server_up[i] {
                continue;
            }
            if let Some(status) = s.exited() {
                let tail: Vec<String> = s
                    .log_tail()
                    .lines()
                    .rev()
                    .take(5)
                    .map(String::from)
                    .collect();
                history.event(
                    CRASH,
                    format!("server {i} exited by itself ({status}); last log lines: {tail:?}"),
                );
                s.restart().await?;
            }
        }
        Ok(())
    }

    /// The servers' addresses (`http://…`), fixed for the whole soak.
    pub fn addrs(&self) -> Vec<String> {
        self.servers.iter().map(|s| s.addr().to_string()).collect()
    }

    /// Ends every fault: nodes resumed or started, proxies forwarding,
    /// servers running.
    pub async fn heal(&mut self) -> anyhow::Result<()> {
        for (i, n) in self.nodes.iter_mut().enumerate() {
            match self.node_state[i] {
                NodeState::Up => {}
                NodeState::Frozen => n.resume(),
                NodeState::Down => n.restart().await?,
            }
            self.node_state[i] = NodeState::Up;
        }
        for p in &self.proxies {
            p.set(Fault::None);
        }
        self.pg.thaw();
        for (i, s) in self.servers.iter_mut().enumerate() {
            if !self.server_up[i] {
                s.restart().await?;
                self.server_up[i] = true;
            }
        }
        // Let both servers find every node up again.
        tokio::time::sleep(Duration::from_secs(2)).await;
        Ok(())
    }

    /// The copies of every chunk on the nodes, by chunk id: an object
    /// `chunks/<id>` is a copy of chunk `id`, and a pack (read by its own
    /// trailing index, as a restore would) a copy of each chunk in it.
    /// Counted from the nodes alone, not from Coffer's metadata. Also
    /// returns the chunks found inside packs.
    pub async fn copies(&self) -> anyhow::Result<Copies> {
        let mut copies = Copies::default();
        for n in &self.nodes {
            // A chunk both alone and in a pack on one node is one copy.
            let mut here = std::collections::HashSet::new();
            for (id, inside) in objects(n).await? {
                copies.packed.extend(inside.iter().cloned());
                here.extend(inside);
                here.insert(id);
            }
            for id in here {
                *copies.count.entry(id).or_insert(0) += 1;
            }
        }
        Ok(copies)
    }

    /// Deletes every copy of chunk `id` from every node, and every pack
    /// that holds it: the fault a broken store would make, for showing
    /// that the checker sees it.
    pub async fn drop_chunk(&self, id: &str) -> anyhow::Result<()> {
        for n in &self.nodes {
            for (object, inside) in objects(n).await? {
                if object == id || inside.iter().any(|c| c == id) {
                    n.delete(&format!("chunks/{}/{object}", &object[..2]))
                        .await?;
                }
            }
        }
        Ok(())
    }

    /// Writes logs of every process into `dir`.
    pub fn save_logs(&self, dir: &std::path::Path) {
        for (i, s) in self.servers.iter().enumerate() {
            std::fs::copy(s.log_path(), dir.join(format!("server-{i}.log"))).ok();
        }
        for (i, n) in self.nodes.iter().enumerate() {
            std::fs::copy(n.log_path(), dir.join(format!("garage-{i}.log"))).ok();
        }
        std::fs::write(dir.join("postgres.log"), self.pg.log_tail()).ok();
    }
}

/// Copies of each chunk on the nodes, by chunk id, and the chunks seen
/// inside a pack.
#[derive(Debug, Default)]
pub struct Copies {
    pub count: std::collections::HashMap<String, usize>,
    pub packed: std::collections::HashSet<String>,
}

/// Every object under `chunks/` on node `n`: its id, and if it is a pack
/// whose footer and index read back sound, the ids of the chunks its
/// index lists (else none).
async fn objects(n: &GarageNode) -> anyhow::Result<Vec<(String, Vec<String>)>> {
    use coffer_server::packs::format::{parse_footer, parse_index, FOOTER_LEN};
    let mut out = Vec::new();
    for (key, size) in n.list_sized("chunks/").await? {
        let id = key.rsplit('/').next().unwrap_or_default().to_string();
        let mut inside = Vec::new();
        if size >= FOOTER_LEN as u64 {
            let tail = n.get_range(&key, size - FOOTER_LEN as u64..size).await?;
            if let Ok(footer) = parse_footer(&tail) {
                if let Ok(range) = footer.index_range(size) {
                    let index = n.get_range(&key, range).await?;
                    if let Ok(entries) = parse_index(&footer, &index, size) {
                        inside = entries.iter().map(|e| e.id_hex()).collect();
                    }
                }
            }
        }
        out.push((id, inside));
    }
    Ok(out)
}
