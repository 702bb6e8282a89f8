//! `fathom`: the agent and the verbs that talk to it.

mod drops;
mod observe;
mod output;
mod policy;
mod replay;
mod shield;
mod status;
mod timearg;
mod top;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;
use fathom_agent::interfaces::AttachMode;
use fathom_agent::AgentConfig;

#[derive(Parser)]
#[command(
    name = "fathom",
    version,
    about = "eBPF network observability and security for Linux and Kubernetes"
)]
struct Cli {
    /// Log level for the agent's own messages (error, warn, info, debug, trace).
    #[arg(long, global = true, env = "FATHOM_LOG", default_value = "info")]
    log_level: String,
    #[command(subcommand)]
    cmd: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the node agent: load the BPF programs, assemble flows, serve the local API.
    Agent(AgentArgs),
    /// Show flows from the agent: the recent ones, or follow them live (-f).
    Observe(observe::ObserveArgs),
    /// Programs, maps, attach points, counters, lost events and the kernel feature probe.
    Status(status::StatusArgs),
    /// Packets the kernel dropped: top reasons, per pod, latest (or -f).
    Drops(drops::DropsArgs),
    /// Live terminal view of the top flows, pods and drops.
    Top(top::TopArgs),
    /// Flows and L7 records from a pcap/pcapng file, or its matching packets to a new file.
    Replay(replay::ReplayArgs),
    /// Network policy: apply, delete, list, get, explain.
    Policy(policy::PolicyArgs),
    /// Drop a CIDR at the XDP shield (through the agent), optionally for a limited time.
    Block(shield::BlockArgs),
    /// Remove a CIDR from the shield's blocklist.
    Unblock(shield::UnblockArgs),
    /// List the shield's blocklist.
    Blocks(shield::BlocksArgs),
    /// Remove Fathom's pinned BPF state: the shield's blocklist and counters, and the network
    /// policy's maps and links (enforcement left in place by a stopped agent ends). Stop the
    /// agent first.
    Uninstall(shield::UninstallArgs),
    /// Alerts: port scans, SYN floods, shield audit (observe --type alert, same flags).
    Alerts(observe::ObserveArgs),
    /// Network-namespace "pods" on this machine for demos and tests.
    Lab {
        #[command(subcommand)]
        cmd: fathom_lab::LabCommand,
    },
}

#[derive(clap::Args)]
struct AgentArgs {
    /// YAML config file (flags and FATHOM_* variables override it).
    #[arg(long, short = 'c', env = "FATHOM_CONFIG")]
    config: Option<PathBuf>,
    /// Unix socket for the local API.
    #[arg(long, env = "FATHOM_SOCKET")]
    socket: Option<PathBuf>,
    /// Which interfaces to account on: auto (all up interfaces, bridges excluded, plus lab pods),
    /// lab (only lab pods), none (only --interface).
    #[arg(long, env = "FATHOM_ATTACH")]
    attach: Option<AttachMode>,
    /// Also attach to this interface (repeatable).
    #[arg(long = "interface", short = 'i')]
    interfaces: Vec<String>,
    /// Never attach to this interface (repeatable).
    #[arg(long = "exclude-interface")]
    exclude_interfaces: Vec<String>,
    /// Kernel flow table size (LRU entries).
    #[arg(long, env = "FATHOM_FLOW_TABLE_ENTRIES")]
    flow_table_entries: Option<u32>,
    /// End a UDP/ICMP flow after this long without packets (e.g. 30s).
    #[arg(long, env = "FATHOM_IDLE_TIMEOUT", value_parser = humantime::parse_duration)]
    idle_timeout: Option<Duration>,
    /// End a TCP flow after this long without packets.
    #[arg(long, env = "FATHOM_TCP_IDLE_TIMEOUT", value_parser = humantime::parse_duration)]
    tcp_idle_timeout: Option<Duration>,
    /// Publish an update of a live flow this often (0s: never).
    #[arg(long, env = "FATHOM_UPDATE_INTERVAL", value_parser = humantime::parse_duration)]
    update_interval: Option<Duration>,
    /// Wait this long after a TCP end before publishing it (late ACKs, close statistics).
    #[arg(long, env = "FATHOM_END_LINGER", value_parser = humantime::parse_duration)]
    end_linger: Option<Duration>,
    /// Node name on records (default: host name).
    #[arg(long, env = "FATHOM_NODE")]
    node: Option<String>,
    /// Serve metrics, the read-only API and the web UI on this address (default 127.0.0.1:9965), or "off".
    #[arg(long, env = "FATHOM_WEB_ADDRESS")]
    web_address: Option<String>,
    /// Flow history database (default /var/lib/fathom/flows.db).
    #[arg(long, env = "FATHOM_STORE_PATH")]
    store_path: Option<PathBuf>,
    /// Keep no flow history on disk (memory only).
    #[arg(long)]
    no_store: bool,
    /// Delete history older than this (e.g. 7d, 36h).
    #[arg(long, env = "FATHOM_RETENTION", value_parser = humantime::parse_duration)]
    retention: Option<Duration>,
    /// Keep the history below this size (bytes, or with K/M/G/KiB/MiB/GiB).
    #[arg(long, env = "FATHOM_STORE_MAX_SIZE", value_parser = parse_size)]
    store_max_size: Option<u64>,
    /// Token required on the web listener when it is not on loopback.
    #[arg(long, env = "FATHOM_WEB_TOKEN")]
    web_token: Option<String>,
    /// Source/destination labels on flow metrics: none, namespace, workload, pod.
    #[arg(long, env = "FATHOM_METRICS_CONTEXT")]
    metrics_context: Option<fathom_agent::metrics::MetricsContext>,
    /// Where applied network policies are kept (default /var/lib/fathom/policy).
    #[arg(long, env = "FATHOM_POLICY_STATE_DIR")]
    policy_state_dir: Option<PathBuf>,
    /// bpffs directory for the policy maps and links, so enforcement survives an agent
    /// restart (default /sys/fs/bpf/fathom/policy), or "off" to pin nothing.
    #[arg(long, env = "FATHOM_POLICY_PIN_ROOT")]
    policy_pin_root: Option<PathBuf>,
    /// Watch only this lab's pods: attach, attribution and policy (repeatable; default: every
    /// lab on the node).
    #[arg(long = "lab")]
    labs: Vec<String>,
    /// Enforce network policy on this lab's pods only (repeatable; default: the labs watched).
    #[arg(long = "policy-lab")]
    policy_labs: Vec<String>,
    /// Do not load the network policy program.
    #[arg(long)]
    no_policy: bool,
    /// Live L7 capture of every process's sockets (HTTP, gRPC, DNS, Redis, Kafka, PostgreSQL,
    /// MySQL) from syscall tracepoints.
    #[arg(long, env = "FATHOM_L7")]
    l7: bool,
    /// Payload bytes copied per socket syscall for L7 capture (default 4096, at most 8192).
    #[arg(long, env = "FATHOM_L7_CAPTURE_BYTES")]
    l7_capture_bytes: Option<u32>,
}

impl AgentArgs {
    fn into_config(self) -> anyhow::Result<AgentConfig> {
        let mut c = match &self.config {
            Some(p) => AgentConfig::from_file(p)?,
            None => AgentConfig::default(),
        };
        if let Some(v) = self.socket {
            c.socket = v;
        }
        if let Some(v) = self.attach {
            c.attach = v;
        }
        c.interfaces.extend(self.interfaces);
        c.exclude_interfaces.extend(self.exclude_interfaces);
        if let Some(v) = self.flow_table_entries {
            c.flow_table_entries = v;
        }
        if let Some(v) = self.idle_timeout {
            c.idle_timeout = v;
        }
        if let Some(v) = self.tcp_idle_timeout {
            c.tcp_idle_timeout = v;
        }
        if let Some(v) = self.update_interval {
            c.update_interval = v;
        }
        if let Some(v) = self.end_linger {
            c.end_linger = v;
        }
        if self.node.is_some() {
            c.node = self.node;
        }
        match self.web_address.as_deref() {
            None => {}
            Some("off") => c.web_address = None,
            Some(a) => {
                let addr = a.parse().map_err(|e| {
                    anyhow::anyhow!(
                        "--web-address {a:?}: {e} (expected e.g. 127.0.0.1:9965, or off)"
                    )
                })?;
                c.web_address = Some(addr);
            }
        }
        if let Some(p) = self.store_path {
            c.store.path = p;
        }
        if self.no_store {
            c.store_enabled = false;
        }
        if let Some(d) = self.retention {
            c.store.max_age = d;
        }
        if let Some(n) = self.store_max_size {
            c.store.max_bytes = n;
        }
        if self.web_token.is_some() {
            c.web_token = self.web_token;
        }
        if self.l7 {
            c.l7_enabled = true;
        }
        if let Some(v) = self.l7_capture_bytes {
            c.l7_capture_bytes = v;
        }
        if let Some(v) = self.metrics_context {
            c.metrics_context = v;
        }
        if let Some(d) = self.policy_state_dir {
            c.policy.state_dir = d;
        }
        c.labs.extend(self.labs);
        match self.policy_pin_root {
            Some(p) if p.as_os_str() == "off" => c.policy.pin_root = None,
            Some(p) => c.policy.pin_root = Some(p),
            None => {}
        }
        c.policy.labs.extend(self.policy_labs);
        if self.no_policy {
            c.policy.enabled = false;
        }
        c.validate()?;
        Ok(c)
    }
}

/// `1073741824`, `512M`, `1GiB`, `1.5G` → bytes (K/M/G are powers of 1024, as `du -h` counts).
fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("bad size {s:?}: expected e.g. 512M or 1GiB"))?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        "t" | "tb" | "tib" => 1 << 40,
        _ => return Err(format!("bad size unit in {s:?}: use K, M, G or T")),
    };
    Ok((n * mult as f64) as u64)
}

/// This machine's name, for records made outside the agent (replay).
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

fn init_logging(level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(format!("{level},libbpf=warn"))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result: anyhow::Result<i32> = match cli.cmd {
        Command::Agent(args) => {
            init_logging(&cli.log_level);
            args.into_config()
                .and_then(|cfg| runtime()?.block_on(fathom_agent::run::run(cfg)))
                .map(|()| 0)
        }
        Command::Observe(args) => runtime().and_then(|rt| rt.block_on(observe::run(args))),
        Command::Status(args) => runtime().and_then(|rt| rt.block_on(status::run(args))),
        Command::Drops(args) => runtime().and_then(|rt| rt.block_on(drops::run(args))),
        Command::Top(args) => top::run(args),
        Command::Replay(args) => replay::run(args),
        Command::Policy(args) => runtime().and_then(|rt| rt.block_on(policy::run(args))),
        Command::Block(a) => runtime().and_then(|rt| rt.block_on(shield::block(a))),
        Command::Unblock(a) => runtime().and_then(|rt| rt.block_on(shield::unblock(a))),
        Command::Blocks(a) => runtime().and_then(|rt| rt.block_on(shield::blocks(a))),
        Command::Uninstall(a) => shield::uninstall(a),
        Command::Alerts(a) => runtime().and_then(|rt| rt.block_on(observe::alerts(a))),
        Command::Lab { cmd } => fathom_lab::run(cmd),
    };
    match result {
        Ok(code) => ExitCode::from(code.clamp(0, 255) as u8),
        Err(e) => {
            eprintln!("fathom: {e:#}");
            ExitCode::from(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("1024"), Ok(1024));
        assert_eq!(parse_size("512M"), Ok(512 << 20));
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert_eq!(parse_size("1.5G"), Ok(3 << 29));
        assert!(parse_size("12 parsecs").is_err());
        assert!(parse_size("G").is_err());
    }
}
