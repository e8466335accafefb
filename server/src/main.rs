//! The `coffer-server` binary: reads configuration (flags, environment,
//! `.env`), binds the port and hands both to [`coffer_server::server::run`],
//! which shuts down gracefully on SIGINT or SIGTERM; or runs an operator
//! command ([`coffer_server::commands`]).

use anyhow::Context;
use clap::Parser;
use coffer_server::config::Config;
use std::io::Write;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match serve().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // One line an operator can act on, whatever RUST_BACKTRACE says.
            eprintln!("coffer-server: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn serve() -> anyhow::Result<()> {
    // A missing .env is normal; a malformed one is worth saying.
    if let Err(e) = dotenvy::dotenv() {
        if !e.not_found() {
            eprintln!("warning: ignoring .env: {e}");
        }
    }
    let cfg = Config::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_new(&cfg.log).unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();

    let nodes = cfg.node_specs(|k| std::env::var(k).ok());
    if let Some(command) = cfg.command.clone() {
        return coffer_server::commands::run(cfg, nodes, command).await;
    }
    let listener = tokio::net::TcpListener::bind((cfg.host.as_str(), cfg.port))
        .await
        .with_context(|| format!("cannot listen on {}:{}", cfg.host, cfg.port))?;
    let addr = listener.local_addr()?;
    // A line on stdout for scripts and tests that start us on port 0.
    let scheme = if cfg.tls_cert.is_some() {
        "https"
    } else {
        "http"
    };
    println!("coffer-server listening on {scheme}://{addr}");
    std::io::stdout().flush().ok();
    coffer_server::server::run(cfg, nodes, listener, wait_for_signal()).await
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("cannot install SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    ctrl_c.await.ok();
}
