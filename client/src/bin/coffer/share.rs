//! `coffer share`: links that let anyone download one version of a file,
//! and the list and revocation of the caller's links.

use crate::Ctx;
use anyhow::Context;
use coffer_client::pb::ShareLink;
use serde_json::{json, Value};
use std::time::Duration;

/// Creates a link to `remote` and prints its full URL.
pub async fn create(
    ctx: &Ctx,
    remote: &str,
    version: Option<u64>,
    expires: &str,
    ask_password: bool,
) -> anyhow::Result<()> {
    let ttl = parse_duration(expires).map_err(anyhow::Error::msg)?;
    let password = if ask_password {
        match std::env::var("COFFER_SHARE_PASSWORD") {
            Ok(p) if !p.is_empty() => p,
            _ => {
                let first = rpassword::prompt_password("password for the link: ").context(
                    "cannot read a password (set COFFER_SHARE_PASSWORD when there is no terminal)",
                )?;
                if rpassword::prompt_password("again: ")? != first {
                    anyhow::bail!("the passwords differ");
                }
                first
            }
        }
    } else {
        String::new()
    };
    if ask_password && password.is_empty() {
        anyhow::bail!("the link's password is empty");
    }
    let link = ctx
        .coffer
        .share(remote, version.unwrap_or(0), ttl.as_secs(), &password)
        .await?;
    let url = full_url(&ctx.server, &link.url);
    ctx.out.emit(link_json(&ctx.server, &link), || {
        format!(
            "{url}\nanyone with this link can download {} (version {}) until {}{}",
            link.file_name,
            link.version,
            link.expires_at,
            if link.has_password {
                ", with the password"
            } else {
                ""
            }
        )
    });
    Ok(())
}

/// Lists the caller's links.
pub async fn list(ctx: &Ctx) -> anyhow::Result<()> {
    let links = ctx.coffer.share_links().await?;
    let doc = Value::Array(links.iter().map(|l| link_json(&ctx.server, l)).collect());
    ctx.out.emit(doc, || {
        if links.is_empty() {
            return "no share links".into();
        }
        links
            .iter()
            .map(|l| {
                format!(
                    "{}  {:<8} v{:<4} {}  until {}{}  {}",
                    l.id,
                    state(l),
                    l.version,
                    l.file_name,
                    l.expires_at,
                    if l.has_password { "  (password)" } else { "" },
                    full_url(&ctx.server, &l.url)
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    });
    Ok(())
}

/// Ends the link `id`.
pub async fn revoke(ctx: &Ctx, id: &str) -> anyhow::Result<()> {
    ctx.coffer.revoke_share(id).await?;
    ctx.out.emit(json!({ "revoked": id }), || {
        format!("revoked {id}: its URL now answers 410 Gone")
    });
    Ok(())
}

fn state(l: &ShareLink) -> &'static str {
    if l.revoked {
        "revoked"
    } else if l.expired {
        "expired"
    } else {
        "live"
    }
}

fn link_json(server: &str, l: &ShareLink) -> Value {
    json!({
        "id": l.id,
        "url": full_url(server, &l.url),
        "name": l.file_name,
        "version": l.version,
        "created_at": l.created_at,
        "expires_at": l.expires_at,
        "password": l.has_password,
        "state": state(l),
    })
}

/// The link's path on the server the CLI talks to.
fn full_url(server: &str, path: &str) -> String {
    format!("{}{path}", server.trim_end_matches('/'))
}

/// A duration like `7d`, `12h`, `30m`, `90s`, `2w` or plain seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (n, unit) = t.split_at(split);
    let n: u64 = n
        .parse()
        .map_err(|_| format!("{text:?} is not a duration (say 90s, 30m, 12h, 7d or 2w)"))?;
    let secs = match unit.trim() {
        "" | "s" => 1,
        "m" | "min" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        u => return Err(format!("unknown unit {u:?} in {text:?} (s, m, h, d or w)")),
    };
    if n == 0 {
        return Err("a link must live at least one second".into());
    }
    n.checked_mul(secs)
        .map(Duration::from_secs)
        .ok_or_else(|| format!("{text:?} is too long"))
}

#[cfg(test)]
mod tests {
    use super::parse_duration;
    use std::time::Duration;

    #[test]
    fn durations_read_as_people_write_them() {
        assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(7 * 86_400)));
        assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("12h"), Ok(Duration::from_secs(12 * 3600)));
        assert_eq!(parse_duration("2w"), Ok(Duration::from_secs(14 * 86_400)));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("3 fortnights").is_err());
    }
}
