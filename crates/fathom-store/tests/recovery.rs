//! Start-up with a damaged or foreign database: moved aside, replaced, reported.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use fathom_model::{FlowFilter, Record};
use fathom_store::{SchemaState, Store, StoreError};

fn moved_aside(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("flows.db.corrupt-")
        })
        .collect();
    v.sort();
    v
}

fn store_with_rows(dir: &Path, n: u64) -> Vec<Record> {
    let mut store = Store::open(&cfg(dir)).unwrap();
    let recs: Vec<Record> = (0..n).map(|i| bulk_flow(i, T0 + i * SEC)).collect();
    for c in recs.chunks(1000) {
        store.insert(c).unwrap();
    }
    store.close().unwrap();
    recs
}

fn assert_fresh_and_working(dir: &Path) -> Store {
    let mut store = Store::open(&cfg(dir)).unwrap();
    assert_eq!(store.rows(), 0);
    store.insert(&[bulk_flow(1, T0)]).unwrap();
    assert_eq!(
        store
            .query(&FlowFilter::default(), None, None, None)
            .unwrap()
            .len(),
        1
    );
    store
}

#[test]
fn garbage_is_moved_aside_and_a_fresh_store_created() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flows.db");
    let garbage: Vec<u8> = (0..20_000u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    std::fs::write(&path, &garbage).unwrap();
    let store = Store::open(&cfg(dir.path())).unwrap();
    let rec = store.recovered().expect("recovery reported").clone();
    assert!(
        rec.reason.contains("not a SQLite database"),
        "{}",
        rec.reason
    );
    assert_eq!(store.schema_state(), &SchemaState::Created);
    drop(store);
    let aside = moved_aside(dir.path());
    assert_eq!(aside, vec![rec.moved_to.clone()]);
    assert_eq!(
        std::fs::read(&aside[0]).unwrap(),
        garbage,
        "the evidence is kept as it was"
    );
    let store = assert_fresh_and_working(dir.path());
    assert!(store.recovered().is_none(), "the fresh file is healthy");
}

#[test]
fn truncated_database_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flows.db");
    store_with_rows(dir.path(), 3000);
    let len = std::fs::metadata(&path).unwrap().len();
    let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    f.set_len(len / 2).unwrap();
    drop(f);
    let store = Store::open(&cfg(dir.path())).unwrap();
    let rec = store.recovered().expect("truncation detected").clone();
    eprintln!("truncated: {}", rec.reason);
    assert_eq!(std::fs::metadata(&rec.moved_to).unwrap().len(), len / 2);
    drop(store);
    assert_fresh_and_working(dir.path());
}

#[test]
fn truncated_to_a_stub_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flows.db");
    store_with_rows(dir.path(), 10);
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(60)
        .unwrap();
    let store = Store::open(&cfg(dir.path())).unwrap();
    assert!(store
        .recovered()
        .unwrap()
        .reason
        .contains("not a SQLite database"));
}

#[test]
fn damaged_pages_fail_quick_check() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flows.db");
    store_with_rows(dir.path(), 3000);
    // Keep the header and schema page, scribble over a stretch of b-tree pages.
    let mut bytes = std::fs::read(&path).unwrap();
    for b in &mut bytes[3 * 4096..9 * 4096] {
        *b = 0xA5;
    }
    std::fs::write(&path, &bytes).unwrap();
    let store = Store::open(&cfg(dir.path())).unwrap();
    let rec = store.recovered().expect("damage detected");
    eprintln!("damaged: {}", rec.reason);
    assert!(
        rec.reason.contains("quick_check") || rec.reason.contains("malformed"),
        "{}",
        rec.reason
    );
}

#[test]
fn foreign_and_newer_schemas_are_moved_aside() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flows.db");
    {
        let c = rusqlite::Connection::open(&path).unwrap();
        c.execute_batch("CREATE TABLE something_else(x); INSERT INTO something_else VALUES (1);")
            .unwrap();
    }
    let store = Store::open(&cfg(dir.path())).unwrap();
    assert!(store
        .recovered()
        .unwrap()
        .reason
        .contains("not a Fathom store"));
    drop(store);

    {
        let c = rusqlite::Connection::open(&path).unwrap();
        c.execute_batch("PRAGMA user_version = 99").unwrap();
    }
    let store = Store::open(&cfg(dir.path())).unwrap();
    assert!(store.recovered().unwrap().reason.contains("newer Fathom"));
    drop(store);
    assert_eq!(moved_aside(dir.path()).len(), 2);
}

#[test]
fn healthy_store_reopens_with_its_data() {
    let dir = tempfile::tempdir().unwrap();
    let recs = store_with_rows(dir.path(), 500);
    let store = Store::open(&cfg(dir.path())).unwrap();
    assert!(store.recovered().is_none());
    assert_eq!(store.schema_state(), &SchemaState::Current);
    assert_eq!(store.rows(), 500);
    assert_eq!(
        store
            .query(&FlowFilter::default(), None, None, None)
            .unwrap(),
        recs
    );
    assert!(moved_aside(dir.path()).is_empty());
}

#[test]
fn directory_is_created() {
    let dir = tempfile::tempdir().unwrap();
    let nested = dir.path().join("var/lib/fathom");
    let store = Store::open(&cfg(&nested)).unwrap();
    assert!(nested.join("flows.db").exists());
    assert_eq!(store.path(), nested.join("flows.db"));
}

#[test]
fn io_trouble_is_an_error_not_corruption() {
    let dir = tempfile::tempdir().unwrap();
    // The path is a directory: reading it fails; it must not be "moved aside".
    std::fs::create_dir(dir.path().join("flows.db")).unwrap();
    let err = Store::open(&cfg(dir.path())).err().expect("must fail");
    assert!(matches!(err, StoreError::Io { .. }), "{err}");
    assert!(dir.path().join("flows.db").is_dir());
    assert!(moved_aside(dir.path()).is_empty());
}

#[test]
fn unreadable_rows_are_skipped_not_fatal() {
    let dir = tempfile::tempdir().unwrap();
    let recs = store_with_rows(dir.path(), 3);
    {
        let c = rusqlite::Connection::open(dir.path().join("flows.db")).unwrap();
        c.execute(
            "UPDATE records SET body = '{\"type\":\"flow\",\"broken\":' WHERE id = 2",
            [],
        )
        .unwrap();
    }
    let store = Store::open(&cfg(dir.path())).unwrap();
    let got = store
        .query(&FlowFilter::default(), None, None, None)
        .unwrap();
    assert_eq!(got, vec![recs[0].clone(), recs[2].clone()]);
}
