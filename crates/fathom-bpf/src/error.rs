use thiserror::Error;

#[derive(Debug, Error)]
pub enum BpfError {
    #[error("loading BPF object {object}: {source}{}", verifier_tail(.log))]
    Load {
        object: &'static str,
        log: String,
        source: libbpf_rs::Error,
    },
    #[error("attaching {what}: {source}")]
    Attach {
        what: String,
        source: libbpf_rs::Error,
    },
    #[error("{0}")]
    Other(String),
    #[error("reading map {map}: {source}")]
    Map {
        map: &'static str,
        source: libbpf_rs::Error,
    },
}

fn verifier_tail(log: &str) -> String {
    if log.is_empty() {
        return String::new();
    }
    let lines: Vec<&str> = log.lines().collect();
    let tail = &lines[lines.len().saturating_sub(20)..];
    format!(
        "\nverifier log (last {} lines):\n{}",
        tail.len(),
        tail.join("\n")
    )
}

impl BpfError {
    pub fn attach(what: impl Into<String>, source: libbpf_rs::Error) -> Self {
        BpfError::Attach {
            what: what.into(),
            source,
        }
    }
}
