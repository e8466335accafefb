//! The soak's history: every operation a client invoked, when, and how it
//! ended (ok with what it saw, failed for sure, or unknown), as Jepsen
//! records it, plus every fault the nemesis injected.

use serde::Serialize;
use std::sync::Mutex;
use std::time::Instant;

/// Content a client wrote: regenerated from its seed and size
/// ([`crate::data::pattern`]); `hash` is the server's content hash of it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Content {
    pub seed: u64,
    pub size: u64,
    pub hash: String,
}

impl Content {
    pub fn new(seed: u64, size: u64) -> Self {
        let data = crate::data::pattern(size as usize, seed);
        let hash = coffer_proto::chunking::content_hash_of(&data);
        Self { seed, size, hash }
    }

    pub fn bytes(&self) -> Vec<u8> {
        crate::data::pattern(self.size as usize, self.seed)
    }
}

/// What an operation asked for.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Kind {
    /// `UploadFile` (streamed) or, with `session`, an upload session that
    /// is resumed half-way; `base`: a conditional write.
    Upload {
        path: String,
        content: Content,
        base: Option<u64>,
        session: bool,
    },
    Move {
        from: String,
        to: String,
        base: Option<u64>,
    },
    Delete {
        path: String,
        base: Option<u64>,
    },
    Restore {
        path: String,
        version: u64,
    },
    /// The latest version's metadata, then its bytes by number.
    Read {
        path: String,
    },
    List {
        prefix: String,
    },
    /// A page of the change feed after the client's cursor.
    Changes {
        cursor: String,
    },
    /// A share link to the latest version, then a download through it
    /// over plain HTTP, without a token.
    Share {
        path: String,
    },
    /// A file written (or, with no content, deleted) in one folder of the
    /// `coffer sync` pair.
    SyncEdit {
        side: usize,
        name: String,
        content: Option<Content>,
    },
}

impl Kind {
    /// The path a successful write made a new version of.
    pub fn writes(&self) -> Option<&str> {
        match self {
            Kind::Upload { path, .. } | Kind::Restore { path, .. } => Some(path),
            Kind::Move { to, .. } => Some(to),
            _ => None,
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Kind::Upload { session: false, .. } => "upload",
            Kind::Upload { session: true, .. } => "session upload",
            Kind::Move { .. } => "move",
            Kind::Delete { .. } => "delete",
            Kind::Restore { .. } => "restore",
            Kind::Read { .. } => "read",
            Kind::List { .. } => "list",
            Kind::Changes { .. } => "changes",
            Kind::Share { .. } => "share link",
            Kind::SyncEdit { .. } => "sync edit",
        }
    }
}

/// One version as an operation saw it. `hash` is empty where the
/// operation does not say it (a delete names the latest number only).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Seen {
    pub path: String,
    pub version: u64,
    pub size: u64,
    pub hash: String,
    pub deleted: bool,
    /// The change's number, for a change-feed entry.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    /// Where it was seen: "ack", "metadata", "bytes", "listing", "feed",
    /// "share".
    pub how: &'static str,
}

/// How an operation ended.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    Ok {
        seen: Vec<Seen>,
    },
    /// Refused with a status that says nothing changed.
    Failed {
        code: String,
        message: String,
    },
    /// Timed out, cut off, or an error that does not say: it may have
    /// happened or not, but not half.
    Unknown {
        message: String,
    },
}

/// One operation of the history.
#[derive(Debug, Clone, Serialize)]
pub struct Op {
    pub id: u64,
    pub client: usize,
    pub server: usize,
    #[serde(flatten)]
    pub kind: Kind,
    pub invoked_ms: u64,
    pub completed_ms: u64,
    #[serde(flatten)]
    pub outcome: Outcome,
}

impl Op {
    pub fn is_ok(&self) -> bool {
        matches!(self.outcome, Outcome::Ok { .. })
    }

    pub fn seen(&self) -> &[Seen] {
        match &self.outcome {
            Outcome::Ok { seen } => seen,
            _ => &[],
        }
    }

    /// The version a successful write made, as acknowledged.
    pub fn acked(&self) -> Option<&Seen> {
        self.kind.writes()?;
        self.seen().iter().find(|s| s.how == "ack")
    }
}

/// A fault the nemesis injected, or (not `injected`) another event of
/// the run: a fault healed, a process started again.
#[derive(Debug, Clone, Serialize)]
pub struct Fault {
    pub at_ms: u64,
    pub kind: &'static str,
    pub what: String,
    pub injected: bool,
}

/// The history being recorded, shared by clients and the nemesis.
pub struct History {
    start: Instant,
    ops: Mutex<Vec<Op>>,
    faults: Mutex<Vec<Fault>>,
}

impl Default for History {
    fn default() -> Self {
        Self::new()
    }
}

impl History {
    pub fn new() -> Self {
        Self {
            start: Instant::now(),
            ops: Mutex::new(Vec::new()),
            faults: Mutex::new(Vec::new()),
        }
    }

    /// Milliseconds since the soak began.
    pub fn now_ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    pub fn record(&self, op: Op) {
        self.ops.lock().unwrap().push(op);
    }

    /// Records a fault injected.
    pub fn fault(&self, kind: &'static str, what: String) {
        self.note(kind, what, true);
    }

    /// Records another event: a fault healed, a process started again.
    pub fn event(&self, kind: &'static str, what: String) {
        self.note(kind, what, false);
    }

    fn note(&self, kind: &'static str, what: String, injected: bool) {
        let at_ms = self.now_ms();
        self.faults.lock().unwrap().push(Fault {
            at_ms,
            kind,
            what,
            injected,
        });
    }

    /// The operations, in the order they completed.
    pub fn ops(&self) -> Vec<Op> {
        let mut ops = self.ops.lock().unwrap().clone();
        ops.sort_by_key(|o| (o.completed_ms, o.id));
        ops
    }

    pub fn faults(&self) -> Vec<Fault> {
        self.faults.lock().unwrap().clone()
    }
}
