//! Signals to child processes of the harness: send one, and wait until a SIGSTOP has taken hold.

use std::time::{Duration, Instant};

/// Sends `sig` to `pid`; errors (e.g. the process is gone) are ignored.
pub fn send(pid: u32, sig: libc::c_int) {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return;
    };
    // SAFETY: kill(2) has no memory-safety preconditions; the pid is our own child's.
    unsafe {
        libc::kill(pid, sig);
    }
}

/// Waits (at most 10 s) until every thread of `pid` is stopped, as `/proc` reports it.
pub fn wait_stopped(pid: u32) {
    let stopped = || {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
            return true; // gone: nothing left to wait for
        };
        tasks.flatten().all(|t| {
            let stat = std::fs::read_to_string(t.path().join("stat")).unwrap_or_default();
            // pid (comm) state ...: comm may hold spaces, so read after its ')'.
            let state = stat
                .rsplit_once(')')
                .and_then(|(_, r)| r.trim_start().chars().next());
            matches!(state, None | Some('T' | 't' | 'Z' | 'X'))
        })
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while !stopped() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(2));
    }
}
