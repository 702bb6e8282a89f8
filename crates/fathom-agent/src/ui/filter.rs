//! The flow table's filter form → a `FlowFilter`, through the same parsers as the CLI's flags,
//! so that `x/a`, `10.0.0.0/8` or `app=web` mean in the browser exactly what they mean to
//! `fathom observe`, with the same error messages.

use fathom_model::filter::{parse_cidr, parse_protocol, LabelSelector};
use fathom_model::{FlowEvent, FlowFilter, PodSelector};
use serde::Deserialize;

/// Every field as the user typed it: a list of values, each as one CLI flag's argument.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FilterForm {
    pub pod: Vec<String>,
    pub from_pod: Vec<String>,
    pub to_pod: Vec<String>,
    pub ip: Vec<String>,
    pub from_ip: Vec<String>,
    pub to_ip: Vec<String>,
    pub port: Vec<String>,
    pub protocol: Vec<String>,
    pub label: Vec<String>,
    pub comm: Vec<String>,
    pub event: Vec<String>,
    pub r#type: Vec<String>,
    pub reason: Vec<String>,
}

/// Trimmed, non-empty values, each parsed; the first failure names its field.
fn each<T, E: std::fmt::Display>(
    field: &str,
    values: &[String],
    parse: impl Fn(&str) -> Result<T, E>,
) -> Result<Vec<T>, String> {
    values
        .iter()
        .map(|v| v.trim())
        .filter(|v| !v.is_empty())
        .map(|v| parse(v).map_err(|e| format!("{}: {e}", field.replace('_', "-"))))
        .collect()
}

fn parse_event(s: &str) -> Result<FlowEvent, String> {
    match s {
        "start" => Ok(FlowEvent::Start),
        "update" => Ok(FlowEvent::Update),
        "end" => Ok(FlowEvent::End),
        _ => Err(format!("bad event {s:?}: expected start, update or end")),
    }
}

fn parse_port(s: &str) -> Result<u16, String> {
    s.parse::<u16>()
        .map_err(|_| format!("bad port {s:?}: expected 0-65535"))
}

fn plain(s: &str) -> Result<String, String> {
    Ok(s.to_string())
}

impl FilterForm {
    pub fn parse(&self) -> Result<FlowFilter, String> {
        let pod = |s: &str| s.parse::<PodSelector>();
        Ok(FlowFilter {
            pod: each("pod", &self.pod, pod)?,
            from_pod: each("from_pod", &self.from_pod, pod)?,
            to_pod: each("to_pod", &self.to_pod, pod)?,
            ip: each("ip", &self.ip, parse_cidr)?,
            from_ip: each("from_ip", &self.from_ip, parse_cidr)?,
            to_ip: each("to_ip", &self.to_ip, parse_cidr)?,
            port: each("port", &self.port, parse_port)?,
            protocol: each("protocol", &self.protocol, parse_protocol)?,
            label: each("label", &self.label, |s| s.parse::<LabelSelector>())?,
            comm: each("comm", &self.comm, plain)?,
            r#type: each("type", &self.r#type, plain)?,
            event: each("event", &self.event, parse_event)?,
            // Drop reasons are upper case in records; the filter compares without case.
            reason: each("reason", &self.reason, plain)?,
            ..Default::default()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(v: serde_json::Value) -> Result<FlowFilter, String> {
        serde_json::from_value::<FilterForm>(v)
            .map_err(|e| e.to_string())?
            .parse()
    }

    #[test]
    fn fields_parse_like_cli_flags() {
        let f = form(serde_json::json!({
            "from_pod": ["x/a", " "], "to_pod": ["y/"], "ip": ["10.1.2.3/8"], "port": ["80", "443"],
            "protocol": ["TCP"], "label": ["app=web"], "event": ["end"], "type": ["flow", "policy-verdict"],
        }))
        .expect("valid form");
        assert_eq!(f.from_pod, vec!["x/a".parse::<PodSelector>().unwrap()]);
        assert_eq!(f.to_pod[0].namespace.as_deref(), Some("y"));
        assert_eq!(f.ip[0].to_string(), "10.0.0.0/8");
        assert_eq!(f.port, vec![80, 443]);
        assert_eq!(f.protocol, vec![fathom_model::L4Protocol::Tcp]);
        assert_eq!(f.event, vec![FlowEvent::End]);
        assert_eq!(f.r#type, vec!["flow", "policy-verdict"]);
        assert!(form(serde_json::json!({})).expect("empty").is_empty());
    }

    #[test]
    fn errors_name_the_field() {
        assert_eq!(
            form(serde_json::json!({"from_pod": ["a/b/c"]})).unwrap_err(),
            "from-pod: bad pod \"a/b/c\": expected [namespace/]pod or namespace/"
        );
        assert!(form(serde_json::json!({"port": ["http"]}))
            .unwrap_err()
            .starts_with("port: bad port"));
        assert!(form(serde_json::json!({"to_ip": ["10.0.0.0/33"]}))
            .unwrap_err()
            .starts_with("to-ip: bad CIDR"));
        assert!(form(serde_json::json!({"colour": ["red"]}))
            .unwrap_err()
            .contains("unknown field"));
    }
}
