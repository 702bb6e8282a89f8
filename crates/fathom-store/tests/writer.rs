//! The background writer: never blocks, counts what it drops, batches by size and age,
//! and loses nothing on a clean shutdown.

mod common;

use std::time::{Duration, Instant};

use common::*;
use fathom_model::{FlowFilter, Record, Timestamp};
use fathom_store::{Store, StoreConfig};

fn records(n: u64) -> Vec<Record> {
    (0..n).map(|i| bulk_flow(i, T0 + i * 1_000_000)).collect()
}

/// Batches only close by size (or flush/shutdown), never by age.
fn slow_age(dir: &std::path::Path) -> StoreConfig {
    StoreConfig {
        batch_size: 1000,
        batch_age: Duration::from_secs(3600),
        ..cfg(dir)
    }
}

#[test]
fn clean_shutdown_commits_everything() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = slow_age(dir.path());
    let (writer, handle) = Store::spawn_writer(cfg.clone()).unwrap();
    let recs = records(2500);
    for r in &recs {
        assert!(writer.try_record(r.clone()));
    }
    writer.shutdown();
    handle.join().unwrap().unwrap();
    let s = writer.stats();
    assert_eq!((s.written, s.dropped, s.failed, s.pending), (2500, 0, 0, 0));
    assert_eq!(s.batches, 3, "two full batches and the remainder");
    // After shutdown nothing more is accepted, and that is counted.
    assert!(!writer.try_record(recs[0].clone()));
    assert_eq!(writer.stats().dropped, 1);
    // The WAL was folded in and removed.
    assert!(
        !dir.path().join("flows.db-wal").exists()
            || std::fs::metadata(dir.path().join("flows.db-wal"))
                .unwrap()
                .len()
                == 0
    );
    let store = Store::open(&cfg).unwrap();
    assert_eq!(
        store
            .query(&FlowFilter::default(), None, None, None)
            .unwrap(),
        recs
    );
}

#[test]
fn dropping_every_handle_is_a_clean_shutdown_too() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = slow_age(dir.path());
    let (writer, handle) = Store::spawn_writer(cfg.clone()).unwrap();
    let clone = writer.clone();
    for r in records(1500) {
        assert!(clone.try_record(r));
    }
    drop(writer);
    drop(clone);
    handle.join().unwrap().unwrap();
    assert_eq!(Store::open(&cfg).unwrap().rows(), 1500);
}

#[test]
fn batches_close_by_age() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = StoreConfig {
        batch_size: 1000,
        batch_age: Duration::from_millis(50),
        ..cfg(dir.path())
    };
    let (writer, handle) = Store::spawn_writer(cfg).unwrap();
    for r in records(10) {
        assert!(writer.try_record(r));
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while writer.stats().written < 10 {
        assert!(
            Instant::now() < deadline,
            "age flush did not happen: {:?}",
            writer.stats()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let s = writer.stats();
    assert_eq!((s.batches, s.rows, s.pending), (1, 10, 0));
    assert!(
        s.lag >= Duration::from_millis(50),
        "waited for the batch age: {:?}",
        s.lag
    );
    assert!(s.last_batch_ms > 0.0 && s.file_bytes > 0);
    assert_eq!(s.oldest, Some(Timestamp::from_nanos(T0)));
    assert_eq!(s.newest, Some(Timestamp::from_nanos(T0 + 9_000_000)));
    writer.shutdown();
    handle.join().unwrap().unwrap();
}

#[test]
fn flush_makes_records_visible_to_readers() {
    let dir = tempfile::tempdir().unwrap();
    let (writer, handle) = Store::spawn_writer(slow_age(dir.path())).unwrap();
    let reader = writer.reader().unwrap();
    let recs = records(300);
    for r in &recs {
        assert!(writer.try_record(r.clone()));
    }
    writer.flush().unwrap();
    assert_eq!(writer.stats().written, 300);
    assert_eq!(
        reader
            .query(&FlowFilter::default(), None, None, None)
            .unwrap(),
        recs
    );
    assert_eq!(
        reader
            .query(&FlowFilter::default(), None, None, Some(5))
            .unwrap(),
        &recs[295..]
    );
    writer.shutdown();
    handle.join().unwrap().unwrap();
    assert!(matches!(
        writer.flush(),
        Err(fathom_store::StoreError::WriterGone)
    ));
}

#[test]
fn a_saturated_writer_drops_and_counts_without_blocking() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = StoreConfig {
        channel_capacity: 4,
        batch_size: 500,
        ..cfg(dir.path())
    };
    let (writer, handle) = Store::spawn_writer(cfg.clone()).unwrap();
    let recs = records(2000);
    let mut offered = 0u64;
    let mut accepted = 0u64;
    let mut slowest = Duration::ZERO;
    let deadline = Instant::now() + Duration::from_secs(10);
    // Offer as fast as possible until some were refused (each commit takes an fsync, the
    // queue holds four).
    while writer.stats().dropped == 0 || offered < 2000 {
        assert!(
            Instant::now() < deadline,
            "never saturated: {:?}",
            writer.stats()
        );
        let r = recs[(offered % 2000) as usize].clone();
        let t = Instant::now();
        accepted += u64::from(writer.try_record(r));
        slowest = slowest.max(t.elapsed());
        offered += 1;
    }
    writer.shutdown();
    handle.join().unwrap().unwrap();
    let s = writer.stats();
    assert!(s.dropped > 0);
    assert_eq!(s.written, accepted);
    assert_eq!(
        s.written + s.dropped,
        offered,
        "every record is either stored or counted"
    );
    assert_eq!((s.failed, s.pending), (0, 0));
    assert!(
        slowest < Duration::from_millis(100),
        "try_record waited {slowest:?}"
    );
    assert_eq!(Store::open(&cfg).unwrap().rows(), accepted);
}
