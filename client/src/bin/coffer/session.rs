//! `coffer login|logout|whoami`, and the saved login every other command
//! uses: tokens per server in the user's config dir (0600), the access
//! token refreshed when it is about to expire.

use crate::Ctx;
use anyhow::Context;
use coffer_client::format::human_size;
use coffer_client::pb::WhoAmIResponse;
use coffer_client::Coffer;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;
use tonic::transport::Channel;

/// One server's saved login.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Saved {
    pub username: String,
    pub access_token: String,
    /// RFC 3339.
    pub expires_at: String,
    pub refresh_token: String,
}

/// `$XDG_CONFIG_HOME/coffer/credentials.json` (or `~/.config/...`).
fn path() -> anyhow::Result<PathBuf> {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))
        .context("no config dir: set XDG_CONFIG_HOME or HOME")?;
    Ok(base.join("coffer").join("credentials.json"))
}

fn load_all() -> BTreeMap<String, Saved> {
    path()
        .ok()
        .and_then(|p| std::fs::read(p).ok())
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

/// Writes every saved login, readable by the user only.
fn save_all(all: &BTreeMap<String, Saved>) -> anyhow::Result<()> {
    use std::io::Write;
    let p = path()?;
    let dir = p.parent().expect("a parent");
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let tmp = p.with_extension("json.tmp");
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts
        .open(&tmp)
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    f.write_all(&serde_json::to_vec_pretty(all)?)?;
    f.sync_all()?;
    std::fs::rename(&tmp, &p)?;
    Ok(())
}

fn expires_soon(rfc3339: &str) -> bool {
    use time::format_description::well_known::Rfc3339;
    match time::OffsetDateTime::parse(rfc3339, &Rfc3339) {
        Ok(t) => t - time::OffsetDateTime::now_utc() < time::Duration::seconds(60),
        Err(_) => true,
    }
}

/// Puts the saved login for `server` on `coffer`, refreshing its access
/// token first if it is about to expire. Nothing saved: nothing to do.
pub async fn use_saved(coffer: &mut Coffer<Channel>, server: &str) -> anyhow::Result<()> {
    let mut all = load_all();
    let Some(saved) = all.get(server).cloned() else {
        return Ok(());
    };
    let mut token = saved.access_token.clone();
    if expires_soon(&saved.expires_at) {
        let fresh = coffer
            .refresh(&saved.refresh_token)
            .await
            .with_context(|| {
                format!("the saved login to {server} has expired; run `coffer login` again")
            })?;
        token = fresh.access_token.clone();
        all.insert(
            server.to_string(),
            Saved {
                access_token: fresh.access_token,
                expires_at: fresh.expires_at,
                ..saved
            },
        );
        save_all(&all)?;
    }
    coffer.login(&token)?;
    Ok(())
}

/// The password: `COFFER_PASSWORD`, or asked without echo.
fn password(user: &str) -> anyhow::Result<String> {
    match std::env::var("COFFER_PASSWORD") {
        Ok(p) if !p.is_empty() => Ok(p),
        _ => rpassword::prompt_password(format!("password for {user}: "))
            .context("cannot read a password (set COFFER_PASSWORD when there is no terminal)"),
    }
}

/// `coffer login [--user NAME]`.
pub async fn login(ctx: &Ctx, user: Option<String>) -> anyhow::Result<()> {
    let user = match user {
        Some(u) => u,
        None => {
            eprint!("user: ");
            let mut line = String::new();
            std::io::stdin().read_line(&mut line)?;
            line.trim().to_string()
        }
    };
    let pass = password(&user)?;
    let r = ctx.coffer.sign_in(&user, &pass).await?;
    let mut all = load_all();
    all.insert(
        ctx.server.clone(),
        Saved {
            username: r.username.clone(),
            access_token: r.access_token,
            expires_at: r.expires_at,
            refresh_token: r.refresh_token,
        },
    );
    save_all(&all)?;
    let doc = serde_json::json!({ "username": r.username, "role": r.role, "server": ctx.server });
    ctx.out.emit(doc, || {
        format!("logged in to {} as {} ({})", ctx.server, r.username, r.role)
    });
    Ok(())
}

/// `coffer logout`: ends the saved login on the server and forgets it.
pub async fn logout(ctx: &Ctx) -> anyhow::Result<()> {
    let mut all = load_all();
    let Some(saved) = all.remove(&ctx.server) else {
        anyhow::bail!("not logged in to {}", ctx.server);
    };
    // Forget it locally whatever the server says.
    save_all(&all)?;
    let mut coffer = ctx.coffer.clone();
    coffer.login(&saved.access_token)?;
    if let Err(e) = coffer.sign_out(&saved.refresh_token).await {
        eprintln!("coffer: warning: the server did not confirm the logout: {e}");
    }
    let doc = serde_json::json!({ "username": saved.username, "server": ctx.server });
    ctx.out.emit(doc, || {
        format!("logged {} out of {}", saved.username, ctx.server)
    });
    Ok(())
}

/// `coffer whoami`.
pub async fn whoami(ctx: &Ctx) -> anyhow::Result<()> {
    let w = ctx.coffer.whoami().await?;
    let mut doc = whoami_json(&w);
    doc["server"] = ctx.server.clone().into();
    ctx.out.emit(doc, || {
        let who = if w.auth_disabled {
            format!(
                "{} ({}); authentication is off on {}",
                w.username, w.role, ctx.server
            )
        } else {
            format!("{} ({}) on {}", w.username, w.role, ctx.server)
        };
        format!("{who}\n{}", usage_text(&w))
    });
    Ok(())
}

/// The caller and their usage as JSON.
pub fn whoami_json(w: &WhoAmIResponse) -> serde_json::Value {
    serde_json::json!({
        "username": w.username,
        "role": w.role,
        "auth_disabled": w.auth_disabled,
        "used_bytes": w.used_bytes,
        "quota_bytes": (w.quota_bytes > 0).then_some(w.quota_bytes),
    })
}

/// "1.2 GiB used of 10 GiB (12%)", or "1.2 GiB used (no quota)".
pub fn usage_text(w: &WhoAmIResponse) -> String {
    if w.quota_bytes == 0 {
        return format!("{} used (no quota)", human_size(w.used_bytes));
    }
    let pct = w.used_bytes as f64 * 100.0 / w.quota_bytes as f64;
    format!(
        "{} used of {} ({pct:.0}%)",
        human_size(w.used_bytes),
        human_size(w.quota_bytes)
    )
}
