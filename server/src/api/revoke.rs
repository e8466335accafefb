//! Open streams end with their caller's login: a download or a watch of
//! the change feed checks, while it runs, that the login it began under is
//! still live, on every server sharing the database.

use crate::auth::Auth;
use crate::caller::Caller;
use futures::{Stream, StreamExt};

/// How often an open stream (a download, a watch of the change feed)
/// checks that its caller's login is still live: logging out, a new
/// password and removing the user end it within this long, on every
/// server sharing the database.
pub const REVOCATION_CHECK: std::time::Duration = std::time::Duration::from_secs(5);

/// `stream`, ended with the item `ended()` once `who`'s login has ended.
pub fn until_revoked<T: Send + 'static>(
    stream: impl Stream<Item = T> + Send + 'static,
    auth: Auth,
    who: Caller,
    ended: fn() -> T,
) -> impl Stream<Item = T> + Send + 'static {
    let mut check = tokio::time::interval(REVOCATION_CHECK);
    check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let state = (Box::pin(stream), check, auth, who, false);
    futures::stream::unfold(
        state,
        move |(mut stream, mut check, auth, who, over)| async move {
            if over {
                return None;
            }
            loop {
                tokio::select! {
                    item = stream.next() => {
                        return item.map(|i| (i, (stream, check, auth, who, false)));
                    }
                    _ = check.tick() => {
                        if !auth.still_live(&who).await {
                            return Some((ended(), (stream, check, auth, who, true)));
                        }
                    }
                }
            }
        },
    )
}
