//! `coffer-server user add|passwd|rm|list|quota`: user accounts, administered on
//! the server's own data dir or database, also while a server runs.

use crate::auth::password;
use crate::config::{Config, UserCommand};
use crate::meta::{self, Role};
use anyhow::Context;

/// Runs a user command.
pub async fn run(cfg: &Config, command: UserCommand) -> anyhow::Result<()> {
    std::fs::create_dir_all(&cfg.data_dir)
        .with_context(|| format!("cannot create data dir {}", cfg.data_dir.display()))?;
    let meta = meta::open(cfg.database_url.as_deref(), &cfg.sqlite_path())
        .await
        .context("cannot open the metadata database")?;
    match command {
        UserCommand::Add { name, admin } => {
            let name = password::normalize_name(&name).map_err(anyhow::Error::msg)?;
            if meta.user(&name).await?.is_some() {
                anyhow::bail!(
                    "user {name} exists; `coffer-server user passwd {name}` sets a new password"
                );
            }
            let hash = new_password_hash(&name).await?;
            let role = if admin { Role::Admin } else { Role::User };
            let user = meta.add_user(&name, &hash, role).await?;
            println!("created {} {}", role.as_str(), user.name);
            if user.id == meta::DEFAULT_OWNER {
                println!(
                    "{} owns the files stored before accounts existed",
                    user.name
                );
            }
        }
        UserCommand::Passwd { name } => {
            let name = password::normalize_name(&name).map_err(anyhow::Error::msg)?;
            if meta.user(&name).await?.is_none() {
                anyhow::bail!("no user {name}");
            }
            let hash = new_password_hash(&name).await?;
            meta.set_password(&name, &hash).await?;
            println!("set the password of {name}; their logins have ended");
        }
        UserCommand::Rm { name } => {
            let name = password::normalize_name(&name).map_err(anyhow::Error::msg)?;
            if !meta.remove_user(&name).await? {
                anyhow::bail!("no user {name}");
            }
            println!(
                "removed {name}: their logins have ended and their files are deleted \
                 (purged after COFFER_DELETED_RETENTION_SECS)"
            );
        }
        UserCommand::List => {
            let users = meta.users().await?;
            if users.is_empty() {
                println!("no users yet: `coffer-server user add NAME --admin` creates the first");
            }
            for u in users {
                let usage = meta.usage(u.id).await?;
                let quota = usage
                    .quota
                    .map_or("no quota".to_string(), |q| format!("quota {q}"));
                println!(
                    "{}\t{}\t{}\tused {}\t{quota}",
                    u.name,
                    u.role.as_str(),
                    u.created_at,
                    usage.used
                );
            }
        }
        UserCommand::Quota { name, size } => {
            let name = password::normalize_name(&name).map_err(anyhow::Error::msg)?;
            let quota = parse_size(&size).map_err(anyhow::Error::msg)?;
            if !meta.set_quota(&name, quota).await? {
                anyhow::bail!("no user {name}");
            }
            let Some(user) = meta.user(&name).await? else {
                anyhow::bail!("no user {name}");
            };
            let usage = meta.usage(user.id).await?;
            match quota {
                Some(q) => println!(
                    "{name} may keep {q} bytes; they use {}{}",
                    usage.used,
                    if usage.used > q {
                        " (over it: new uploads are refused until they free space)"
                    } else {
                        ""
                    }
                ),
                None => println!("{name} has no quota; they use {} bytes", usage.used),
            }
        }
    }
    Ok(())
}

/// A quota size: `none`, plain bytes, or a number with a unit (K, M, G,
/// T; KB/MB/… are powers of 1000, KiB/MiB/… powers of 1024, a bare letter
/// is a power of 1024 as `ls -h` and `df -h` show).
pub fn parse_size(text: &str) -> Result<Option<u64>, String> {
    let t = text.trim();
    if t.eq_ignore_ascii_case("none") || t.eq_ignore_ascii_case("unlimited") {
        return Ok(None);
    }
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let number: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a size (say 500MB, 10GiB, 1.5T or none)"))?;
    let unit = unit.trim().to_ascii_lowercase();
    let power = |p: i32, base: f64| base.powi(p);
    let factor = match unit.as_str() {
        "" | "b" => 1.0,
        "k" | "kib" => power(1, 1024.0),
        "m" | "mib" => power(2, 1024.0),
        "g" | "gib" => power(3, 1024.0),
        "t" | "tib" => power(4, 1024.0),
        "kb" => power(1, 1000.0),
        "mb" => power(2, 1000.0),
        "gb" => power(3, 1000.0),
        "tb" => power(4, 1000.0),
        _ => {
            return Err(format!(
                "unknown unit {unit:?} in {text:?} (use K, M, G, T, KB… or KiB…)"
            ))
        }
    };
    let bytes = number * factor;
    if !bytes.is_finite() || bytes >= u64::MAX as f64 {
        return Err(format!("{text:?} is too large"));
    }
    Ok(Some(bytes.round() as u64))
}

/// The hash of a new password for `name`: from `COFFER_PASSWORD`, or asked
/// twice without echo.
async fn new_password_hash(name: &str) -> anyhow::Result<String> {
    let given = match std::env::var("COFFER_PASSWORD") {
        Ok(p) if !p.is_empty() => p,
        _ => {
            let first = rpassword::prompt_password(format!("new password for {name}: ")).context(
                "cannot read a password (set COFFER_PASSWORD when there is no terminal)",
            )?;
            let again = rpassword::prompt_password("again: ")?;
            if first != again {
                anyhow::bail!("the passwords differ");
            }
            first
        }
    };
    password::check_new(&given).map_err(anyhow::Error::msg)?;
    tokio::task::spawn_blocking(move || password::hash(&given))
        .await?
        .map_err(anyhow::Error::msg)
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn sizes_parse_as_people_write_them() {
        assert_eq!(parse_size("1000"), Ok(Some(1000)));
        assert_eq!(parse_size("10MB"), Ok(Some(10_000_000)));
        assert_eq!(parse_size("10MiB"), Ok(Some(10 * 1024 * 1024)));
        assert_eq!(parse_size("1.5G"), Ok(Some(1536 * 1024 * 1024)));
        assert_eq!(parse_size("2 TB"), Ok(Some(2_000_000_000_000)));
        assert_eq!(parse_size("none"), Ok(None));
        assert!(parse_size("ten").is_err());
        assert!(parse_size("5 parsecs").is_err());
        assert!(parse_size("-5").is_err());
    }
}
