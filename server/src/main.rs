//! The `coffer-server` binary: reads configuration (flags, environment,
//! `.env`), binds the port and hands both to [`coffer_server::server::serve`],
//! which shuts down gracefully on SIGINT or SIGTERM; or runs an operator
//! command ([`coffer_server::commands`]).

use anyhow::Context;
use clap::Parser;
use coffer_server::config::Config;
use std::io::Write;

fn main() -> std::process::ExitCode {
    tune_allocator();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("coffer-server: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // One line an operator can act on, whatever RUST_BACKTRACE says.
            eprintln!("coffer-server: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Chunk buffers (up to 4 MiB) are read on blocking threads and freed on
/// others. Once glibc's dynamic mmap threshold has risen past their size
/// it keeps them in its arenas (up to 8 per core) after they are freed:
/// the server's RSS stayed 90 MiB above what downloads held. A fixed
/// threshold maps each large buffer on its own and returns it on free, and
/// fewer arenas keep the small allocations together. Set before any
/// thread starts.
fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator parameters; no thread exists yet.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 256 * 1024);
        libc::mallopt(libc::M_ARENA_MAX, 2);
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
    coffer_server::server::serve(cfg, nodes, listener, Box::pin(wait_for_signal())).await
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
