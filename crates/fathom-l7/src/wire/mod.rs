//! Small building blocks shared by the HTTP/2, Redis, Kafka, PostgreSQL and MySQL parsers:
//! a bounded per-direction byte buffer that remembers when each byte arrived ([`buf`]),
//! a bounds-checked cursor over message bytes ([`cursor`]) and the construction of
//! [`L7Exchange`](fathom_model::l7::L7Exchange) values from the two halves of an exchange
//! ([`exchange`]).

pub(crate) mod buf;
pub(crate) mod cursor;
pub(crate) mod exchange;

pub(crate) use buf::StreamBuf;
pub(crate) use cursor::Cursor;
pub(crate) use exchange::{build, lossy, Half};
