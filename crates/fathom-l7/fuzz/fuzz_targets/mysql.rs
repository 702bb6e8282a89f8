//! MySQL/MariaDB protocol parser.
#![no_main]

use fathom_l7::mysql::MysqlParser;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    fathom_l7_fuzz::drive_stream(&mut MysqlParser::new(), data);
});
