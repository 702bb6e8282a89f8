//! Retention by age and by size, in bounded steps, with the file really shrinking.

mod common;

use std::time::{Duration, Instant};

use common::*;
use fathom_model::{FlowFilter, Record, Timestamp};
use fathom_store::{Store, StoreConfig};

const DAY: u64 = 24 * 3600 * SEC;

fn count(path: &std::path::Path, sql: &str) -> i64 {
    let c = rusqlite::Connection::open(path).unwrap();
    c.query_row(sql, [], |r| r.get(0)).unwrap()
}

#[test]
fn age_retention_deletes_older_than_max_age_in_chunks() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = StoreConfig {
        max_age: Duration::from_secs(7 * 24 * 3600),
        retention_chunk: 100,
        ..cfg(dir.path())
    };
    let mut store = Store::open(&cfg).unwrap();
    let now = T0 + 30 * DAY;
    // 1000 records 10 and 8 days old (the pods "old-*" appear only there), 50 fresh ones.
    let old: Vec<Record> = (0..1000)
        .map(|i| {
            let mut r = bulk_flow(i, now - (8 + i % 3) * DAY);
            if let Record::Flow(f) = &mut r {
                f.source.pod = Some(format!("old-{i}"));
            }
            r
        })
        .collect();
    let fresh: Vec<Record> = (0..50)
        .map(|i| bulk_flow(i, now - 3600 * SEC + i))
        .collect();
    store.insert(&old).unwrap();
    store.insert(&fresh).unwrap();
    let endpoints_before = count(&cfg.path, "SELECT count(*) FROM endpoints");

    let report = store.enforce_retention(Timestamp::from_nanos(now)).unwrap();
    assert_eq!(report.deleted_by_age, 1000);
    assert_eq!(report.deleted_by_size, 0);
    assert!(report.steps >= 10, "1000 rows in chunks of 100: {report:?}");
    assert_eq!(store.rows(), 50);
    assert_eq!(
        store.time_range().0,
        Some(Timestamp::from_nanos(now - 3600 * SEC))
    );
    assert_eq!(
        store
            .query(&FlowFilter::default(), None, None, None)
            .unwrap(),
        fresh
    );
    // The 1000 one-off pod descriptions went with their rows.
    assert!(report.endpoints_removed >= 1000, "{report:?}");
    assert_eq!(
        count(&cfg.path, "SELECT count(*) FROM endpoints"),
        endpoints_before - report.endpoints_removed as i64
    );
    // The survivors' descriptions are intact: pod filters still find them.
    let f = FlowFilter {
        pod: vec!["shop/".parse().unwrap()],
        ..Default::default()
    };
    let want: Vec<Record> = fresh.iter().filter(|r| f.matches(r)).cloned().collect();
    assert!(!want.is_empty());
    assert_eq!(store.query(&f, None, None, None).unwrap(), want);

    // Nothing left to do: a second run deletes nothing.
    let again = store.enforce_retention(Timestamp::from_nanos(now)).unwrap();
    assert_eq!(again.deleted(), 0);
}

#[test]
fn size_retention_keeps_the_newest_and_shrinks_the_file_below_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let max_bytes = 2 << 20;
    let cfg = StoreConfig {
        max_bytes,
        retention_chunk: 500,
        ..cfg(dir.path())
    };
    let mut store = Store::open(&cfg).unwrap();
    let all: Vec<Record> = (0..12_000u64).map(|i| bulk_flow(i, T0 + i * SEC)).collect();
    for chunk in all.chunks(1000) {
        store.insert(chunk).unwrap();
    }
    let before = store.file_bytes();
    assert!(
        before > 4 * max_bytes,
        "test needs a file well over the limit: {before}"
    );

    let report = store
        .enforce_retention(Timestamp::from_nanos(T0 + 12_000 * SEC))
        .unwrap();
    let after = store.file_bytes();
    let on_disk = std::fs::metadata(&cfg.path).unwrap().len();
    assert!(
        after <= max_bytes,
        "{after} bytes on disk, limit {max_bytes}: {report:?}"
    );
    assert!(on_disk <= max_bytes);
    assert!(
        report.deleted_by_size > 0 && report.pages_released > 0,
        "{report:?}"
    );
    // Not emptied either: what is left uses most of the budget (low water is 90%).
    assert!(after > max_bytes / 2, "{after}");
    // The survivors are exactly the newest records.
    let kept = store
        .query(&FlowFilter::default(), None, None, None)
        .unwrap();
    assert_eq!(kept.len() as u64, store.rows());
    assert_eq!(kept, all[all.len() - kept.len()..]);
    drop(store);
    // And it stays that small after a reopen (nothing was hiding in the WAL).
    let store = Store::open(&cfg).unwrap();
    assert!(store.file_bytes() <= max_bytes);
}

#[test]
fn the_writer_enforces_the_size_limit_on_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let max_bytes = 1 << 20;
    let cfg = StoreConfig {
        max_bytes,
        retention_chunk: 200,
        // Only the size trigger can start retention in this test.
        retention_interval: Duration::from_secs(3600),
        ..cfg(dir.path())
    };
    let (writer, handle) = Store::spawn_writer(cfg.clone()).unwrap();
    for i in 0..8000u64 {
        // Timestamps near now so that age retention has nothing to do.
        let t = Timestamp::now().as_nanos();
        while !writer.try_record(bulk_flow(i, t)) {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    writer.flush().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let s = writer.stats();
        if s.retention_deleted > 0 && s.file_bytes <= max_bytes {
            break;
        }
        assert!(Instant::now() < deadline, "size limit not reached: {s:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    writer.shutdown();
    handle.join().unwrap().unwrap();
    let store = Store::open(&cfg).unwrap();
    assert!(store.file_bytes() <= max_bytes, "{}", store.file_bytes());
    assert!(store.rows() > 0 && store.rows() < 8000);
}
