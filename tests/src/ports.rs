//! Ports for servers the tests start as other processes (Garage,
//! PostgreSQL), which bind them a moment after they are chosen.
//!
//! The kernel's `bind(0)` may hand the same port to two threads whose
//! processes have not bound it yet; the second server then fails to bind,
//! while its readiness check reaches the first one: a test pausing "its"
//! node would pause nobody's. So every port handed out here is handed out
//! once per test process, and stays reserved for a restart on it.

use std::collections::BTreeSet;
use std::sync::Mutex;

/// A port free now and never handed out before by this process.
pub fn free_port() -> std::io::Result<u16> {
    static GIVEN: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());
    for _ in 0..1000 {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        if GIVEN.lock().unwrap().insert(port) {
            return Ok(port);
        }
    }
    Err(std::io::Error::other("no fresh port after 1000 tries"))
}
