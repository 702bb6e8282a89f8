//! Network policy in the agent: the applied documents (persisted in the state directory), the
//! endpoints built from the lab inventory, the compiler, and policy.bpf.c on every pod's host
//! veth. One thread owns all of it (the BPF skeleton is not `Send`); the API talks to it over
//! a command channel. Every change (apply, delete, pods, labels, namespaces) recompiles the
//! whole set and swaps it in atomically; a change that fails anywhere changes nothing.
//!
//! Enforcement outlives the agent: the maps and links are pinned (`pin_root`), and the
//! identity allocator is kept in the state directory next to the policies, so a restarted
//! agent re-adopts the pinned state, hands out the same identities, and swaps its program in
//! without a moment unenforced. `fathom uninstall` removes the pins.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fathom_bpf::policy::{
    KernelVerdict, PolicyConfig, PolicyDatapath, PolicyVerdictEvent, DEFAULT_PIN_ROOT,
};
use fathom_model::{
    InterfaceRef, L4Protocol, PolicyRuleRef, PolicyVerdict, PolicyVerdictRecord, Record,
};
use fathom_policy::{
    compile, evaluate, load_sources, AllocatorSnapshot, CompileOptions, Compiled, ContainerPort,
    DecisionId, Endpoint, Endpoints, IdentityAllocator, LoadOptions, Packet, Peer, PolicySet,
    PortProtocol, Source, Verdict, L4,
};
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

use crate::clock::BootClock;
use crate::inventory::Inventory;

/// `policy:` in the agent config.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct PolicyAgentConfig {
    /// Load policy.bpf.c and enforce applied policies on lab pods.
    pub enabled: bool,
    /// Applied policies are kept here (`policies.json`) and re-applied at start, with the
    /// identities handed out so far (`identities.json`).
    pub state_dir: PathBuf,
    /// bpffs directory where the maps and links are pinned, so enforcement and counters
    /// survive an agent restart (re-adopted at start, removed by `fathom uninstall`).
    /// `null`: nothing pinned, enforcement stops with the agent.
    pub pin_root: Option<PathBuf>,
    /// Enforce on the pods of these labs only (empty: every lab on the node).
    pub labs: Vec<String>,
    pub policy_map_entries: u32,
    pub ipcache_entries: u32,
    pub conntrack_entries: u32,
}

impl Default for PolicyAgentConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            state_dir: PathBuf::from("/var/lib/fathom/policy"),
            pin_root: Some(PathBuf::from(DEFAULT_PIN_ROOT)),
            labs: Vec::new(),
            policy_map_entries: 65_536,
            ipcache_entries: 65_536,
            conntrack_entries: 65_536,
        }
    }
}

/// One applied policy as `policy list` shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PolicySummary {
    pub kind: String,
    pub namespace: String,
    pub name: String,
    pub mode: String,
    pub ingress_rules: usize,
    pub egress_rules: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PolicyListing {
    /// The generation packets use (bumped by every successful change).
    pub generation: u32,
    pub endpoints: usize,
    pub policy_map_entries: usize,
    pub ipcache_entries: usize,
    pub policies: Vec<PolicySummary>,
    /// The program's own counters (packets, forwarded, dropped …); pinned, they continue
    /// across agent restarts.
    #[serde(default)]
    pub stats: BTreeMap<String, u64>,
    /// Where the state is pinned (`None`: not pinned).
    #[serde(default)]
    pub pin_root: Option<PathBuf>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ApplyAnswer {
    /// "x/allow-web configured", "x/deny-all created", "x/old deleted".
    pub changes: Vec<String>,
    pub generation: u32,
    pub policy_map_entries: usize,
}

/// Why a change was refused: one line per problem (file, document, field, reason).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Refusal {
    pub errors: Vec<String>,
}

impl Refusal {
    fn one(msg: impl Into<String>) -> Self {
        Self {
            errors: vec![msg.into()],
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Explanation {
    pub from: String,
    pub to: String,
    pub protocol: String,
    pub verdict: serde_json::Value,
}

/// Requests to the policy thread.
pub enum Command {
    Apply {
        sources: Vec<(String, String)>,
        reply: oneshot::Sender<Result<ApplyAnswer, Refusal>>,
    },
    Delete {
        name: String,
        reply: oneshot::Sender<Result<ApplyAnswer, Refusal>>,
    },
    List {
        reply: oneshot::Sender<PolicyListing>,
    },
    Get {
        name: String,
        reply: oneshot::Sender<Result<Vec<serde_json::Value>, Refusal>>,
    },
    Explain {
        from: String,
        to: String,
        port: String,
        reply: oneshot::Sender<Result<Explanation, Refusal>>,
    },
    /// Every policy/ipcache/state/endpoint map entry, hex: for "nothing changed" checks.
    Maps {
        reply: oneshot::Sender<BTreeMap<String, Vec<String>>>,
    },
}

/// The API's side of the channel.
#[derive(Clone)]
pub struct PolicyHandle {
    tx: Sender<Command>,
}

impl PolicyHandle {
    /// A handle with no engine behind it (policy disabled or failed to load): every request
    /// answers that the engine is not running.
    pub fn disconnected() -> Self {
        let (tx, _) = channel();
        Self { tx }
    }

    pub async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, Refusal> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(make(reply))
            .map_err(|_| Refusal::one("the policy engine is not running"))?;
        rx.await
            .map_err(|_| Refusal::one("the policy engine stopped while answering"))
    }
}

/// Where verdict records go (the agent's sinks), and the node they are seen on.
pub struct PolicySinks {
    pub sinks: Arc<crate::sinks::Sinks>,
    pub node: String,
}

impl PolicySinks {
    fn emit(&self, r: Record) {
        self.sinks.emit(r);
    }
}

/// Stored documents, keyed `kind/namespace/name`, as JSON.
type Documents = BTreeMap<String, serde_json::Value>;

const STATE_FILE: &str = "policies.json";
const IDENTITY_FILE: &str = "identities.json";
const REFRESH: Duration = Duration::from_secs(1);

/// Start the policy thread; returns once the program is loaded and stored policies are applied
/// (or with the reason it could not load).
pub fn start(
    cfg: PolicyAgentConfig,
    sinks: PolicySinks,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<(PolicyHandle, std::thread::JoinHandle<()>)> {
    let (tx, rx) = channel();
    let (ready_tx, ready_rx) = std::sync::mpsc::sync_channel::<Result<(), String>>(1);
    let handle = std::thread::Builder::new()
        .name("fathom-policy".into())
        .spawn(move || {
            let mut engine = match Engine::new(cfg, sinks) {
                Ok(e) => e,
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                    return;
                }
            };
            let _ = ready_tx.send(Ok(()));
            engine.run(rx, &stop);
        })?;
    match ready_rx.recv() {
        Ok(Ok(())) => Ok((PolicyHandle { tx }, handle)),
        Ok(Err(e)) => {
            let _ = handle.join();
            anyhow::bail!("{e}")
        }
        Err(_) => anyhow::bail!("the policy thread died while loading"),
    }
}

struct Engine {
    cfg: PolicyAgentConfig,
    sinks: PolicySinks,
    dp: PolicyDatapath,
    docs: Documents,
    set: PolicySet,
    alloc: IdentityAllocator,
    inventory: Inventory,
    endpoints: Endpoints,
    /// Fingerprint of what the endpoints were built from.
    inventory_key: String,
    /// Decision tables by slot, with the generation they were applied as.
    tables: [Option<(u32, Arc<Compiled>)>; 2],
    compiled: Option<Arc<Compiled>>,
    events: Rc<RefCell<Vec<PolicyVerdictEvent>>>,
    clock: BootClock,
    ifnames: BTreeMap<u32, String>,
    /// The allocator as last written to `identities.json`.
    saved_identities: Option<AllocatorSnapshot>,
    /// The lab inventory was read at least once: until then, links re-adopted from a
    /// previous agent are not judged stale.
    inventory_read: bool,
}

impl Engine {
    fn new(cfg: PolicyAgentConfig, sinks: PolicySinks) -> Result<Self, String> {
        let dp = load_datapath(&cfg)?;
        let docs = read_state(&cfg.state_dir)?;
        let (alloc, saved_identities) = read_identities(&cfg.state_dir);
        let mut e = Engine {
            cfg,
            sinks,
            dp,
            docs: Documents::new(),
            set: load_sources(&[], &LoadOptions::default()).map_err(|e| e.to_string())?,
            alloc,
            inventory: Inventory::default(),
            endpoints: Endpoints::new(),
            inventory_key: String::new(),
            tables: [None, None],
            compiled: None,
            events: Rc::new(RefCell::new(Vec::new())),
            clock: BootClock::new(),
            ifnames: BTreeMap::new(),
            saved_identities,
            inventory_read: false,
        };
        e.refresh_inventory();
        // Stored policies were valid when stored; if they no longer load (an older/newer
        // agent), say so and start empty rather than refusing to run.
        if let Err(r) = e.change(docs) {
            tracing::error!(
                "stored policies in {} could not be applied: {}",
                e.cfg.state_dir.display(),
                r.errors.join("; ")
            );
            e.change(Documents::new())
                .map_err(|r| r.errors.join("; "))?;
        }
        e.sync_attachments();
        Ok(e)
    }

    fn run(&mut self, rx: Receiver<Command>, stop: &AtomicBool) {
        let sink = Rc::clone(&self.events);
        let rb = match self.dp.ring_buffer(move |ev| sink.borrow_mut().push(ev)) {
            Ok(rb) => Some(rb),
            Err(e) => {
                tracing::error!("policy verdict events unavailable: {e}");
                None
            }
        };
        let mut next_refresh = Instant::now() + REFRESH;
        while !stop.load(Ordering::Relaxed) {
            match rx.recv_timeout(Duration::from_millis(50)) {
                Ok(cmd) => self.command(cmd),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            if let Some(rb) = &rb {
                let _ = rb.consume();
            }
            self.publish_events();
            if Instant::now() >= next_refresh {
                if self.refresh_inventory() {
                    let docs = self.docs.clone();
                    if let Err(r) = self.change(docs) {
                        tracing::error!(
                            "recompiling policies after an inventory change failed (the previous policy stays): {}",
                            r.errors.join("; ")
                        );
                    }
                }
                self.sync_attachments();
                next_refresh = Instant::now() + REFRESH;
            }
        }
        if let Some(rb) = &rb {
            let _ = rb.consume();
        }
        self.publish_events();
        match self.dp.pin_root() {
            Some(root) => tracing::info!(
                "policy enforcement left in place (pinned under {}; `fathom uninstall` removes it)",
                root.display()
            ),
            None => tracing::info!("policy programs detached"),
        }
    }

    fn command(&mut self, cmd: Command) {
        match cmd {
            Command::Apply { sources, reply } => {
                let _ = reply.send(self.apply(sources));
            }
            Command::Delete { name, reply } => {
                let _ = reply.send(self.delete(&name));
            }
            Command::List { reply } => {
                let _ = reply.send(self.listing());
            }
            Command::Get { name, reply } => {
                let found = self.find(&name);
                let _ = reply.send(if found.is_empty() {
                    Err(Refusal::one(format!("no applied policy named {name:?}")))
                } else {
                    Ok(found.into_iter().map(|(_, v)| v.clone()).collect())
                });
            }
            Command::Explain {
                from,
                to,
                port,
                reply,
            } => {
                let _ = reply.send(self.explain(&from, &to, &port));
            }
            Command::Maps { reply } => {
                let dump = self
                    .dp
                    .dump()
                    .into_iter()
                    .map(|(name, entries)| {
                        let lines = entries
                            .iter()
                            .map(|(k, v)| format!("{}={}", hex(k), hex(v)))
                            .collect();
                        (name.to_string(), lines)
                    })
                    .collect();
                let _ = reply.send(dump);
            }
        }
    }

    /// Validate the new documents on their own (so errors name the user's files), merge them
    /// over the applied ones, and change to the result.
    fn apply(&mut self, sources: Vec<(String, String)>) -> Result<ApplyAnswer, Refusal> {
        if sources.is_empty() {
            return Err(Refusal::one("nothing to apply: no documents given"));
        }
        let srcs: Vec<Source> = sources
            .iter()
            .map(|(name, text)| Source {
                name: name.clone(),
                text: text.clone(),
            })
            .collect();
        let set = load_sources(&srcs, &LoadOptions::default()).map_err(|e| Refusal {
            errors: e.0.iter().map(|e| e.to_string()).collect(),
        })?;
        if set.policies().is_empty() {
            return Err(Refusal::one(
                "nothing to apply: no policies in the documents",
            ));
        }
        let mut docs = self.docs.clone();
        let mut changes = Vec::new();
        for (key, doc) in split_documents(&sources).map_err(Refusal::one)? {
            let verb = match docs.get(&key) {
                None => "created",
                Some(old) if *old == doc => "unchanged",
                Some(_) => "configured",
            };
            changes.push(format!("{} {verb}", display_key(&key)));
            docs.insert(key, doc);
        }
        let generation = self.change(docs)?;
        Ok(ApplyAnswer {
            changes,
            generation,
            policy_map_entries: self.compiled.as_ref().map_or(0, |c| c.entries().len()),
        })
    }

    fn delete(&mut self, name: &str) -> Result<ApplyAnswer, Refusal> {
        let keys: Vec<String> = self
            .find(name)
            .into_iter()
            .map(|(k, _)| k.clone())
            .collect();
        if keys.is_empty() {
            return Err(Refusal::one(format!("no applied policy named {name:?}")));
        }
        if keys.len() > 1 {
            return Err(Refusal::one(format!(
                "{name:?} names {} policies ({}): say namespace/name or kind/namespace/name",
                keys.len(),
                keys.iter()
                    .map(|k| display_key(k))
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        let mut docs = self.docs.clone();
        docs.remove(&keys[0]);
        let generation = self.change(docs)?;
        Ok(ApplyAnswer {
            changes: vec![format!("{} deleted", display_key(&keys[0]))],
            generation,
            policy_map_entries: self.compiled.as_ref().map_or(0, |c| c.entries().len()),
        })
    }

    /// Applied documents a name refers to: `name`, `namespace/name` or `kind/namespace/name`.
    fn find(&self, name: &str) -> Vec<(&String, &serde_json::Value)> {
        self.docs
            .iter()
            .filter(|(k, _)| {
                let parts: Vec<&str> = k.splitn(3, '/').collect();
                let [kind, ns, n] = parts[..] else {
                    return false;
                };
                name == *k
                    || name == format!("{ns}/{n}")
                    || name == n
                    || name == format!("{kind}/{n}")
            })
            .collect()
    }

    /// Load, compile and swap in `docs`; only then keep them. Returns the new generation.
    fn change(&mut self, docs: Documents) -> Result<u32, Refusal> {
        let sources: Vec<Source> = docs
            .iter()
            .map(|(k, v)| Source {
                name: format!("applied:{k}"),
                text: v.to_string(),
            })
            .collect();
        let set = load_sources(&sources, &LoadOptions::default()).map_err(|e| Refusal {
            errors: e.0.iter().map(|e| e.to_string()).collect(),
        })?;
        let opts = CompileOptions {
            policy_map_capacity: self.cfg.policy_map_entries as usize,
            ipcache_capacity: self.cfg.ipcache_entries as usize,
        };
        let compiled = compile(&set, &self.endpoints, &mut self.alloc, &opts)
            .map_err(|e| Refusal::one(e.to_string()))?;
        let policy: Vec<_> = compiled
            .policy_map_entries()
            .iter()
            .map(|(k, v)| (k.to_bytes(), v.to_bytes()))
            .collect();
        let ipcache: Vec<_> = compiled
            .ipcache_map_entries()
            .iter()
            .map(|(k, v)| (k.to_bytes(), v.to_bytes()))
            .collect();
        // Verdict events of the slot about to be rewritten refer to its old table: publish
        // them before that table goes.
        if let Some(rb_events) = self.events.try_borrow().ok().map(|e| e.len()) {
            if rb_events > 0 {
                self.publish_events();
            }
        }
        let report = self
            .dp
            .apply(&policy, &ipcache)
            .map_err(|e| Refusal::one(format!("updating the kernel maps: {e}")))?;
        if self.docs != docs {
            write_json(&self.cfg.state_dir, STATE_FILE, &docs).map_err(Refusal::one)?;
        }
        self.save_identities();
        let compiled = Arc::new(compiled);
        self.tables[report.slot as usize] = Some((report.generation, Arc::clone(&compiled)));
        self.compiled = Some(compiled);
        self.docs = docs;
        self.set = set;
        tracing::info!(
            generation = report.generation,
            policies = self.set.len(),
            entries = policy.len(),
            written = report.policy_written,
            deleted = report.policy_deleted,
            "policy applied"
        );
        Ok(report.generation)
    }

    /// Keep the allocator so a restarted agent hands out the same ids. Failing to is no
    /// reason to refuse the change: a restart then rewrites the standby slot whole from fresh
    /// ids before flipping, which is consistent, only not the same numbers.
    fn save_identities(&mut self) {
        let snap = self.alloc.snapshot();
        if self.saved_identities.as_ref() == Some(&snap) {
            return;
        }
        match write_json(&self.cfg.state_dir, IDENTITY_FILE, &snap) {
            Ok(()) => self.saved_identities = Some(snap),
            Err(e) => tracing::warn!("keeping identities for the next start: {e}"),
        }
    }

    fn listing(&self) -> PolicyListing {
        PolicyListing {
            generation: self.dp.generation(),
            endpoints: self.endpoints.len(),
            policy_map_entries: self.compiled.as_ref().map_or(0, |c| c.entries().len()),
            ipcache_entries: self.compiled.as_ref().map_or(0, |c| c.ipcache().len()),
            policies: self
                .set
                .policies()
                .iter()
                .map(|p| PolicySummary {
                    kind: p.kind.as_str().to_string(),
                    namespace: p.namespace.clone(),
                    name: p.name.clone(),
                    mode: p.mode.to_string(),
                    ingress_rules: p.ingress.len(),
                    egress_rules: p.egress.len(),
                })
                .collect(),
            stats: self
                .dp
                .stats()
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
            pin_root: self.dp.pin_root().map(Path::to_path_buf),
        }
    }

    fn explain(&self, from: &str, to: &str, port: &str) -> Result<Explanation, Refusal> {
        let src = self.peer(from)?;
        let dst = self.peer(to)?;
        let l4 = parse_l4(port).map_err(Refusal::one)?;
        let verdict: Verdict = evaluate(&self.set, &self.endpoints, &Packet::new(src, dst, l4))
            .map_err(|e| Refusal::one(e.to_string()))?;
        Ok(Explanation {
            from: from.to_string(),
            to: to.to_string(),
            protocol: port.to_string(),
            verdict: serde_json::to_value(&verdict).unwrap_or_default(),
        })
    }

    /// `namespace/pod` or an address.
    fn peer(&self, s: &str) -> Result<Peer, Refusal> {
        if let Ok(ip) = s.parse::<IpAddr>() {
            return Ok(Peer::Ip(ip));
        }
        let (ns, name) = s.split_once('/').unwrap_or(("default", s));
        self.endpoints
            .iter()
            .find(|e| e.namespace == ns && e.name == name)
            .map(|e| Peer::Endpoint(e.id))
            .ok_or_else(|| {
                Refusal::one(format!(
                    "{s:?} is neither an address nor a known pod (namespace/name)"
                ))
            })
    }

    /// Rebuild the endpoints from the labs in scope; true when they changed.
    fn refresh_inventory(&mut self) -> bool {
        let labs = match fathom_lab::list_labs() {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!("reading lab inventory: {e}");
                return false;
            }
        };
        self.inventory_read = true;
        let labs: Vec<_> = labs
            .into_iter()
            .filter(|l| self.cfg.labs.is_empty() || self.cfg.labs.contains(&l.name))
            .collect();
        let key = serde_json::to_string(
            &labs
                .iter()
                .map(|l| (&l.name, &l.namespaces, &l.pods))
                .collect::<Vec<_>>(),
        )
        .unwrap_or_default();
        if key == self.inventory_key {
            return false;
        }
        let mut eps = Endpoints::new();
        let mut pods = Vec::new();
        for lab in &labs {
            for ns in &lab.namespaces {
                if let Err(e) = eps.add_namespace(&ns.name, ns.labels.clone()) {
                    tracing::warn!(lab = %lab.name, "namespace {}: {e}", ns.name);
                }
            }
            for p in &lab.pods {
                let mut ep = Endpoint::new(p.host_ifindex, &p.namespace, &p.name)
                    .ip(IpAddr::V4(p.ipv4))
                    .ip(IpAddr::V6(p.ipv6));
                ep.labels = p.labels.clone();
                ep.ports = p
                    .ports
                    .iter()
                    .filter_map(|port| {
                        Some(ContainerPort {
                            name: port.name.clone()?,
                            port: port.port,
                            protocol: match port.protocol {
                                fathom_lab::Protocol::Tcp => PortProtocol::Tcp,
                                fathom_lab::Protocol::Udp => PortProtocol::Udp,
                                fathom_lab::Protocol::Sctp => PortProtocol::Sctp,
                            },
                        })
                    })
                    .collect();
                match eps.add_endpoint(ep) {
                    Ok(()) => pods.push(crate::inventory::PodInfo {
                        namespace: p.namespace.clone(),
                        name: p.name.clone(),
                        labels: p.labels.clone().into_iter().collect(),
                        ips: vec![IpAddr::V4(p.ipv4), IpAddr::V6(p.ipv6)],
                        cgroup_id: p.cgroup_id,
                        host_ifname: p.host_veth.clone(),
                        host_ifindex: p.host_ifindex,
                    }),
                    Err(e) => {
                        tracing::warn!(lab = %lab.name, "pod {}/{}: {e}", p.namespace, p.name)
                    }
                }
            }
        }
        self.endpoints = eps;
        self.inventory = Inventory::from_pods(pods);
        self.inventory_key = key;
        self.ifnames = self
            .inventory
            .pods()
            .iter()
            .map(|p| (p.host_ifindex, p.host_ifname.clone()))
            .collect();
        true
    }

    /// Attach to the host veth of every pod in scope (after the policy for it is in the maps),
    /// take over the links re-adopted from a previous agent, detach (and unpin) from the
    /// ones gone.
    fn sync_attachments(&mut self) {
        if !self.inventory_read {
            return;
        }
        let want: BTreeMap<u32, String> = self.ifnames.clone();
        for idx in self.dp.attached() {
            if !want.contains_key(&idx) {
                self.dp.detach(idx);
            }
        }
        for (idx, name) in want {
            if !self.dp.needs_attach(idx) {
                continue;
            }
            if let Err(e) = self.dp.set_endpoint(idx, idx) {
                tracing::warn!(interface = %name, "policy endpoint: {e}");
                continue;
            }
            let adopted = self.dp.attached().contains(&idx);
            match self.dp.attach(idx) {
                Ok(mode) if adopted => tracing::info!(
                    interface = %name,
                    ?mode,
                    "policy program swapped into the re-adopted links"
                ),
                Ok(mode) => tracing::info!(interface = %name, ?mode, "policy attached"),
                Err(e) => {
                    // Re-adopted links that could not be taken over still enforce with the
                    // previous program: keep their endpoint.
                    if !self.dp.attached().contains(&idx) {
                        self.dp.remove_endpoint(idx);
                    }
                    tracing::warn!(interface = %name, "policy attach failed: {e}");
                }
            }
        }
    }

    fn publish_events(&mut self) {
        let events = std::mem::take(&mut *self.events.borrow_mut());
        for ev in events {
            let r = self.record(&ev);
            self.sinks.emit(Record::from(r));
        }
    }

    fn record(&self, ev: &PolicyVerdictEvent) -> PolicyVerdictRecord {
        let table = self.tables[ev.slot() as usize]
            .as_ref()
            .filter(|(g, _)| *g == ev.generation)
            .map(|(_, c)| c);
        let decision = table.and_then(|c| c.decision(DecisionId(ev.decision_id)));
        let (reason, policies) = match decision {
            Some(d) => (
                d.reason.to_string(),
                d.policies
                    .iter()
                    .map(|r| PolicyRuleRef {
                        namespace: r.namespace.clone(),
                        name: r.name.clone(),
                        kind: r.kind.as_str().to_string(),
                        mode: r.mode.to_string(),
                        rule: r.rule.map(|i| format!("{}[{i}]", d.direction.as_str())),
                        description: r.description.clone(),
                        log_label: r.log_label.clone(),
                    })
                    .collect(),
            ),
            None => ("policy changed since the verdict".to_string(), Vec::new()),
        };
        let proto = L4Protocol::from_ip_proto(ev.proto);
        let icmp = matches!(proto, L4Protocol::Icmp | L4Protocol::Icmpv6);
        let (sport, dport) = if icmp { (0, 0) } else { (ev.sport, ev.dport) };
        PolicyVerdictRecord {
            time: self.clock.to_wall(ev.ts_ns),
            verdict: match ev.verdict {
                KernelVerdict::Forwarded => PolicyVerdict::Forwarded,
                KernelVerdict::Dropped => PolicyVerdict::Dropped,
                KernelVerdict::Audit => PolicyVerdict::Audit,
            },
            direction: if ev.direction == fathom_bpf::abi::policy::POLICY_EGRESS {
                "egress".into()
            } else {
                "ingress".into()
            },
            endpoint: self
                .endpoints
                .get(fathom_policy::EndpointId(ev.endpoint_id))
                .map(|e| format!("{}/{}", e.namespace, e.name))
                .unwrap_or_default(),
            source: self.inventory.endpoint(ev.src, sport),
            destination: self.inventory.endpoint(ev.dst, dport),
            protocol: proto,
            icmp_type: icmp.then_some(ev.icmp_type),
            icmp_code: icmp.then_some(ev.icmp_code),
            reason,
            policies,
            peer_identity: ev.peer_identity,
            interface: Some(InterfaceRef {
                ifindex: ev.ifindex,
                name: self.ifnames.get(&ev.ifindex).cloned(),
            }),
            length: ev.len,
            node: self.sinks.node.clone(),
        }
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn display_key(k: &str) -> String {
    // kind/namespace/name → "namespace/name (kind)"
    let parts: Vec<&str> = k.splitn(3, '/').collect();
    match parts[..] {
        [kind, ns, n] => format!("{ns}/{n} ({kind})"),
        _ => k.to_string(),
    }
}

/// `80`, `80/tcp`, `53/udp`, `5000/sctp`, `8/icmp` (type), `128/icmpv6`, `8:0/icmp`.
pub fn parse_l4(s: &str) -> Result<L4, String> {
    let (num, proto) = s.split_once('/').unwrap_or((s, "tcp"));
    let bad = || format!("bad PORT/PROTO {s:?}: expected e.g. 80/tcp, 53/udp, 5000/sctp, 8/icmp");
    match proto.to_ascii_lowercase().as_str() {
        "tcp" | "udp" | "sctp" => {
            let dport: u16 = num.parse().map_err(|_| bad())?;
            Ok(match proto.to_ascii_lowercase().as_str() {
                "tcp" => L4::Tcp { dport },
                "udp" => L4::Udp { dport },
                _ => L4::Sctp { dport },
            })
        }
        "icmp" | "icmpv6" => {
            let (t, c) = num.split_once(':').unwrap_or((num, "0"));
            let icmp_type: u8 = t.parse().map_err(|_| bad())?;
            let code: u8 = c.parse().map_err(|_| bad())?;
            Ok(if proto.eq_ignore_ascii_case("icmp") {
                L4::Icmp { icmp_type, code }
            } else {
                L4::Icmpv6 { icmp_type, code }
            })
        }
        _ => Err(bad()),
    }
}

/// Every policy document of an apply (List items flattened), keyed `kind/namespace/name`.
/// Only called after the sources validated, so shapes are known to be right.
fn split_documents(
    sources: &[(String, String)],
) -> Result<Vec<(String, serde_json::Value)>, String> {
    let mut out = Vec::new();
    for (name, text) in sources {
        for de in serde_norway::Deserializer::from_str(text) {
            let v = serde_json::Value::deserialize(de).map_err(|e| format!("{name}: {e}"))?;
            if v.is_null() {
                continue;
            }
            let items = if v.get("kind").and_then(|k| k.as_str()) == Some("List") {
                v.get("items")
                    .and_then(|i| i.as_array())
                    .cloned()
                    .unwrap_or_default()
            } else {
                vec![v]
            };
            for mut item in items {
                let kind = item
                    .get("kind")
                    .and_then(|k| k.as_str())
                    .unwrap_or_default()
                    .to_string();
                let meta = item
                    .get_mut("metadata")
                    .and_then(|m| m.as_object_mut())
                    .ok_or_else(|| format!("{name}: a document without metadata"))?;
                let ns = meta
                    .entry("namespace")
                    .or_insert_with(|| serde_json::Value::String("default".into()))
                    .as_str()
                    .unwrap_or("default")
                    .to_string();
                let n = meta
                    .get("name")
                    .and_then(|n| n.as_str())
                    .unwrap_or_default()
                    .to_string();
                out.push((format!("{kind}/{ns}/{n}"), item));
            }
        }
    }
    Ok(out)
}

/// The datapath, pinned when configured. Pinning failing (no bpffs, a path elsewhere, a
/// read-only mount) is no reason to stop enforcing: it then runs unpinned, and says so.
fn load_datapath(cfg: &PolicyAgentConfig) -> Result<PolicyDatapath, String> {
    let pc = PolicyConfig {
        policy_capacity: cfg.policy_map_entries,
        ipcache_capacity: cfg.ipcache_entries,
        ct_capacity: cfg.conntrack_entries,
        ..PolicyConfig::default()
    };
    if let Some(root) = &cfg.pin_root {
        match PolicyDatapath::load_pinned(&pc, root) {
            Ok((dp, found)) => {
                if found.generation == 0 && found.endpoints == 0 {
                    tracing::info!("no pinned policy state under {}", root.display());
                } else {
                    tracing::info!(
                        stale_links = found.stale_links,
                        maps_replaced = found.maps_replaced,
                        "re-adopted policy state generation {}, {} endpoints",
                        found.generation,
                        found.endpoints
                    );
                }
                return Ok(dp);
            }
            Err(e) => tracing::warn!(
                "policy state cannot be pinned under {} ({e}): enforcing unpinned, so enforcement stops when the agent exits",
                root.display()
            ),
        }
    }
    PolicyDatapath::load(&pc).map_err(|e| format!("loading policy.bpf.c: {e}"))
}

/// The allocator kept by a previous agent, and that snapshot; a fresh one when there is none
/// or it does not load (said, not fatal: see `save_identities`).
fn read_identities(dir: &Path) -> (IdentityAllocator, Option<AllocatorSnapshot>) {
    let path = dir.join(IDENTITY_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return (IdentityAllocator::new(), None)
        }
        Err(e) => {
            tracing::warn!("{}: {e}; identities start afresh", path.display());
            return (IdentityAllocator::new(), None);
        }
    };
    let restored = serde_json::from_str::<AllocatorSnapshot>(&text)
        .map_err(|e| e.to_string())
        .and_then(|snap| Ok((IdentityAllocator::restore(&snap)?, snap)));
    match restored {
        Ok((alloc, snap)) => (alloc, Some(snap)),
        Err(e) => {
            tracing::warn!("{}: {e}; identities start afresh", path.display());
            (IdentityAllocator::new(), None)
        }
    }
}

fn read_state(dir: &Path) -> Result<Documents, String> {
    let path = dir.join(STATE_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => serde_json::from_str(&text).map_err(|e| {
            format!(
                "{}: {e} (move it aside to start without policies)",
                path.display()
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Documents::new()),
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}

/// Write-then-rename, so a crash leaves the old or the new file, never half of one.
fn write_json(dir: &Path, file: &str, value: &impl Serialize) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let path = dir.join(file);
    let tmp = dir.join(format!("{file}.tmp"));
    let text = serde_json::to_string_pretty(value).map_err(|e| e.to_string())?;
    std::fs::write(&tmp, text).map_err(|e| format!("{}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, &path).map_err(|e| format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_and_protocols_parse() {
        assert_eq!(parse_l4("80"), Ok(L4::Tcp { dport: 80 }));
        assert_eq!(parse_l4("53/UDP"), Ok(L4::Udp { dport: 53 }));
        assert_eq!(parse_l4("5000/sctp"), Ok(L4::Sctp { dport: 5000 }));
        assert_eq!(
            parse_l4("8/icmp"),
            Ok(L4::Icmp {
                icmp_type: 8,
                code: 0
            })
        );
        assert!(parse_l4("80/gre").is_err());
        assert!(parse_l4("70000/tcp").is_err());
    }

    #[test]
    fn documents_split_and_default_their_namespace() {
        let text = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: a}\nspec: {podSelector: {}}\n---\napiVersion: v1\nkind: List\nitems:\n- {apiVersion: networking.k8s.io/v1, kind: NetworkPolicy, metadata: {name: b, namespace: x}, spec: {podSelector: {}}}\n";
        let docs = split_documents(&[("f.yaml".into(), text.into())]).expect("splits");
        let keys: Vec<&str> = docs.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["NetworkPolicy/default/a", "NetworkPolicy/x/b"]);
    }
}
