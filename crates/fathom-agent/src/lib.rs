//! The Fathom node agent: kernel events → attribution and flow assembly → enrichment → the
//! live hub and the local API.

pub mod api;
pub mod assembly;
pub mod attribution;
pub mod client;
pub mod clock;
pub mod config;
pub mod detect;
pub mod drops;
pub mod hub;
pub mod interfaces;
pub mod inventory;
pub mod kernel;
pub mod l7live;
pub mod metrics;
pub mod pipeline;
pub mod policy_api;
pub mod policy_engine;
pub mod run;
pub mod shield;
pub mod shield_api;
pub mod sinks;
pub mod status;
pub mod ui;
pub mod web;

pub use config::AgentConfig;
