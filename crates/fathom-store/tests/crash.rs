//! A crash loses at most the batch being filled. The test re-runs itself as a child process
//! that commits three batches, queues part of a fourth and then aborts (no destructors, no
//! flush, like a SIGKILL); the parent checks what survived.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use fathom_model::FlowFilter;
use fathom_store::{Store, StoreConfig};

const CHILD_ENV: &str = "FATHOM_STORE_CRASH_CHILD";
const BATCH: u64 = 100;

fn child_cfg(dir: &std::path::Path) -> StoreConfig {
    StoreConfig {
        batch_size: BATCH as usize,
        batch_age: Duration::from_secs(3600),
        ..cfg(dir)
    }
}

fn child(dir: &std::path::Path) -> ! {
    let (writer, _handle) = Store::spawn_writer(child_cfg(dir)).expect("child store");
    for i in 0..3 * BATCH {
        assert!(writer.try_record(bulk_flow(i, T0 + i * SEC)));
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while writer.stats().written < 3 * BATCH {
        assert!(Instant::now() < deadline, "child: batches not committed");
        std::thread::sleep(Duration::from_millis(5));
    }
    // Half a batch: accepted, never committed.
    for i in 3 * BATCH..3 * BATCH + BATCH / 2 {
        assert!(writer.try_record(bulk_flow(i, T0 + i * SEC)));
    }
    std::thread::sleep(Duration::from_millis(100));
    std::process::abort();
}

#[test]
fn crash_loses_at_most_the_unfinished_batch() {
    if let Some(dir) = std::env::var_os(CHILD_ENV) {
        child(std::path::Path::new(&dir));
    }
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "crash_loses_at_most_the_unfinished_batch",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success(), "the child must die: {out:?}");
    // The WAL is still there: nothing was checkpointed on the way down.
    assert!(dir.path().join("flows.db-wal").exists());

    let store = Store::open(&child_cfg(dir.path())).unwrap();
    assert!(store.recovered().is_none(), "a crash is not corruption");
    assert_eq!(
        store.rows(),
        3 * BATCH,
        "committed batches survive, the open one is lost"
    );
    let got = store
        .query(&FlowFilter::default(), None, None, None)
        .unwrap();
    let want: Vec<_> = (0..3 * BATCH).map(|i| bulk_flow(i, T0 + i * SEC)).collect();
    assert_eq!(got, want);
}
