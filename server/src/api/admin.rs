//! The `CofferAdmin` gRPC service: cluster status and "run a worker now".

use crate::status::Ops;
use crate::workers::runner::WorkerStatus as Status_;
use coffer_proto::pb::coffer_admin_server::CofferAdmin;
use coffer_proto::pb::*;
use tonic::{Request, Response, Status};

pub struct AdminApi {
    ops: Ops,
    /// When each worker was last run by hand: a manual pass is expensive
    /// (a full listing of every node, a scrub), so asking again within
    /// `Ops::manual_run_interval` is refused.
    last_manual: std::sync::Mutex<std::collections::HashMap<String, std::time::Instant>>,
}

impl AdminApi {
    pub fn new(ops: Ops) -> Self {
        Self {
            ops,
            last_manual: Default::default(),
        }
    }

    /// Takes the worker's manual-run slot, or says how long to wait.
    fn take_slot(&self, name: &str) -> Result<(), Status> {
        let now = std::time::Instant::now();
        let mut last = self.last_manual.lock().unwrap();
        if let Some(at) = last.get(name) {
            let since = now.duration_since(*at);
            if since < self.ops.manual_run_interval {
                let wait = self.ops.manual_run_interval - since;
                return Err(Status::resource_exhausted(format!(
                    "a manual {name} pass ran {:.1} s ago; ask again in {:.1} s",
                    since.as_secs_f64(),
                    wait.as_secs_f64()
                )));
            }
        }
        last.insert(name.to_string(), now);
        Ok(())
    }
}

fn worker(s: &Status_, leases: &[crate::meta::LeaseRow]) -> WorkerStatus {
    let lease = leases.iter().find(|l| l.name == s.name);
    WorkerStatus {
        lease_holder: lease.map(|l| l.holder.clone()).unwrap_or_default(),
        lease_expires: lease.map(|l| l.expires_at.clone()).unwrap_or_default(),
        name: s.name.clone(),
        state: if s.running { "running" } else { "idle" }.into(),
        last_outcome: s.last_outcome.clone(),
        passes: s.passes,
        last_pass_started: s.last_pass_started.clone(),
        last_pass_finished: s.last_pass_finished.clone(),
        last_report: s.last_report.clone(),
        errors: s.errors,
        last_error: s.last_error.clone(),
    }
}

#[tonic::async_trait]
impl CofferAdmin for AdminApi {
    async fn cluster_status(
        &self,
        req: Request<ClusterStatusRequest>,
    ) -> Result<Response<ClusterStatusResponse>, Status> {
        super::guard::admin(&req)?;
        let r = self
            .ops
            .report()
            .await
            .map_err(|e| Status::internal(e.to_string()))?;
        let accounts = self
            .ops
            .accounts()
            .await
            .map_err(|e| Status::internal(e.to_string()))?;
        Ok(Response::new(ClusterStatusResponse {
            nodes: r
                .nodes
                .iter()
                .map(|n| NodeStatus {
                    id: n.id.clone(),
                    up: n.up,
                    latency_ms: n.latency_ms,
                    chunks: n.chunks,
                    bytes: n.bytes,
                    failures: n.failures,
                })
                .collect(),
            replication_factor: r.replication as u32,
            write_quorum: r.write_quorum as u32,
            chunks: r.chunks,
            under_replicated_chunks: r.under_replicated,
            workers: r.workers.iter().map(|w| worker(w, &r.leases)).collect(),
            metadata_backend: r.backend.to_string(),
            accounts: accounts
                .into_iter()
                .map(|a| AccountUsage {
                    name: a.name,
                    role: a.role.to_string(),
                    used_bytes: a.usage.used,
                    quota_bytes: a.usage.quota.unwrap_or(0),
                })
                .collect(),
            snapshot: r.snapshot.map(|s| {
                let last = s.last.unwrap_or_default();
                SnapshotStatus {
                    last_taken_at: last.taken_at,
                    last_bytes: last.bytes,
                    last_database_bytes: last.database_bytes,
                    last_nodes: last.nodes,
                    of_nodes: last.of_nodes,
                    last_key: last.key,
                    failures: s.failures,
                    last_error: s.last_error,
                    last_error_at: s.last_error_at,
                }
            }),
        }))
    }

    async fn run_worker(
        &self,
        req: Request<RunWorkerRequest>,
    ) -> Result<Response<RunWorkerResponse>, Status> {
        super::guard::admin(&req)?;
        let r = req.into_inner();
        if r.name == "snapshot" && self.ops.meta.backend() != "sqlite" {
            // The backend's own answer says which tools do the job.
            let why = match self.ops.meta.snapshot_into(std::path::Path::new("")).await {
                Err(e) => e.to_string(),
                Ok(()) => "this server takes no snapshots".into(),
            };
            return Err(Status::failed_precondition(why));
        }
        let Some(handle) = self.ops.workers.get(&r.name) else {
            let names: Vec<String> = self
                .ops
                .workers
                .all()
                .iter()
                .map(|w| w.status().name)
                .collect();
            return Err(Status::not_found(format!(
                "no worker {:?}; workers: {}",
                r.name,
                names.join(", ")
            )));
        };
        self.take_slot(&r.name)?;
        let status = handle
            .run_now(r.wait)
            .await
            .ok_or_else(|| Status::unavailable("the server is shutting down"))?;
        // Who holds the lease is worth showing, not worth failing for.
        let leases = self.ops.meta.leases().await.unwrap_or_default();
        Ok(Response::new(RunWorkerResponse {
            status: Some(worker(&status, &leases)),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::caller::Caller;
    use crate::cluster::{Cluster, ClusterConfig};
    use crate::meta::{Meta, Role};
    use std::sync::Arc;

    /// Calls reaching the service without the guard (a wiring mistake)
    /// are still refused unless an admin makes them.
    #[tokio::test]
    async fn only_admins_get_through_even_past_the_guard() {
        let meta: Meta = Arc::new(crate::meta::sqlite::open_in_memory().unwrap());
        let dir = tempfile::tempdir().unwrap();
        let node: Arc<dyn crate::store::BlobStore> = Arc::new(
            crate::store::local::LocalStore::new("n0".to_string(), dir.path().join("n0")),
        );
        let (cluster, _events) =
            Cluster::new(vec![("n0".into(), node)], ClusterConfig::for_nodes(1)).unwrap();
        let api = AdminApi::new(Ops {
            meta,
            cluster: Arc::new(cluster),
            workers: Default::default(),
            snapshots: Default::default(),
            manual_run_interval: std::time::Duration::ZERO,
        });
        let as_ = |role: Option<Role>| {
            let mut req = Request::new(RunWorkerRequest {
                name: "gc".into(),
                wait: false,
            });
            if let Some(role) = role {
                req.extensions_mut().insert(Caller {
                    role,
                    name: "someone".into(),
                    ..Caller::anyone()
                });
            }
            req
        };
        let err = api.run_worker(as_(None)).await.unwrap_err();
        assert_eq!(err.code(), tonic::Code::Unauthenticated, "{err:?}");
        let err = api.run_worker(as_(Some(Role::User))).await.unwrap_err();
        assert_eq!(err.code(), tonic::Code::PermissionDenied, "{err:?}");
        let mut req = Request::new(ClusterStatusRequest {});
        req.extensions_mut().insert(Caller {
            role: Role::User,
            ..Caller::anyone()
        });
        let err = api.cluster_status(req).await.unwrap_err();
        assert_eq!(err.code(), tonic::Code::PermissionDenied, "{err:?}");
        // An admin passes the check (the worker is unknown here).
        let err = api.run_worker(as_(Some(Role::Admin))).await.unwrap_err();
        assert_ne!(err.code(), tonic::Code::PermissionDenied, "{err:?}");
    }
}
