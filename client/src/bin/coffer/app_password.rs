//! `coffer app-password`: passwords for WebDAV clients, which send the
//! user name and one of these (never the account password).

use crate::args::AppPasswordAction;
use crate::Ctx;
use serde_json::json;

pub async fn run(ctx: &Ctx, action: AppPasswordAction) -> anyhow::Result<()> {
    match action {
        AppPasswordAction::Create { name } => create(ctx, &name).await,
        AppPasswordAction::List => list(ctx).await,
        AppPasswordAction::Revoke { name } => {
            ctx.coffer.revoke_app_password(&name).await?;
            ctx.out.emit(json!({ "revoked": name }), || {
                format!("app password {name:?} revoked: clients using it are refused from now on")
            });
            Ok(())
        }
    }
}

async fn create(ctx: &Ctx, name: &str) -> anyhow::Result<()> {
    let who = ctx.coffer.whoami().await?;
    let made = ctx.coffer.create_app_password(name).await?;
    let url = format!("{}/dav/", ctx.server.trim_end_matches('/'));
    let doc = json!({
        "name": name,
        "password": made.password,
        "username": who.username,
        "url": url,
    });
    ctx.out.emit(doc, || {
        format!(
            "{}\n\napp password {name:?}: shown only now, so give it to the client at once.\n\
             WebDAV address: {url}\nuser name: {}\n(revoke it with `coffer app-password revoke {name:?}`)",
            made.password, who.username
        )
    });
    Ok(())
}

async fn list(ctx: &Ctx) -> anyhow::Result<()> {
    let all = ctx.coffer.app_passwords().await?;
    let doc = json!(all
        .iter()
        .map(|a| json!({ "name": a.name, "created_at": a.created_at }))
        .collect::<Vec<_>>());
    ctx.out.emit(doc, || {
        if all.is_empty() {
            return "no app passwords (make one with `coffer app-password create NAME`)".into();
        }
        all.iter()
            .map(|a| format!("{:<24} created {}", a.name, a.created_at))
            .collect::<Vec<_>>()
            .join("\n")
    });
    Ok(())
}
