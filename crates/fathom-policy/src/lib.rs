//! Fathom policy: the pure user-space core of identity-aware network policy.
//!
//! - [`load_paths`] / [`load_sources`] / [`load_str`]: Kubernetes `networking.k8s.io/v1`
//!   NetworkPolicy and `fathom.dev/v1alpha1` FathomNetworkPolicy documents → a validated
//!   [`PolicySet`], or every error found (all-or-nothing).
//! - [`Endpoints`]: namespaces, pods, the host. [`IdentityAllocator`]: label sets → ids.
//!   [`IpCache`]: prefixes → identities with longest-prefix lookup.
//! - [`compile`]: policies + endpoints → ipcache and policy map entries (layouts in [`abi`]),
//!   refusing anything that does not fit the maps.
//! - [`evaluate`]: the oracle. [`Compiled::evaluate`] runs the kernel's lookup algorithm over
//!   the compiled entries; tests hold the two to the same verdicts.
//!
//! See `README.md` for the FathomNetworkPolicy format and the exact semantics.

pub mod abi;
mod compile;
mod document;
mod endpoint;
mod error;
mod evaluate;
mod identity;
mod ipcache;
mod load;
mod packet;
mod policy;
mod prefix;
mod selector;
pub mod syntax;
mod validate;
mod verdict;

pub use compile::{compile, CompileOptions, Compiled, DecisionId, PolicyEntry, PolicyKey};
pub use endpoint::{canonical_ip, ContainerPort, Endpoint, EndpointId, Endpoints, Resolved};
pub use error::{
    CompileError, EndpointError, EvaluateError, IdentityError, PolicyError, PolicyErrors,
};
pub use evaluate::evaluate;
pub use identity::{
    cidr_label, endpoint_labels, reserved_labels, AllocatorSnapshot, Derived, Identity,
    IdentityAllocator, Label, LabelSet, LabelSource,
};
pub use ipcache::IpCache;
pub use load::{
    load_paths, load_sources, load_str, LoadOptions, Source, FATHOM_API, NETWORK_POLICY_API,
};
pub use packet::{Packet, Peer, L4};
pub use policy::{
    Direction, IcmpFamily, IpBlock, L4Match, Mode, NamespaceScope, Origin, PeerSpec, Policy,
    PolicyKind, PolicySet, PortProtocol, PortSel, Rule, RuleAction,
};
pub use prefix::{port_range_prefixes, L4Prefix};
pub use selector::{Operator, Requirement, Selector};
pub use syntax::Labels;
pub use verdict::{Action, DirectionVerdict, Reason, RuleRef, Verdict};
