//! `fathom block`, `unblock`, `blocks`, `uninstall`: the XDP shield's blocklist through the
//! agent's unix socket (root only), and removal of pinned state.

use std::path::{Path, PathBuf};
use std::time::Duration;

use fathom_agent::client::{AgentClient, ClientError, DEFAULT_SOCKET};
use fathom_agent::shield::{BlockRequest, BlockView};

#[derive(clap::Args)]
pub struct BlockArgs {
    /// Address or CIDR to drop at XDP (IPv4 or IPv6), e.g. 10.0.0.5 or 10.0.0.0/24.
    pub cidr: String,
    /// Lift the block after this long (e.g. 10m, 1h); default: until unblocked.
    #[arg(long = "for", value_parser = humantime::parse_duration)]
    pub for_: Option<Duration>,
    /// Why (kept with the block and in its audit record).
    #[arg(long)]
    pub reason: Option<String>,
    #[arg(long, env = "FATHOM_SOCKET", default_value = DEFAULT_SOCKET)]
    pub socket: PathBuf,
}

#[derive(clap::Args)]
pub struct UnblockArgs {
    pub cidr: String,
    #[arg(long, env = "FATHOM_SOCKET", default_value = DEFAULT_SOCKET)]
    pub socket: PathBuf,
}

#[derive(clap::Args)]
pub struct BlocksArgs {
    #[arg(long, short = 'o', value_enum, default_value = "table")]
    pub output: crate::status::StatusFormat,
    #[arg(long, env = "FATHOM_SOCKET", default_value = DEFAULT_SOCKET)]
    pub socket: PathBuf,
}

#[derive(clap::Args)]
pub struct UninstallArgs {
    /// The shield's pin directory (as in the agent's shield.pin_root).
    #[arg(long, env = "FATHOM_SHIELD_PIN_ROOT", default_value = fathom_bpf::shield::DEFAULT_PIN_ROOT)]
    pub shield_pin_root: PathBuf,
    /// The network policy's pin directory (as in the agent's policy.pin_root): its pinned
    /// links are detached, so policy enforcement stops, and its maps removed.
    #[arg(long, env = "FATHOM_POLICY_PIN_ROOT", default_value = fathom_bpf::policy::DEFAULT_PIN_ROOT)]
    pub policy_pin_root: PathBuf,
}

fn check_cidr(s: &str) -> anyhow::Result<()> {
    // Refuse locally first: the agent would say the same, but without a round trip.
    fathom_bpf::shield::parse_cidr(s).map_err(anyhow::Error::msg)?;
    Ok(())
}

pub async fn block(a: BlockArgs) -> anyhow::Result<i32> {
    check_cidr(&a.cidr)?;
    let secs = a.for_.map(|d| d.as_secs().max(1));
    let req = BlockRequest {
        cidr: a.cidr,
        for_secs: secs,
        reason: a.reason,
    };
    let v: BlockView = AgentClient::new(&a.socket)
        .json("/v1/shield/block", Some(&serde_json::to_value(&req)?))
        .await?;
    match secs {
        Some(s) => println!("blocked {} for {s}s", v.cidr),
        None => println!("blocked {}", v.cidr),
    }
    Ok(0)
}

pub async fn unblock(a: UnblockArgs) -> anyhow::Result<i32> {
    check_cidr(&a.cidr)?;
    let body = serde_json::json!({ "cidr": a.cidr });
    match AgentClient::new(&a.socket)
        .json::<serde_json::Value>("/v1/shield/unblock", Some(&body))
        .await
    {
        Ok(_) => {
            println!("unblocked {}", a.cidr);
            Ok(0)
        }
        Err(ClientError::Status { status: 404, .. }) => {
            eprintln!("fathom: {} is not in the blocklist", a.cidr);
            Ok(1)
        }
        Err(e) => Err(e.into()),
    }
}

pub async fn blocks(a: BlocksArgs) -> anyhow::Result<i32> {
    let v: Vec<BlockView> = AgentClient::new(&a.socket)
        .json("/v1/shield/blocks", None)
        .await?;
    if a.output == crate::status::StatusFormat::Json {
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(0);
    }
    println!("{:<44} {:>12} {:<9} REASON", "CIDR", "EXPIRES IN", "ORIGIN");
    for b in v {
        let exp = b
            .expires_in_secs
            .map(|s| format!("{s:.0}s"))
            .unwrap_or_else(|| "never".into());
        println!(
            "{:<44} {:>12} {:<9} {}",
            b.cidr,
            exp,
            b.origin,
            b.reason.unwrap_or_default()
        );
    }
    Ok(0)
}

pub fn uninstall(a: UninstallArgs) -> anyhow::Result<i32> {
    type RemovePins = fn(&Path) -> Result<Vec<PathBuf>, String>;
    let removals: [(&Path, RemovePins); 2] = [
        (&a.shield_pin_root, fathom_bpf::shield::remove_pins),
        (&a.policy_pin_root, fathom_bpf::policy::remove_pins),
    ];
    for (root, remove) in removals {
        let removed = remove(root).map_err(anyhow::Error::msg)?;
        for p in &removed {
            println!("removed {}", p.display());
        }
        if removed.is_empty() {
            println!("nothing pinned under {}", root.display());
        }
    }
    // The default roots share /sys/fs/bpf/fathom: it goes too once empty.
    let _ = std::fs::remove_dir(
        Path::new(fathom_bpf::shield::DEFAULT_PIN_ROOT)
            .parent()
            .unwrap_or(Path::new("")),
    );
    Ok(0)
}
