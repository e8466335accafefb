//! What a run shows: the pass's progress bar, lines above it, and the
//! summary or pending list at the end (text or `--json`).

use super::apart::Rename;
use super::{Prepared, Snapshot, Sync};
use coffer_client::plan::Action;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::json;

impl Sync<'_> {
    /// A bar for the pass's transfers: bytes to move, and files done.
    pub(super) fn pass_bar(&self, actions: &[Action], snap: &Snapshot) -> ProgressBar {
        let files = actions
            .iter()
            .filter(|a| !matches!(a, Action::Agree { .. } | Action::Forget { .. }))
            .count();
        let bytes: u64 = actions.iter().map(|a| snap.bytes(a)).sum();
        let target = if self.ctx.out.quiet || files == 0 {
            ProgressDrawTarget::hidden()
        } else {
            // Draws nothing when stderr is not a terminal.
            ProgressDrawTarget::stderr()
        };
        let bar = ProgressBar::with_draw_target(Some(bytes), target);
        bar.set_style(
            ProgressStyle::with_template(
                "sync {prefix} files [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {eta} {wide_msg}",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        bar.set_prefix(format!("0/{files}"));
        *self.bar.lock().unwrap() = bar.clone();
        bar
    }

    /// Counts a finished step on the bar.
    pub(super) fn tick(&self, path: &str) {
        let bar = self.bar.lock().unwrap().clone();
        let files = bar
            .prefix()
            .split_once('/')
            .and_then(|(done, of)| Some((done.parse::<u64>().ok()?, of.to_string())));
        if let Some((done, of)) = files {
            bar.set_prefix(format!("{}/{of}", done + 1));
        }
        bar.set_message(path.to_string());
    }

    /// A line of what the run did, above the progress bar if one shows.
    pub(super) fn say(&self, line: String) {
        if self.ctx.out.quiet {
            return;
        }
        let bar = self.bar.lock().unwrap().clone();
        if bar.is_hidden() {
            eprintln!("{line}");
        } else {
            bar.println(line);
        }
    }

    pub(super) fn report(&self, agreed: bool) {
        let d = self.done.lock().unwrap();
        let files = self.state.lock().unwrap().files().len();
        let summary = json!({
            "local": self.root,
            "remote": self.remote,
            "agreed": agreed,
            "files": files,
            "uploaded": d.uploaded,
            "downloaded": d.downloaded,
            "deleted_remote": d.deleted_remote,
            "deleted_local": d.deleted_local,
            "conflicts": d.conflicts,
            "renamed": d.renamed,
            "listings": d.listings,
            "deferred": d.deferred,
        });
        self.ctx.out.emit(summary, || {
            format!(
                "sync {} <-> {}/: {files} files; {} up, {} down, {} deleted on the server, \
                 {} deleted here, {} conflicts{}{}",
                self.root.display(),
                self.remote,
                d.uploaded,
                d.downloaded,
                d.deleted_remote,
                d.deleted_local,
                d.conflicts,
                if d.renamed > 0 {
                    format!(", {} renamed apart", d.renamed)
                } else {
                    String::new()
                },
                if agreed { "; in agreement" } else { "" }
            )
        });
    }

    pub(super) fn report_pending(&self, pending: &Prepared) -> anyhow::Result<()> {
        let rows: Vec<(&'static str, String, Option<String>)> = match pending {
            Prepared::Apart(renames) => renames
                .iter()
                .map(|(r, what, _)| match r {
                    Rename::Local { to, .. } => ("rename here", what.clone(), Some(to.clone())),
                    Rename::Remote { to, .. } => ("move on server", what.clone(), Some(to.clone())),
                })
                .collect(),
            Prepared::Plan(actions, _) => actions
                .iter()
                .map(|a| (describe(a), a.path().to_string(), None))
                .collect(),
        };
        let json_rows: Vec<serde_json::Value> = rows
            .iter()
            .map(|(action, path, to)| json!({ "path": path, "action": action, "to": to }))
            .collect();
        self.ctx.out.emit(
            json!({ "pending": json_rows, "agreed": rows.is_empty() }),
            || {
                if rows.is_empty() {
                    "nothing to do: the folders agree".to_string()
                } else {
                    rows.iter()
                        .map(|(action, path, to)| match to {
                            Some(to) => format!("{action:<16} {path} -> {to}"),
                            None => format!("{action:<16} {path}"),
                        })
                        .collect::<Vec<_>>()
                        .join("\n")
                }
            },
        );
        Ok(())
    }
}

pub(super) fn describe(a: &Action) -> &'static str {
    match a {
        Action::Upload { .. } => "upload",
        Action::Download { .. } => "download",
        Action::DeleteRemote { .. } => "delete on server",
        Action::DeleteLocal { .. } => "delete here",
        Action::Conflict { .. } => "conflict",
        Action::Agree { .. } => "record",
        Action::Forget { .. } => "forget",
    }
}
