//! `coffer`: the command-line client. Parses the command, runs it, and on
//! any failure prints one line to stderr and exits non-zero.

mod app_password;
mod args;
mod bars;
mod flight;
mod get;
mod info;
mod output;
mod put;
mod resume;
mod session;
mod share;
mod status;
mod sync;

use anyhow::Context;
use args::{Admin, Args, Command};
use clap::Parser;
use coffer_client::native::connect_with;
use coffer_client::Coffer;
use std::process::ExitCode;
use tonic::transport::Channel;

/// What every command needs: the connection and the output settings.
pub struct Ctx {
    pub coffer: Coffer<Channel>,
    pub server: String,
    pub out: output::Output,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let msg = format!("{e:#}");
            eprintln!(
                "coffer: error: {}",
                msg.split_whitespace().collect::<Vec<_>>().join(" ")
            );
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    let out = output::Output {
        json: args.json,
        quiet: args.quiet || args.json,
    };
    let ca = match &args.ca {
        Some(p) => {
            Some(std::fs::read(p).with_context(|| format!("cannot read --ca {}", p.display()))?)
        }
        None => None,
    };
    let mut coffer = connect_with(&args.server, ca.as_deref()).await?;
    match args.token.as_deref().filter(|t| !t.is_empty()) {
        Some(token) => coffer.login(token)?,
        // `login` and `logout` deal with the saved login themselves.
        None if !matches!(args.command, Command::Login { .. } | Command::Logout) => {
            session::use_saved(&mut coffer, &args.server).await?
        }
        None => {}
    }
    let ctx = Ctx {
        coffer,
        server: args.server,
        out,
    };
    match args.command {
        Command::Put {
            local,
            remote,
            limit_rate,
        } => put::run(&ctx, &local, remote.as_deref(), limit_rate).await,
        Command::Get {
            remote,
            local,
            version,
        } => get::run(&ctx, &remote, local.as_deref(), version).await,
        Command::Sync {
            local,
            remote,
            once,
            force,
            status,
            poll,
        } => {
            let opts = sync::Options {
                once,
                force,
                status,
                poll,
            };
            sync::run(&ctx, &local, &remote, opts).await
        }
        Command::Ls { prefix } => info::ls(&ctx, prefix.as_deref().unwrap_or("")).await,
        Command::Stat { remote, version } => info::stat(&ctx, &remote, version).await,
        Command::Versions { remote } => info::versions(&ctx, &remote).await,
        Command::Restore { remote, version } => info::restore(&ctx, &remote, version).await,
        Command::Rm { remote, recursive } => info::rm(&ctx, &remote, recursive).await,
        Command::Mv { from, to } => info::mv(&ctx, &from, &to).await,
        Command::Mkdir { remote } => info::mkdir(&ctx, &remote).await,
        Command::Status => status::status(&ctx).await,
        Command::Login { user } => session::login(&ctx, user).await,
        Command::Logout => session::logout(&ctx).await,
        Command::Whoami => session::whoami(&ctx).await,
        Command::Share { list: true, .. } => share::list(&ctx).await,
        Command::Share {
            revoke: Some(id), ..
        } => share::revoke(&ctx, &id).await,
        Command::Share {
            remote,
            version,
            expires,
            password,
            ..
        } => {
            let remote = remote.context("which file? `coffer share PATH`")?;
            share::create(&ctx, &remote, version, &expires, password).await
        }
        Command::Admin {
            action: Admin::Run { worker, wait },
        } => status::run_worker(&ctx, worker.name(), wait).await,
        Command::AppPassword { action } => app_password::run(&ctx, action).await,
    }
}
