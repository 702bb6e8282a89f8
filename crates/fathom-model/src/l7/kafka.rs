//! Kafka requests and responses, paired by correlation id.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct KafkaExchange {
    pub api_key: i16,
    /// "Produce", "Fetch", "Metadata", …
    pub api_name: Option<String>,
    pub api_version: i16,
    pub correlation_id: i32,
    pub client_id: Option<String>,
    pub topics: Vec<String>,
    /// First non-zero error code found in the response, or 0.
    pub error_code: Option<i16>,
    pub error_name: Option<String>,
}
