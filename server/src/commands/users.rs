//! `coffer-server user add|passwd|rm|list`: user accounts, administered on
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
                println!("{}\t{}\t{}", u.name, u.role.as_str(), u.created_at);
            }
        }
    }
    Ok(())
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
