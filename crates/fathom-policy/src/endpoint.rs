//! The endpoint inventory: namespaces with their labels, pods (endpoints) with labels,
//! addresses and named ports, and the local host's addresses.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::IpAddr;

use serde::Serialize;

use crate::error::EndpointError;
use crate::policy::PortProtocol;
use crate::syntax::{self, Labels, NAMESPACE_NAME_LABEL};

/// The id of a local endpoint as the kernel sees it (the policy map key's first field). The
/// agent chooses it (for example the pod veth's ifindex); it must be unique.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct EndpointId(pub u32);

impl fmt::Display for EndpointId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A named container port (`containerPorts[].name`), what named policy ports resolve against.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct ContainerPort {
    pub name: String,
    pub port: u16,
    pub protocol: PortProtocol,
}

/// A pod.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Endpoint {
    pub id: EndpointId,
    pub namespace: String,
    pub name: String,
    pub labels: Labels,
    pub ips: Vec<IpAddr>,
    pub ports: Vec<ContainerPort>,
}

impl Endpoint {
    pub fn new(id: u32, namespace: &str, name: &str) -> Self {
        Self {
            id: EndpointId(id),
            namespace: namespace.to_string(),
            name: name.to_string(),
            labels: Labels::new(),
            ips: Vec::new(),
            ports: Vec::new(),
        }
    }

    pub fn label(mut self, key: &str, value: &str) -> Self {
        self.labels.insert(key.to_string(), value.to_string());
        self
    }

    pub fn ip(mut self, ip: IpAddr) -> Self {
        self.ips.push(ip);
        self
    }

    pub fn port(mut self, name: &str, port: u16, protocol: PortProtocol) -> Self {
        self.ports.push(ContainerPort {
            name: name.to_string(),
            port,
            protocol,
        });
        self
    }

    /// The port number a named policy port resolves to on this pod, if any.
    pub fn named_port(&self, name: &str, protocol: PortProtocol) -> Option<u16> {
        self.ports
            .iter()
            .find(|p| p.name == name && p.protocol == protocol)
            .map(|p| p.port)
    }

    /// `namespace/name`.
    pub fn display_name(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

/// What an address or endpoint reference resolves to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolved<'a> {
    Endpoint(&'a Endpoint),
    Host,
    External(IpAddr),
}

/// Every endpoint policies can talk about (peers included), the namespaces, and the host.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Endpoints {
    namespaces: BTreeMap<String, Labels>,
    endpoints: BTreeMap<EndpointId, Endpoint>,
    by_ip: BTreeMap<IpAddr, EndpointId>,
    host_ips: BTreeSet<IpAddr>,
}

/// IPv4-mapped IPv6 addresses are the IPv4 address: the kernel stores IPv4 that way, and one
/// address must not have two spellings.
pub fn canonical_ip(ip: IpAddr) -> IpAddr {
    ip.to_canonical()
}

impl Endpoints {
    pub fn new() -> Self {
        Self::default()
    }

    /// Declare a namespace and its labels. The automatic `kubernetes.io/metadata.name` label
    /// is added (and may not be set to anything but the namespace's name).
    pub fn add_namespace(&mut self, name: &str, labels: Labels) -> Result<(), EndpointError> {
        syntax::check_dns_label(name).map_err(|e| EndpointError::Namespace(name.to_string(), e))?;
        if let Some((k, e)) = syntax::check_labels(&labels).into_iter().next() {
            return Err(EndpointError::Namespace(
                name.to_string(),
                format!("label {k:?}: {e}"),
            ));
        }
        if labels.get(NAMESPACE_NAME_LABEL).is_some_and(|v| v != name) {
            return Err(EndpointError::Namespace(
                name.to_string(),
                format!("label {NAMESPACE_NAME_LABEL} must equal the namespace name"),
            ));
        }
        if self.namespaces.contains_key(name) {
            return Err(EndpointError::DuplicateNamespace(name.to_string()));
        }
        let mut labels = labels;
        labels.insert(NAMESPACE_NAME_LABEL.to_string(), name.to_string());
        self.namespaces.insert(name.to_string(), labels);
        Ok(())
    }

    /// Record an address of the local node: traffic to and from it is always allowed.
    pub fn add_host_ip(&mut self, ip: IpAddr) -> Result<(), EndpointError> {
        let ip = canonical_ip(ip);
        if let Some(id) = self.by_ip.get(&ip) {
            let first = self
                .endpoints
                .get(id)
                .map_or_else(String::new, Endpoint::display_name);
            return Err(EndpointError::DuplicateAddress {
                ip,
                first,
                second: "the host".to_string(),
            });
        }
        self.host_ips.insert(ip);
        Ok(())
    }

    /// Add a pod. Its namespace is created (with only the automatic label) if undeclared.
    pub fn add_endpoint(&mut self, mut ep: Endpoint) -> Result<(), EndpointError> {
        let invalid = |reason: String| EndpointError::Invalid {
            endpoint: ep.display_name(),
            reason,
        };
        syntax::check_dns_label(&ep.namespace).map_err(|e| invalid(format!("namespace {e}")))?;
        if ep.name.is_empty() {
            return Err(invalid("name must not be empty".to_string()));
        }
        if let Some((k, e)) = syntax::check_labels(&ep.labels).into_iter().next() {
            return Err(invalid(format!("label {k:?}: {e}")));
        }
        let mut names = BTreeSet::new();
        for p in &ep.ports {
            syntax::check_port_name(&p.name).map_err(&invalid)?;
            if p.port == 0 {
                return Err(invalid(format!("port {:?} has number 0", p.name)));
            }
            if !names.insert(p.name.as_str()) {
                return Err(invalid(format!("port name {:?} is used twice", p.name)));
            }
        }
        if self.endpoints.contains_key(&ep.id) {
            return Err(EndpointError::DuplicateId(ep.id));
        }
        if self
            .endpoints
            .values()
            .any(|e| e.namespace == ep.namespace && e.name == ep.name)
        {
            return Err(EndpointError::DuplicateName(
                ep.namespace.clone(),
                ep.name.clone(),
            ));
        }
        ep.ips = ep.ips.iter().copied().map(canonical_ip).collect();
        ep.ips.sort();
        ep.ips.dedup();
        for ip in &ep.ips {
            let owner = if self.host_ips.contains(ip) {
                Some("the host".to_string())
            } else {
                self.by_ip
                    .get(ip)
                    .and_then(|id| self.endpoints.get(id))
                    .map(Endpoint::display_name)
            };
            if let Some(first) = owner {
                return Err(EndpointError::DuplicateAddress {
                    ip: *ip,
                    first,
                    second: ep.display_name(),
                });
            }
        }
        if !self.namespaces.contains_key(&ep.namespace) {
            self.add_namespace(&ep.namespace.clone(), Labels::new())?;
        }
        for ip in &ep.ips {
            self.by_ip.insert(*ip, ep.id);
        }
        self.endpoints.insert(ep.id, ep);
        Ok(())
    }

    pub fn get(&self, id: EndpointId) -> Option<&Endpoint> {
        self.endpoints.get(&id)
    }

    /// Endpoints in id order.
    pub fn iter(&self) -> impl Iterator<Item = &Endpoint> {
        self.endpoints.values()
    }

    pub fn len(&self) -> usize {
        self.endpoints.len()
    }

    pub fn is_empty(&self) -> bool {
        self.endpoints.is_empty()
    }

    pub fn host_ips(&self) -> impl Iterator<Item = &IpAddr> {
        self.host_ips.iter()
    }

    /// A namespace's labels (with the automatic name label), declared or not.
    pub fn namespace_labels(&self, namespace: &str) -> Labels {
        self.namespaces.get(namespace).cloned().unwrap_or_else(|| {
            Labels::from([(NAMESPACE_NAME_LABEL.to_string(), namespace.to_string())])
        })
    }

    /// What an address is: a pod's, the host's, or something outside.
    pub fn resolve_ip(&self, ip: IpAddr) -> Resolved<'_> {
        let ip = canonical_ip(ip);
        if self.host_ips.contains(&ip) {
            return Resolved::Host;
        }
        match self.by_ip.get(&ip).and_then(|id| self.endpoints.get(id)) {
            Some(ep) => Resolved::Endpoint(ep),
            None => Resolved::External(ip),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn addresses_have_one_owner() {
        let mut e = Endpoints::new();
        e.add_host_ip(ip("10.0.9.9")).expect("host");
        e.add_endpoint(Endpoint::new(1, "x", "a").ip(ip("10.0.0.1")))
            .expect("a");
        let err = e
            .add_endpoint(Endpoint::new(2, "x", "b").ip(ip("::ffff:10.0.0.1")))
            .expect_err("dup");
        assert_eq!(
            err.to_string(),
            "address 10.0.0.1 belongs to both x/a and x/b"
        );
        let err = e
            .add_endpoint(Endpoint::new(3, "x", "c").ip(ip("10.0.9.9")))
            .expect_err("host");
        assert_eq!(
            err.to_string(),
            "address 10.0.9.9 belongs to both the host and x/c"
        );
        assert_eq!(
            e.add_endpoint(Endpoint::new(1, "y", "z")),
            Err(EndpointError::DuplicateId(EndpointId(1)))
        );
        assert_eq!(e.len(), 1, "failed adds change nothing");
    }

    #[test]
    fn namespaces_get_the_automatic_label() {
        let mut e = Endpoints::new();
        e.add_namespace("x", Labels::from([("team".into(), "a".into())]))
            .expect("ns");
        assert_eq!(
            e.namespace_labels("x")
                .get(NAMESPACE_NAME_LABEL)
                .map(String::as_str),
            Some("x")
        );
        assert_eq!(
            e.namespace_labels("undeclared")
                .get(NAMESPACE_NAME_LABEL)
                .map(String::as_str),
            Some("undeclared")
        );
        let err = e
            .add_namespace(
                "y",
                Labels::from([(NAMESPACE_NAME_LABEL.into(), "z".into())]),
            )
            .expect_err("bad");
        assert!(
            err.to_string().contains("must equal the namespace name"),
            "{err}"
        );
    }

    #[test]
    fn endpoints_are_validated() {
        let mut e = Endpoints::new();
        let err = e
            .add_endpoint(Endpoint::new(1, "x", "a").label("-bad", "v"))
            .expect_err("label");
        assert!(
            err.to_string().starts_with("endpoint x/a: label \"-bad\""),
            "{err}"
        );
        let err = e
            .add_endpoint(
                Endpoint::new(1, "x", "a")
                    .port("http", 80, PortProtocol::Tcp)
                    .port("http", 81, PortProtocol::Tcp),
            )
            .expect_err("dup port");
        assert_eq!(
            err.to_string(),
            "endpoint x/a: port name \"http\" is used twice"
        );
        assert_eq!(
            e.resolve_ip(ip("10.0.0.1")),
            Resolved::External(ip("10.0.0.1"))
        );
    }
}
