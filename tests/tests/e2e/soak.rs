//! The randomized fault soak, short: one run with a fixed seed and one
//! with a random seed (printed; `COFFER_SOAK_SEED` sets it), each about a
//! minute of faults and checks on a cluster of its own; and the checker
//! shown to fail, with a clear message, when a broken store drops an
//! acknowledged chunk. The servers keep small chunks in packs, so the
//! faults (bitrot, lost nodes, killed servers, gc on two servers) meet
//! packed data. The long soak is `coffer-bench soak` (README).

use coffer_tests::soak::{run, Config};
use std::time::Duration;

/// How long the short soaks break things.
const SHORT: Duration = Duration::from_secs(40);

async fn soak_passes(cfg: Config) {
    let report = run(&cfg).await.expect("the soak ran");
    eprintln!("{}", report.summary());
    assert!(
        report.passed(),
        "{}\nrepeat: {}",
        report.summary(),
        cfg.repeat_command()
    );
    assert!(
        report.verdict.acked_checked > 20 && report.faults.len() > 3,
        "the soak did too little to prove anything:\n{}",
        report.summary()
    );
    assert!(
        report.verdict.chunks_packed > 0,
        "no checked chunk was in a pack:\n{}",
        report.summary()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_short_soak_with_a_fixed_seed_loses_nothing() {
    soak_passes(Config::new(1, SHORT)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_short_soak_with_a_random_seed_loses_nothing() {
    let seed = std::env::var("COFFER_SOAK_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| rand::random::<u32>() as u64);
    eprintln!("soak: random seed {seed} (COFFER_SOAK_SEED={seed} repeats it)");
    soak_passes(Config::new(seed, SHORT)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_checker_fails_when_an_acknowledged_chunk_is_dropped() {
    let folder = tempfile::tempdir().unwrap();
    let mut cfg = Config::new(3, Duration::from_secs(8));
    cfg.calm = true;
    cfg.sync = false;
    cfg.drop_acked_chunk = true;
    cfg.save_to = Some(folder.path().to_path_buf());
    let report = run(&cfg).await.expect("the soak ran");
    let found = &report.verdict.violations;
    assert!(!report.passed(), "the checker missed a dropped chunk");
    assert!(
        found.iter().any(|v| v.contains("cannot be read")),
        "no version was found unreadable: {found:#?}"
    );
    assert!(
        found.iter().any(|v| v.contains("is on 0 nodes, not 3")),
        "the copies were not counted: {found:#?}"
    );
    let saved = report.folder.expect("a failing run saves its history");
    let history = std::fs::read_to_string(saved.join("history.jsonl")).unwrap();
    assert!(history.lines().count() > 10, "{history}");
    let summary = std::fs::read_to_string(saved.join("report.txt")).unwrap();
    assert!(summary.contains("repeat: cargo run"), "{summary}");
}
