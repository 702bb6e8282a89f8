//! Verdicts, and the one function that turns "these rules matched" into a verdict.
//!
//! Both the evaluator and the compiler call [`decide`]; they differ in how they find the
//! matching rules (direct semantics vs identities and prefixes), which is what the agreement
//! tests exercise.
//!
//! Precedence in one direction, given the rules that match and the policies that isolate:
//! 1. an enforce-mode deny rule matches → **Deny** (deny wins over any allow);
//! 2. an enforce-mode policy isolates the pod and no enforce-mode allow rule matches →
//!    **Deny** (default deny);
//! 3. otherwise the packet passes enforcement. It is **Audit** if it would have been denied by
//!    steps 1–2 with audit-mode policies treated as enforced (an audit deny rule matches, or an
//!    audit policy isolates the pod and no allow rule of either mode matches);
//! 4. otherwise **Allow**: by the matching allow rules, or because no policy selects the pod.
//!
//! So audit-mode policies never drop and never allow what enforcement denies; `Audit` means
//! "allowed now, dropped once the audit policies are switched to enforce".

use std::fmt;

use serde::Serialize;

use crate::policy::{Direction, Mode, Policy, PolicyKind, Rule, RuleAction};

/// What happens to a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum Action {
    Allow,
    Deny,
    /// Allowed, but an audit-mode policy would deny it.
    Audit,
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Allow => "ALLOW",
            Self::Deny => "DENY",
            Self::Audit => "AUDIT",
        })
    }
}

/// Why.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum Reason {
    /// No policy isolates the pod in this direction: Kubernetes default allow.
    NotSelected,
    AllowedBy,
    DeniedBy,
    DefaultDeny,
    AuditDeniedBy,
    AuditDefaultDeny,
    /// Traffic to and from the local node is always allowed (Kubernetes NetworkPolicy).
    Host,
    /// Neither side is a known endpoint: nothing to enforce.
    NoEndpoint,
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::NotSelected => "no policy selects the pod",
            Self::AllowedBy => "allowed by",
            Self::DeniedBy => "denied by",
            Self::DefaultDeny => "default deny",
            Self::AuditDeniedBy => "audit: would be denied by",
            Self::AuditDefaultDeny => "audit: would be default deny",
            Self::Host => "traffic to and from the node is always allowed",
            Self::NoEndpoint => "no endpoint involved",
        })
    }
}

/// A policy, or one rule of it, that took part in a verdict.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct RuleRef {
    pub namespace: String,
    pub name: String,
    pub kind: PolicyKind,
    pub mode: Mode,
    /// Index in the policy's ingress/egress list; `None` when the policy as a whole is meant
    /// (it isolates the pod: default deny).
    pub rule: Option<usize>,
    /// The rule's description, or the policy's when the policy as a whole is meant.
    pub description: Option<String>,
    pub log_label: Option<String>,
}

impl RuleRef {
    pub(crate) fn rule(p: &Policy, r: &Rule) -> Self {
        Self {
            namespace: p.namespace.clone(),
            name: p.name.clone(),
            kind: p.kind,
            mode: p.mode,
            rule: Some(r.index),
            description: r.description.clone(),
            log_label: r.log_label.clone(),
        }
    }

    pub(crate) fn policy(p: &Policy) -> Self {
        Self {
            namespace: p.namespace.clone(),
            name: p.name.clone(),
            kind: p.kind,
            mode: p.mode,
            rule: None,
            description: p.description.clone(),
            log_label: None,
        }
    }
}

impl fmt::Display for RuleRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}/{}", self.kind, self.namespace, self.name)?;
        if let Some(i) = self.rule {
            write!(f, " rule {i}")?;
        }
        if self.mode == Mode::Audit {
            f.write_str(" (audit)")?;
        }
        if let Some(l) = &self.log_label {
            write!(f, " [{l}]")?;
        }
        Ok(())
    }
}

/// The verdict of one direction (egress at the source pod, or ingress at the destination).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct DirectionVerdict {
    pub direction: Direction,
    pub action: Action,
    pub reason: Reason,
    /// Sorted by (namespace, name, kind, rule).
    pub policies: Vec<RuleRef>,
}

impl DirectionVerdict {
    pub(crate) fn simple(direction: Direction, reason: Reason) -> Self {
        Self {
            direction,
            action: Action::Allow,
            reason,
            policies: Vec::new(),
        }
    }
}

impl fmt::Display for DirectionVerdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.action, self.direction, self.reason)?;
        let refs: Vec<String> = self.policies.iter().map(ToString::to_string).collect();
        if !refs.is_empty() {
            write!(f, " {}", refs.join(", "))?;
        }
        Ok(())
    }
}

/// The verdict on a packet: egress from the source pod AND ingress to the destination pod.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verdict {
    pub action: Action,
    /// The direction that decided: the first non-allowing one (egress before ingress), else the
    /// one an allow rule decided (ingress before egress), else ingress.
    pub direction: Direction,
    pub reason: Reason,
    pub policies: Vec<RuleRef>,
    /// `None` when the source is not an endpoint (no egress policy can apply).
    pub egress: Option<DirectionVerdict>,
    /// `None` when the destination is not an endpoint.
    pub ingress: Option<DirectionVerdict>,
}

impl Verdict {
    /// Combine the two directions.
    pub fn combine(egress: Option<DirectionVerdict>, ingress: Option<DirectionVerdict>) -> Self {
        let both = [egress.as_ref(), ingress.as_ref()];
        let first = |a: Action| both.iter().flatten().find(|v| v.action == a).copied();
        let allowed_by = [ingress.as_ref(), egress.as_ref()]
            .into_iter()
            .flatten()
            .find(|v| v.reason == Reason::AllowedBy);
        let pick = first(Action::Deny)
            .or_else(|| first(Action::Audit))
            .or(allowed_by)
            .or(ingress.as_ref())
            .or(egress.as_ref())
            .cloned();
        let pick = pick
            .unwrap_or_else(|| DirectionVerdict::simple(Direction::Ingress, Reason::NoEndpoint));
        Self {
            action: pick.action,
            direction: pick.direction,
            reason: pick.reason,
            policies: pick.policies,
            egress,
            ingress,
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.action, self.direction, self.reason)?;
        let refs: Vec<String> = self.policies.iter().map(ToString::to_string).collect();
        if !refs.is_empty() {
            write!(f, " {}", refs.join(", "))?;
        }
        Ok(())
    }
}

/// Decide one direction. `isolating`: policies that select the pod and isolate it in this
/// direction. `matched`: rules (with their policy) that match the packet, in any order and
/// possibly repeated.
pub(crate) fn decide(
    direction: Direction,
    isolating: &[&Policy],
    matched: &[(&Policy, &Rule)],
) -> DirectionVerdict {
    let enforce = |p: &Policy| p.mode == Mode::Enforce;
    let refs = |pick: &dyn Fn(&Policy, &Rule) -> bool| {
        let mut v: Vec<RuleRef> = matched
            .iter()
            .filter(|(p, r)| pick(p, r))
            .map(|(p, r)| RuleRef::rule(p, r))
            .collect();
        v.sort();
        v.dedup();
        v
    };
    let policy_refs = |pick: &dyn Fn(&Policy) -> bool| {
        let mut v: Vec<RuleRef> = isolating
            .iter()
            .filter(|p| pick(p))
            .map(|p| RuleRef::policy(p))
            .collect();
        v.sort();
        v.dedup();
        v
    };
    let verdict = |action, reason, policies| DirectionVerdict {
        direction,
        action,
        reason,
        policies,
    };

    let enforce_denies = refs(&|p, r| enforce(p) && r.action == RuleAction::Deny);
    if !enforce_denies.is_empty() {
        return verdict(Action::Deny, Reason::DeniedBy, enforce_denies);
    }
    let enforce_isolated = isolating.iter().any(|p| enforce(p));
    let allows = refs(&|_, r| r.action == RuleAction::Allow);
    let enforce_allowed = matched
        .iter()
        .any(|(p, r)| enforce(p) && r.action == RuleAction::Allow);
    if enforce_isolated && !enforce_allowed {
        return verdict(
            Action::Deny,
            Reason::DefaultDeny,
            policy_refs(&|p| enforce(p)),
        );
    }
    let audit_denies = refs(&|_, r| r.action == RuleAction::Deny);
    if !audit_denies.is_empty() {
        return verdict(Action::Audit, Reason::AuditDeniedBy, audit_denies);
    }
    if !isolating.is_empty() && allows.is_empty() {
        return verdict(
            Action::Audit,
            Reason::AuditDefaultDeny,
            policy_refs(&|_| true),
        );
    }
    if !allows.is_empty() {
        return verdict(Action::Allow, Reason::AllowedBy, allows);
    }
    verdict(Action::Allow, Reason::NotSelected, Vec::new())
}
