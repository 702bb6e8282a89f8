//! Fathom's flow history: every record the pipeline produces, kept for days in an embedded
//! SQLite database (`/var/lib/fathom/flows.db` by default) and queried with the same
//! `FlowFilter` semantics as the live stream.
//!
//! - [`Store::spawn_writer`] starts the background writer; the pipeline calls
//!   [`StoreWriter::try_record`], which never blocks (`writer.rs`).
//! - [`Store::query`] / [`StoreReader::query`] answer `observe --since/--until/--last`
//!   (`query.rs`): SQL narrows, `FlowFilter::matches` decides.
//! - Retention by age and size runs in small steps between batches and shrinks the file
//!   (`retention.rs`).
//! - A damaged database is moved aside at start-up and replaced (`recovery.rs`).
//! - Layout and versioning: `schema.rs`.

mod codec;
mod columns;
mod config;
mod endpoints;
mod error;
mod query;
mod recovery;
mod retention;
mod schema;
mod stats;
mod store;
mod writer;

pub use config::{StoreConfig, DEFAULT_PATH, MIN_MAX_BYTES};
pub use error::StoreError;
pub use recovery::Recovery;
pub use retention::RetentionReport;
pub use schema::{Migration, SchemaState, APPLICATION_ID, MIGRATIONS, SCHEMA_VERSION};
pub use stats::StoreStats;
pub use store::{Store, StoreReader};
pub use writer::StoreWriter;

#[cfg(test)]
mod tests {
    // The agent shares these across tasks and threads.
    fn send_sync<T: Send + Sync>() {}

    #[test]
    fn handles_are_send_and_sync() {
        send_sync::<super::StoreWriter>();
        send_sync::<super::StoreReader>();
        send_sync::<super::StoreStats>();
        fn send<T: Send>() {}
        send::<super::Store>();
    }
}
