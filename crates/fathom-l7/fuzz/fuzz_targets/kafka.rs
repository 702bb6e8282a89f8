//! Kafka request/response parser.
#![no_main]

use fathom_l7::kafka::KafkaParser;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    fathom_l7_fuzz::drive_stream(&mut KafkaParser::new(), data);
});
