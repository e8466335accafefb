//! Chunks and their replicas: holds before a write, records after it,
//! replica outcomes, dedup answers and the operator's figures.
//!
//! Writers make every reference to a stored chunk *write* the chunk's row
//! (a touch), while gc claims chunks in a [`super::tx::Mode::Claim`]
//! transaction: a claim that meets a row touched since it began fails and
//! is retried, and a touch that meets a claimed row sees `deleting`. So a
//! chunk is never claimed once a committed version or session references
//! it, on any number of servers.

use super::tx::{list, rows, Row, Tx};
use crate::meta::{
    random_id, ChunkHold, ChunkRef, MetaError, MetaReport, OwnerId, ReplicaOutcome, StreamRef,
};
use std::collections::{HashMap, HashSet};
use std::fmt;

/// A chunk row's life cycle, and the one place its states are named. A
/// row is a hold as well as a record:
/// - no row, then `Pending` when a writer holds the chunk (under a random
///   hold id), then `Ok` when that writer records it stored on W nodes;
/// - `Ok` or `Pending`, then `Deleting` when gc claims it (nothing
///   references it and it is older than the grace period), then no row
///   once gc has deleted its objects.
///
/// Every change of state is a [`ChunkEvent`], and which rows an event
/// applies to and what it leaves them in is the pure function
/// [`ChunkEvent::next`]. Each event is one conditional statement whose
/// condition and result are read from that function ([`ChunkEvent::guard`],
/// [`ChunkEvent::to`]), so the race safety stays in the database while the
/// rules are written once, here, and tested as a table. Only `Ok` chunks
/// are stored for anyone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChunkState {
    Pending,
    Ok,
    Deleting,
}

impl ChunkState {
    pub const ALL: [ChunkState; 3] = [ChunkState::Pending, ChunkState::Ok, ChunkState::Deleting];

    pub fn as_str(self) -> &'static str {
        match self {
            ChunkState::Pending => "pending",
            ChunkState::Ok => "ok",
            ChunkState::Deleting => "deleting",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }

    /// What a writer's hold learns from the row it left: stored (touched),
    /// write it under the row's hold, or (it met `Deleting`) wait.
    pub fn hold_answer(row: Option<(ChunkState, Option<String>)>) -> ChunkHold {
        match row {
            Some((ChunkState::Ok, _)) => ChunkHold::Stored,
            Some((ChunkState::Pending, hold)) => ChunkHold::Write(hold.unwrap_or_default()),
            None | Some((ChunkState::Deleting, _)) => ChunkHold::Deleting,
        }
    }
}

/// As SQL names it: a quoted literal, so partial indexes on the state
/// serve every plan.
impl fmt::Display for ChunkState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "'{}'", self.as_str())
    }
}

/// What is done to a chunk's row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChunkEvent {
    /// A writer holds the chunk before writing it: a new row is `Pending`
    /// under the writer's hold; an existing one is touched (its age
    /// restarts, so a claim that read it fails) and answers who writes.
    Hold,
    /// The writer holding a `Pending` row records it stored on W nodes,
    /// alone or in a pack; an `Ok` row stays stored.
    Record,
    /// gc claims an unreferenced row older than its grace period.
    Claim,
    /// gc deleted a claimed row's objects: the row goes.
    Forget,
    /// gc claims an object on a node that no row names, to delete it.
    ClaimOrphan,
    /// A pack on the nodes holds the chunk (a sealed pack's own row, or a
    /// chunk found again by a rebuild of the pack index).
    Found,
}

/// Where a [`ChunkEvent`] leaves a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// The event does not apply: the statement changes nothing.
    Refused,
    /// The row is (or stays) in this state.
    To(ChunkState),
    /// The row is deleted.
    Gone,
}

impl ChunkEvent {
    pub const ALL: [ChunkEvent; 6] = [
        ChunkEvent::Hold,
        ChunkEvent::Record,
        ChunkEvent::Claim,
        ChunkEvent::Forget,
        ChunkEvent::ClaimOrphan,
        ChunkEvent::Found,
    ];

    /// The life cycle itself: where this event leaves a row in `from`
    /// (`None`: there is no row).
    pub const fn next(self, from: Option<ChunkState>) -> Next {
        use ChunkEvent as E;
        use ChunkState::{Deleting, Ok, Pending};
        match (self, from) {
            (E::Hold, None | Some(Pending)) => Next::To(Pending),
            (E::Hold | E::Record | E::Found, Some(Ok)) => Next::To(Ok),
            (E::Record | E::Found, Some(Pending)) => Next::To(Ok),
            (E::Found, None) => Next::To(Ok),
            (E::Claim, Some(Pending | Ok)) => Next::To(Deleting),
            (E::ClaimOrphan, None) => Next::To(Deleting),
            (E::Forget, Some(Deleting)) => Next::Gone,
            _ => Next::Refused,
        }
    }

    /// The condition on an existing row (of table or alias `table`) under
    /// which this event applies: its state is one of those
    /// [`ChunkEvent::next`] does not refuse.
    pub fn guard(self, table: &str) -> String {
        let from: Vec<String> = ChunkState::ALL
            .into_iter()
            .filter(|s| self.next(Some(*s)) != Next::Refused)
            .map(|s| s.to_string())
            .collect();
        if from.is_empty() {
            "false".into()
        } else {
            format!("{table}.state IN ({})", from.join(", "))
        }
    }

    /// The state a new row is made in by this event; panics for an event
    /// that makes no row.
    #[track_caller]
    pub fn new_row(self) -> ChunkState {
        match self.next(None) {
            Next::To(s) => s,
            _ => panic!("{self:?} makes no row"),
        }
    }

    /// The state every row this event applies to is left in; panics for
    /// an event that deletes, or leaves rows in different states (those
    /// statements keep the state as it is and say so).
    #[track_caller]
    pub fn to(self) -> ChunkState {
        let mut to = [None::<ChunkState>]
            .into_iter()
            .chain(ChunkState::ALL.map(Some))
            .filter_map(|s| match self.next(s) {
                Next::To(t) => Some(Some(t)),
                Next::Gone => Some(None),
                Next::Refused => None,
            });
        let first = to.next().flatten();
        match first {
            Some(t) if to.all(|o| o == Some(t)) => t,
            _ => panic!("{self:?} leaves no single state"),
        }
    }
}

use crate::meta::ReplicaHealth::Ok as GOOD;
use ChunkState::{Ok as OK, Pending as PENDING};

/// A `(chunk id, size)` row.
pub fn chunk_ref(r: &Row) -> ChunkRef {
    ChunkRef {
        id: r.get(0),
        size: r.get(1),
    }
}

/// See [`crate::meta::MetaStore::unknown_chunks`].
pub fn unknown(tx: &dyn Tx, owner: OwnerId, chunks: &[ChunkRef]) -> Result<Vec<String>, MetaError> {
    owner_unknown(tx, owner, chunks, false)
}

/// Which of `chunks` `owner` must send (see
/// [`crate::meta::MetaStore::unknown_chunks`]); with `touch`, the age of
/// every stored one of theirs is refreshed, which is how a new reference
/// keeps gc away.
pub fn owner_unknown(
    tx: &dyn Tx,
    owner: OwnerId,
    chunks: &[ChunkRef],
    touch: bool,
) -> Result<Vec<String>, MetaError> {
    if chunks.is_empty() {
        return Ok(Vec::new());
    }
    let mut ids: Vec<&str> = chunks.iter().map(|c| c.id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    let owned = format!(
        "id IN (SELECT value FROM list_of($1)) AND state = {OK} AND EXISTS
         (SELECT 1 FROM owner_chunks o WHERE o.owner_id = $2 AND o.chunk_id = chunks.id)"
    );
    let sql = if touch {
        format!("UPDATE chunks SET created_at = now_ms() WHERE {owned} RETURNING id, size")
    } else {
        format!("SELECT id, size FROM chunks WHERE {owned}")
    };
    let stored: HashMap<String, u32> = tx
        .query(&sql, &[&list(&ids), &owner])?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    missing_of(chunks, &stored)
}

/// Records that `owner` sent (or committed) the chunks `ids`.
pub fn grant(tx: &dyn Tx, owner: OwnerId, ids: &[&str]) -> Result<(), MetaError> {
    if ids.is_empty() {
        return Ok(());
    }
    tx.execute(
        "INSERT INTO owner_chunks (owner_id, chunk_id)
         SELECT CAST($1 AS BIGINT), t.value FROM list_of($2) AS t WHERE true
         ON CONFLICT DO NOTHING",
        &[&owner, &list(ids)],
    )?;
    Ok(())
}

/// The ids of `chunks` not in `stored`, each once in first-seen order;
/// a size mismatch is an error.
fn missing_of(
    chunks: &[ChunkRef],
    stored: &HashMap<String, u32>,
) -> Result<Vec<String>, MetaError> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for ch in chunks {
        if !seen.insert(ch.id.as_str()) {
            continue;
        }
        match stored.get(&ch.id) {
            None => out.push(ch.id.clone()),
            Some(&size) if size != ch.size => {
                return Err(MetaError::ChunkSize {
                    id: ch.id.clone(),
                    stored: size,
                    declared: ch.size,
                })
            }
            Some(_) => {}
        }
    }
    Ok(out)
}

/// See [`crate::meta::MetaStore::hold_chunk`].
pub fn hold(
    tx: &dyn Tx,
    chunk: &ChunkRef,
    stream: Option<&StreamRef>,
) -> Result<ChunkHold, MetaError> {
    if let Some(s) = stream {
        // Each chunk renews its stream; a stream's `created_at` is its last chunk's.
        let owner: OwnerId = tx
            .query_opt(
                "UPDATE upload_sessions SET created_at = now_ms(),
                   expires_at = now_ms() + (expires_at - created_at) WHERE id = $1 RETURNING owner_id",
                &[&s.stream],
            )?
            .ok_or_else(|| MetaError::StreamGone(s.stream.clone()))?
            .get(0);
        let quota = super::limits::lock_owner(tx, owner)?;
        super::limits::check_quota(tx, owner, quota, chunk.size as u64, None)?;
    }
    let row = tx.query_opt(
        &format!(
            "INSERT INTO chunks (id, size, created_at, state, hold)
             VALUES ($1, $2, now_ms(), {}, $3)
             ON CONFLICT (id) DO UPDATE SET created_at = now_ms() WHERE {}
             RETURNING state, hold",
            ChunkEvent::Hold.new_row(),
            ChunkEvent::Hold.guard("chunks"),
        ),
        &[&chunk.id, &chunk.size, &random_id()],
    )?;
    let row = row.and_then(|r| Some((ChunkState::parse(&r.get::<String>(0))?, r.get(1))));
    let hold = ChunkState::hold_answer(row);
    if hold == ChunkHold::Deleting {
        return Ok(hold);
    }
    if let Some(s) = stream {
        tx.execute(
            "INSERT INTO session_chunks (session_id, idx, chunk_id, size) VALUES ($1, $2, $3, $4)
             ON CONFLICT (session_id, idx) DO UPDATE SET chunk_id = excluded.chunk_id, size = excluded.size",
            &[&s.stream, &s.index, &chunk.id, &chunk.size],
        )?;
    }
    Ok(hold)
}

/// See [`crate::meta::MetaStore::record_chunk`].
pub fn record(
    tx: &dyn Tx,
    chunk: &ChunkRef,
    hold: &str,
    nodes: &[String],
) -> Result<(), MetaError> {
    let n = tx.execute(
        &format!(
            "UPDATE chunks SET state = {}, hold = NULL, created_at = now_ms()
             WHERE id = $1 AND {} AND (state <> {PENDING} OR hold = $2)",
            ChunkEvent::Record.to(),
            ChunkEvent::Record.guard("chunks"),
        ),
        &[&chunk.id, &hold],
    )?;
    if n == 0 {
        return Err(MetaError::ChunkDeleting(chunk.id.clone()));
    }
    replicas_ok(tx, &chunk.id, nodes)
}

/// Records `nodes` as holding good copies of `object`.
pub fn replicas_ok(tx: &dyn Tx, object: &str, nodes: &[String]) -> Result<(), MetaError> {
    if !nodes.is_empty() {
        tx.execute(
            &format!(
                "INSERT INTO replicas (chunk_id, node, state, checked_at)
                 SELECT CAST($1 AS TEXT), t.value, {GOOD}, now_ms() FROM list_of($2) AS t WHERE true
                 ON CONFLICT (chunk_id, node) DO UPDATE SET state = {GOOD}, checked_at = excluded.checked_at"
            ),
            &[&object, &list(nodes)],
        )?;
    }
    Ok(())
}

/// See [`crate::meta::MetaStore::record_replicas`].
pub fn record_replicas(tx: &dyn Tx, outcomes: &[ReplicaOutcome]) -> Result<(), MetaError> {
    // One row per (chunk, node): the last outcome wins, and a batch never
    // names a row twice (which an upsert refuses).
    let mut last = HashMap::new();
    for o in outcomes {
        last.insert((o.chunk_id.as_str(), o.node.as_str()), o.state.as_str());
    }
    if last.is_empty() {
        return Ok(());
    }
    let mut keys: Vec<_> = last.into_iter().collect();
    keys.sort_unstable();
    let batch = rows(
        keys.iter()
            .map(|((c, n), s)| vec![(*c).into(), (*n).into(), (*s).into()]),
    );
    tx.execute(
        "INSERT INTO replicas (chunk_id, node, state, checked_at)
         SELECT t.value ->> 0, t.value ->> 1, t.value ->> 2, now_ms() FROM rows_of($1) AS t WHERE true
         ON CONFLICT (chunk_id, node) DO UPDATE SET state = excluded.state, checked_at = excluded.checked_at",
        &[&batch],
    )?;
    Ok(())
}

/// See [`crate::meta::MetaStore::chunks_page`].
pub fn page(tx: &dyn Tx, after: &str, limit: u32) -> Result<Vec<ChunkRef>, MetaError> {
    Ok(tx
        .query(
            &format!(
                "SELECT id, size FROM chunks WHERE state = {OK} AND pack_id IS NULL AND id > $1
                 ORDER BY id LIMIT $2"
            ),
            &[&after, &limit],
        )?
        .iter()
        .map(chunk_ref)
        .collect())
}

/// See [`crate::meta::MetaStore::replicas_needing_repair`].
pub fn needing_repair(tx: &dyn Tx, limit: u32) -> Result<Vec<(String, String)>, MetaError> {
    Ok(tx
        .query(
            &format!(
                "SELECT r.chunk_id, r.node FROM replicas r JOIN chunks c ON c.id = r.chunk_id
                 WHERE r.state <> {GOOD} AND c.state = {OK} LIMIT $1"
            ),
            &[&limit],
        )?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect())
}

/// See [`crate::meta::MetaStore::short_of_copies`].
pub fn short_of_copies(
    tx: &dyn Tx,
    r: usize,
) -> Result<HashMap<String, HashSet<String>>, MetaError> {
    let mut out: HashMap<String, HashSet<String>> = HashMap::new();
    let rows = tx.query(
        &format!(
            "SELECT c.id, r.node FROM chunks c LEFT JOIN replicas r ON r.chunk_id = c.id
             WHERE c.state = {OK} AND c.pack_id IS NULL AND (SELECT COUNT(*) FROM replicas g
                                       WHERE g.chunk_id = c.id AND g.state = {GOOD}) < $1"
        ),
        &[&r],
    )?;
    for row in rows {
        let nodes = out.entry(row.get(0)).or_default();
        if let Some(node) = row.get::<Option<String>>(1) {
            nodes.insert(node);
        }
    }
    Ok(out)
}

/// See [`crate::meta::MetaStore::forget_replica`].
pub fn forget_replica(tx: &dyn Tx, chunk: &str, node: &str) -> Result<(), MetaError> {
    tx.execute(
        "DELETE FROM replicas WHERE chunk_id = $1 AND node = $2",
        &[&chunk, &node],
    )?;
    Ok(())
}

/// See [`crate::meta::MetaStore::report`]; run in one snapshot.
pub fn report(tx: &dyn Tx, r: usize) -> Result<MetaReport, MetaError> {
    let usage = tx
        .query(
            &format!(
                "SELECT r.node, COUNT(*), CAST(COALESCE(SUM(c.size), 0) AS BIGINT)
                 FROM replicas r JOIN chunks c ON c.id = r.chunk_id
                 WHERE r.state = {GOOD} AND c.state = {OK} GROUP BY r.node ORDER BY r.node"
            ),
            &[],
        )?
        .iter()
        .map(|row| (row.get(0), row.get(1), row.get(2)))
        .collect();
    let counts = tx.query_one(
        &format!(
            "SELECT COUNT(*), COUNT(*) FILTER (WHERE good < $1) FROM (
                 SELECT (SELECT COUNT(*) FROM replicas r WHERE r.chunk_id = c.id AND r.state = {GOOD}) AS good
                 FROM chunks c WHERE c.state = {OK} AND c.pack_id IS NULL) g"
        ),
        &[&r],
    )?;
    Ok(MetaReport {
        usage,
        chunks: counts.get(0),
        under_replicated: counts.get(1),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ChunkState::Deleting as DELETING;

    const FROM: [Option<ChunkState>; 4] = [None, Some(PENDING), Some(OK), Some(DELETING)];

    #[test]
    fn the_life_cycle_is_one_table_of_pure_transitions() {
        use ChunkEvent as E;
        use Next::{Gone, Refused, To};
        // From: no row, pending, ok, deleting.
        let table = [
            (E::Hold, [To(PENDING), To(PENDING), To(OK), Refused]),
            (E::Record, [Refused, To(OK), To(OK), Refused]),
            (E::Claim, [Refused, To(DELETING), To(DELETING), Refused]),
            (E::Forget, [Refused, Refused, Refused, Gone]),
            (E::ClaimOrphan, [To(DELETING), Refused, Refused, Refused]),
            (E::Found, [To(OK), To(OK), To(OK), Refused]),
        ];
        assert_eq!(table.map(|(e, _)| e), ChunkEvent::ALL);
        for (event, row) in table {
            for (from, want) in FROM.into_iter().zip(row) {
                assert_eq!(event.next(from), want, "{event:?} from {from:?}");
            }
        }
    }

    #[test]
    fn no_event_revives_a_claimed_chunk_or_stores_one_unwritten() {
        for event in ChunkEvent::ALL {
            for from in FROM {
                let next = event.next(from);
                // Once gc claimed a row, only the end of its deletion
                // changes it: nobody writes under it or reads it as stored.
                if from == Some(DELETING) {
                    assert!(matches!(next, Next::Refused | Next::Gone), "{event:?}");
                }
                // Stored only by the writer's record, or a pack found
                // holding the bytes.
                if next == Next::To(OK) && from != Some(OK) {
                    assert!(matches!(event, ChunkEvent::Record | ChunkEvent::Found));
                }
                // Rows go only once claimed.
                if next == Next::Gone {
                    assert_eq!((event, from), (ChunkEvent::Forget, Some(DELETING)));
                }
            }
        }
    }

    #[test]
    fn statements_take_their_condition_and_result_from_the_table() {
        assert_eq!(
            ChunkEvent::Hold.guard("chunks"),
            "chunks.state IN ('pending', 'ok')"
        );
        assert_eq!(ChunkEvent::Claim.guard("c"), "c.state IN ('pending', 'ok')");
        assert_eq!(ChunkEvent::Forget.guard("c"), "c.state IN ('deleting')");
        assert_eq!(ChunkEvent::ClaimOrphan.guard("c"), "false");
        assert_eq!(ChunkEvent::Record.to(), OK);
        assert_eq!(ChunkEvent::Found.to(), OK);
        assert_eq!(ChunkEvent::Claim.to(), DELETING);
        assert_eq!(ChunkEvent::Hold.new_row(), PENDING);
        assert_eq!(ChunkEvent::ClaimOrphan.new_row(), DELETING);
        // A hold leaves rows as they were: no single result to set.
        assert!(std::panic::catch_unwind(|| ChunkEvent::Hold.to()).is_err());
        assert!(std::panic::catch_unwind(|| ChunkEvent::Forget.to()).is_err());
        assert!(std::panic::catch_unwind(|| ChunkEvent::Record.new_row()).is_err());
    }

    #[test]
    fn states_round_trip_and_a_hold_answers_by_the_row_it_left() {
        for s in ChunkState::ALL {
            assert_eq!(ChunkState::parse(s.as_str()), Some(s));
            assert_eq!(s.to_string(), format!("'{}'", s.as_str()));
        }
        assert_eq!(ChunkState::parse("gone"), None);
        assert_eq!(ChunkState::hold_answer(Some((OK, None))), ChunkHold::Stored);
        assert_eq!(
            ChunkState::hold_answer(Some((PENDING, Some("h".into())))),
            ChunkHold::Write("h".into())
        );
        assert_eq!(ChunkState::hold_answer(None), ChunkHold::Deleting);
        assert_eq!(
            ChunkState::hold_answer(Some((DELETING, None))),
            ChunkHold::Deleting
        );
    }
}
