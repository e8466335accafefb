//! The operator view, for admins: each node's health, chunks and bytes,
//! replication debt and repair, the workers' last runs and outcomes,
//! metadata snapshots, and every account's use, drawn as bars and small
//! time series, refreshed from `CofferAdmin/ClusterStatus` every few
//! seconds while it is open.

use crate::api;
use crate::Banner;
use coffer_client::format::human_size;
use coffer_proto::pb::ClusterStatusResponse;
use leptos::prelude::*;
use leptos::task::spawn_local;
use std::collections::VecDeque;

/// How often the view asks again.
const EVERY_MS: u32 = 3000;
/// Samples a series keeps (a few minutes at [`EVERY_MS`]).
const KEPT: usize = 60;

/// Whether the view is showing; provided to the header's toggle.
#[derive(Clone, Copy)]
pub struct Operator(pub RwSignal<bool>);

/// The header's button, for admins only.
#[component]
pub fn Toggle() -> impl IntoView {
    let open = expect_context::<Operator>().0;
    view! {
        <button class="link" data-testid="operator-toggle"
            aria-expanded=move || open.get().to_string()
            on:click=move |_| open.update(|o| *o = !*o)>"Cluster"</button>
    }
}

/// A bar `part` of `whole` long, labelled for screen readers.
fn bar(label: String, part: u64, whole: u64, class: &'static str) -> impl IntoView {
    let pct = if whole == 0 {
        0.0
    } else {
        (part as f64 / whole as f64 * 100.0).min(100.0)
    };
    view! {
        <div class="bar" role="img" aria-label=label>
            <div class=format!("fill {class}") style:width=format!("{pct:.1}%")></div>
        </div>
    }
}

/// A small line of `points` (oldest first), scaled to their largest.
fn sparkline(label: String, points: Vec<u64>) -> impl IntoView {
    let max = points.iter().copied().max().unwrap_or(0).max(1) as f64;
    let n = points.len().max(2) - 1;
    let line: String = points
        .iter()
        .enumerate()
        .map(|(i, v)| {
            format!(
                "{:.1},{:.1}",
                i as f64 * 120.0 / n as f64,
                28.0 - *v as f64 / max * 26.0
            )
        })
        .collect::<Vec<_>>()
        .join(" ");
    view! {
        <svg class="spark" viewBox="0 0 120 30" width="120" height="30" role="img" aria-label=label>
            <polyline points=line fill="none" stroke="currentColor" stroke-width="1.5" />
        </svg>
    }
}

#[component]
pub fn OperatorView() -> impl IntoView {
    let banner = expect_context::<Banner>();
    let open = expect_context::<Operator>().0;
    let status = RwSignal::new(None::<ClusterStatusResponse>);
    // Replication debt and bytes stored, sampled while the view is open.
    let debt = RwSignal::new(VecDeque::<u64>::new());
    let stored = RwSignal::new(VecDeque::<u64>::new());
    let alive = StoredValue::new(0u64);
    on_cleanup(move || {
        open.try_set(false);
    });
    Effect::new(move |_| {
        if !open.get() {
            return;
        }
        // One poller per opening: a newer one retires the older.
        let me = alive.get_value() + 1;
        alive.set_value(me);
        spawn_local(async move {
            while open.try_get_untracked() == Some(true) && alive.try_get_value() == Some(me) {
                match api::client().cluster_status().await {
                    Ok(s) => {
                        let bytes = s.nodes.iter().map(|n| n.bytes).sum();
                        let push = |q: &mut VecDeque<u64>, v| {
                            q.push_back(v);
                            while q.len() > KEPT {
                                q.pop_front();
                            }
                        };
                        debt.update(|q| push(q, s.under_replicated_chunks));
                        stored.update(|q| push(q, bytes));
                        status.set(Some(s));
                    }
                    Err(e) => {
                        banner
                            .0
                            .set(Some(format!("Cannot read the cluster's status: {e}")));
                        return;
                    }
                }
                gloo_timers::future::TimeoutFuture::new(EVERY_MS).await;
            }
        });
    });

    let body = move || {
        let Some(s) = status.get() else {
            return view! { <p class="muted">"Loading…"</p> }.into_any();
        };
        let most = s.nodes.iter().map(|n| n.bytes).max().unwrap_or(0);
        let up = s.nodes.iter().filter(|n| n.up).count();
        let quota_max = s
            .accounts
            .iter()
            .map(|a| a.quota_bytes.max(a.used_bytes))
            .max()
            .unwrap_or(0);
        view! {
            <div class="op-grid">
                <section class="op-card" tabindex="0" aria-labelledby="op-nodes">
                    <h3 id="op-nodes">{format!("Nodes: {up} of {} up", s.nodes.len())}</h3>
                    <table class="op-table" data-testid="op-nodes">
                        <thead><tr><th>"Node"</th><th>"State"</th><th class="num">"Chunks"</th><th>"Bytes"</th><th class="num">"Latency"</th><th class="num">"Failures"</th></tr></thead>
                        <tbody>
                            {s.nodes.iter().map(|n| view! {
                                <tr data-node=n.id.clone()>
                                    <th scope="row">{n.id.clone()}</th>
                                    <td><span class=if n.up { "health ok" } else { "health bad" }>{if n.up { "up" } else { "down" }}</span></td>
                                    <td class="num">{n.chunks.to_string()}</td>
                                    <td class="barcell">
                                        {bar(format!("{} stored on {}", human_size(n.bytes), n.id), n.bytes, most, "accent")}
                                        <span class="barlabel">{human_size(n.bytes)}</span>
                                    </td>
                                    <td class="num">{format!("{} ms", n.latency_ms)}</td>
                                    <td class="num">{n.failures.to_string()}</td>
                                </tr>
                            }).collect_view()}
                        </tbody>
                    </table>
                    <p class="muted">{format!("Stored over the last {} samples:", stored.with(VecDeque::len))}</p>
                    {move || sparkline("Bytes stored over time".into(), stored.get().into_iter().collect())}
                </section>
                <section class="op-card" tabindex="0" aria-labelledby="op-repl">
                    <h3 id="op-repl">"Replication"</h3>
                    <p data-testid="op-replication">{format!(
                        "{} chunks, each on {} nodes (a write waits for {}); {} short of copies",
                        s.chunks, s.replication_factor, s.write_quorum, s.under_replicated_chunks
                    )}</p>
                    {bar(
                        format!("{} of {} chunks fully replicated", s.chunks - s.under_replicated_chunks.min(s.chunks), s.chunks),
                        s.chunks - s.under_replicated_chunks.min(s.chunks),
                        s.chunks,
                        "ok",
                    )}
                    <p class="muted">"Replication debt (chunks short of copies), recent samples:"</p>
                    {move || sparkline("Replication debt over time".into(), debt.get().into_iter().collect())}
                    <p class="muted">{format!(
                        "Metadata: {}{}",
                        s.metadata_backend,
                        s.snapshot.as_ref().map(|sn| if sn.last_taken_at.is_empty() {
                            ", no snapshot yet".to_string()
                        } else {
                            format!(", last snapshot {} on {} of {} nodes", api::short_time(&sn.last_taken_at), sn.last_nodes, sn.of_nodes)
                        }).unwrap_or_default()
                    )}</p>
                </section>
                <section class="op-card wide-card" tabindex="0" aria-labelledby="op-workers">
                    <h3 id="op-workers">"Workers"</h3>
                    <table class="op-table" data-testid="op-workers">
                        <thead><tr><th>"Worker"</th><th>"State"</th><th>"Last run"</th><th>"Outcome"</th><th class="num">"Runs"</th><th class="num">"Errors"</th><th>"Report"</th></tr></thead>
                        <tbody>
                            {s.workers.iter().map(|w| {
                                let outcome = if w.last_outcome.is_empty() { "—".to_string() } else { w.last_outcome.clone() };
                                let class = match w.last_outcome.as_str() { "failed" => "health bad", "done" | "idle" => "health ok", _ => "health warn" };
                                view! {
                                    <tr data-worker=w.name.clone()>
                                        <th scope="row">{w.name.clone()}</th>
                                        <td>{w.state.clone()}</td>
                                        <td>{api::short_time(&w.last_pass_finished)}</td>
                                        <td><span class=class>{outcome}</span></td>
                                        <td class="num">{w.passes.to_string()}</td>
                                        <td class="num">{w.errors.to_string()}</td>
                                        <td class="report">{w.last_report.clone()}</td>
                                    </tr>
                                }
                            }).collect_view()}
                        </tbody>
                    </table>
                </section>
                <section class="op-card wide-card" tabindex="0" aria-labelledby="op-accounts">
                    <h3 id="op-accounts">"Use per account"</h3>
                    <table class="op-table" data-testid="op-accounts">
                        <tbody>
                            {s.accounts.iter().map(|a| {
                                let quota = if a.quota_bytes == 0 { "no quota".to_string() } else { format!("of {}", human_size(a.quota_bytes)) };
                                view! {
                                    <tr data-account=a.name.clone()>
                                        <th scope="row">{a.name.clone()}<span class="muted">{format!(" ({})", a.role)}</span></th>
                                        <td class="barcell">
                                            {bar(format!("{} uses {} {}", a.name, human_size(a.used_bytes), quota), a.used_bytes, quota_max, if a.quota_bytes > 0 && a.used_bytes >= a.quota_bytes { "bad" } else { "accent" })}
                                            <span class="barlabel">{format!("{} {}", human_size(a.used_bytes), quota)}</span>
                                        </td>
                                    </tr>
                                }
                            }).collect_view()}
                        </tbody>
                    </table>
                </section>
            </div>
        }
        .into_any()
    };
    view! {
        <Show when=move || open.get()>
            <section class="operator" data-testid="operator" aria-label="Cluster status">
                <h2>"Cluster"</h2>
                <button class="link close" aria-label="Close" on:click=move |_| open.set(false)>"×"</button>
                {body}
            </section>
        </Show>
    }
}
