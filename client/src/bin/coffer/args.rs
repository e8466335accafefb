//! The command line: global flags and one subcommand per action.

use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

/// Coffer's command-line client.
#[derive(Debug, Parser)]
#[command(name = "coffer", version, about)]
pub struct Args {
    /// Server address.
    #[arg(
        long,
        global = true,
        env = "COFFER_SERVER",
        default_value = "http://localhost:5000"
    )]
    pub server: String,
    /// CA certificate (PEM) to check an https:// server against, instead
    /// of the system's trusted roots.
    #[arg(long, global = true, env = "COFFER_CA")]
    pub ca: Option<PathBuf>,
    /// Bearer token sent with every request (instead of the saved login).
    #[arg(long, global = true, env = "COFFER_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Print one JSON document on stdout instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    /// No progress bars.
    #[arg(long, short, global = true)]
    pub quiet: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Upload a file or a whole directory (only changed chunks are sent;
    /// an interrupted upload resumes when run again). `-` reads standard
    /// input (a remote name is then needed).
    Put {
        local: PathBuf,
        /// Remote name (default: the local file or directory name); `/` or
        /// `.`: a directory's contents go into the root, a file keeps its
        /// name there; ending in `/`: a file goes into that folder.
        remote: Option<String>,
        /// Send at most this many bytes per second.
        #[arg(long, value_name = "BYTES_PER_SEC")]
        limit_rate: Option<u64>,
    },
    /// Keep a local folder and a remote folder the same, both ways: runs
    /// until stopped, a pass whenever either side changes. Both sides of
    /// a conflicting edit are kept; deletes stay restorable on the server.
    Sync {
        local: PathBuf,
        remote: String,
        /// One full pass, then exit: 0 only if both sides agree.
        #[arg(long)]
        once: bool,
        /// Let a pass delete most of the synced files, or everything from
        /// an empty folder (refused otherwise).
        #[arg(long)]
        force: bool,
        /// Show what a pass would do, and do nothing.
        #[arg(long)]
        status: bool,
        /// Look at the folder every 500 ms instead of following the file
        /// system's events (for network mounts, whose changes made on
        /// other machines raise no events here).
        #[arg(long)]
        poll: bool,
    },
    /// Download a file (or every file under a remote folder).
    Get {
        remote: String,
        /// Where to write (default: the remote's last name segment, here);
        /// `-`: a file's bytes to standard output.
        local: Option<PathBuf>,
        /// A version number instead of the latest.
        #[arg(long)]
        version: Option<u64>,
    },
    /// List files: size, version, upload time, name.
    Ls { prefix: Option<String> },
    /// Show one file's metadata and replication health.
    Stat {
        remote: String,
        #[arg(long)]
        version: Option<u64>,
    },
    /// List every version of a file, newest first.
    Versions { remote: String },
    /// Make an old version the newest again.
    Restore { remote: String, version: u64 },
    /// Delete a file, or with -r a folder and everything in it (every
    /// file's versions stay restorable).
    Rm {
        remote: String,
        /// A folder, with everything in it.
        #[arg(short, long)]
        recursive: bool,
    },
    /// Move or rename a file or a folder (nothing is copied; the old names
    /// stay restorable). Onto an existing folder, or a name ending in `/`:
    /// into it.
    Mv { from: String, to: String },
    /// Make a folder (and the missing ones above it).
    Mkdir { remote: String },
    /// Server health and the cluster: nodes, replication, workers.
    Status,
    /// Log in to the server (the password comes from COFFER_PASSWORD or a
    /// prompt); the login is saved for later commands.
    Login {
        /// The user name (asked if not given).
        #[arg(long)]
        user: Option<String>,
    },
    /// End the saved login to the server.
    Logout,
    /// Who the server takes you for, and how much of your quota you use.
    Whoami,
    /// Create a link anyone can download a file with (no account needed),
    /// or with --list / --revoke manage your links.
    Share {
        /// The file to share.
        #[arg(required_unless_present_any = ["list", "revoke"])]
        remote: Option<String>,
        /// A version number instead of the latest.
        #[arg(long)]
        version: Option<u64>,
        /// How long the link works: 90s, 30m, 12h, 7d, 2w.
        #[arg(long, default_value = "7d")]
        expires: String,
        /// Ask for a password the link will need (or take it from
        /// COFFER_SHARE_PASSWORD).
        #[arg(long)]
        password: bool,
        /// List your links instead.
        #[arg(long, conflicts_with_all = ["remote", "revoke"])]
        list: bool,
        /// End the link with this id instead.
        #[arg(long, value_name = "ID", conflicts_with = "remote")]
        revoke: Option<String>,
    },
    /// Passwords for WebDAV clients (Finder, Explorer, rclone...), which
    /// send your user name and one of these instead of your password.
    #[command(name = "app-password")]
    AppPassword {
        #[command(subcommand)]
        action: AppPasswordAction,
    },
    /// Operator actions.
    Admin {
        #[command(subcommand)]
        action: Admin,
    },
}

#[derive(Debug, Subcommand)]
pub enum AppPasswordAction {
    /// Make one (shown once: give it to the client right away).
    Create {
        /// What it is for, e.g. "laptop".
        name: String,
    },
    /// List yours.
    List,
    /// End one at once.
    Revoke { name: String },
}

#[derive(Debug, Subcommand)]
pub enum Admin {
    /// Start a pass of a background worker now.
    Run {
        worker: Worker,
        /// Return when the pass has finished, with its report.
        #[arg(long)]
        wait: bool,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Worker {
    Repair,
    Scrub,
    Gc,
    /// Snapshot the metadata to every node (SQLite only).
    Snapshot,
}

impl Worker {
    pub fn name(self) -> &'static str {
        match self {
            Worker::Repair => "repair",
            Worker::Scrub => "scrub",
            Worker::Gc => "gc",
            Worker::Snapshot => "snapshot",
        }
    }
}
