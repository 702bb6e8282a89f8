//! The `body` column: the record as fathom-model JSON, exactly what `observe -o json` prints,
//! so `json_extract(body, '$.source.pod')` works in the sqlite3 shell.
//!
//! Decoding goes straight to the variant named by the `type` column when it is a plain
//! struct: `Record`'s internally tagged representation makes serde buffer the whole object
//! before choosing a variant, and skipping that is a third of the decode time of a flow.
//! Kinds without a fast path (and any future ones) go through `Record` itself.
//!
//! A future compact encoding can be told apart per row by SQLite's own type: today's bodies
//! are TEXT, a compressed one would be a BLOB, so old rows would stay readable without a
//! migration.

use fathom_model::{DropRecord, Flow, Record};

pub(crate) fn encode(r: &Record) -> Result<String, serde_json::Error> {
    serde_json::to_string(r)
}

pub(crate) fn decode(kind: &str, body: &str) -> Result<Record, serde_json::Error> {
    // The extra "type" key is ignored by the variant structs (none denies unknown fields).
    match kind {
        "flow" => serde_json::from_str::<Flow>(body).map(Record::from),
        "drop" => serde_json::from_str::<DropRecord>(body).map(Record::from),
        _ => serde_json::from_str::<Record>(body),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_paths_agree_with_the_tagged_decoder() {
        let flow = r#"{"type":"flow","time":"2026-11-26T16:00:00Z","flow_id":"1","event":"start",
            "source":{"ip":"10.0.0.1","port":1,"pod":null,"namespace":null,"labels":{}},
            "destination":{"ip":"10.0.0.2","port":2,"pod":"p","namespace":"n","labels":{"a":"b"}},
            "process":null,"destination_process":null,
            "l4":{"protocol":"tcp","tcp_flags":["SYN"],"tcp_flags_out":null,"tcp_flags_in":null,
                  "icmp_type":null,"icmp_code":null},
            "traffic":{"packets_out":1,"packets_in":0,"bytes_out":60,"bytes_in":0,
                       "payload_bytes_out":0,"payload_bytes_in":0},
            "tcp":{"handshake_us":null,"srtt_us":null,"retransmits":null,"bytes_acked":null,
                   "bytes_received":null},
            "first_seen":"2026-11-26T16:00:00Z","last_seen":"2026-11-26T16:00:00Z",
            "end_reason":null,"interface":null,"node":"n1"}"#;
        let tagged: Record = serde_json::from_str(flow).unwrap();
        assert_eq!(decode("flow", flow).unwrap(), tagged);
        assert_eq!(decode("something-new", flow).unwrap(), tagged);
        assert_eq!(
            encode(&tagged).unwrap(),
            encode(&decode("flow", flow).unwrap()).unwrap()
        );
        assert!(decode("flow", "{").is_err());
    }
}
