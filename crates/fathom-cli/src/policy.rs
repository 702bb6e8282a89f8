//! `fathom policy`: apply, delete, list, get and explain network policies on the agent.

use std::path::{Path, PathBuf};

use fathom_agent::client::{AgentClient, ClientError, DEFAULT_SOCKET};
use serde_json::{json, Value};

#[derive(clap::Args)]
pub struct PolicyArgs {
    #[arg(long, env = "FATHOM_SOCKET", default_value = DEFAULT_SOCKET, global = true)]
    socket: PathBuf,
    /// table or json.
    #[arg(long, short = 'o', default_value = "table", global = true)]
    output: String,
    #[command(subcommand)]
    cmd: PolicyCommand,
}

#[derive(clap::Subcommand)]
enum PolicyCommand {
    /// Apply policies from files and directories (all or nothing).
    Apply {
        /// A YAML/JSON file or a directory of them (repeatable).
        #[arg(short = 'f', long = "filename", required = true)]
        files: Vec<PathBuf>,
    },
    /// Remove an applied policy: NAME, NAMESPACE/NAME or KIND/NAMESPACE/NAME.
    Delete { name: String },
    /// The applied policies.
    List,
    /// One applied policy's document.
    Get { name: String },
    /// Which rules apply to a packet, the verdict and why: FROM and TO are namespace/pod or an
    /// address; PORT is 80/tcp, 53/udp, 5000/sctp, 8/icmp (type).
    Explain {
        from: String,
        to: String,
        port: String,
    },
    /// Every kernel policy map entry (hex), for checking that nothing changed.
    Maps,
}

/// Files of an apply: a directory gives its *.yaml, *.yml and *.json in name order.
fn read_sources(paths: &[PathBuf]) -> anyhow::Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    for p in paths {
        let files: Vec<PathBuf> = if p.is_dir() {
            let mut f: Vec<PathBuf> = std::fs::read_dir(p)
                .map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|f| {
                    f.is_file()
                        && f.extension()
                            .and_then(|x| x.to_str())
                            .is_some_and(|x| matches!(x, "yaml" | "yml" | "json"))
                })
                .collect();
            f.sort();
            if f.is_empty() {
                anyhow::bail!(
                    "{}: directory holds no *.yaml, *.yml or *.json files",
                    p.display()
                );
            }
            f
        } else {
            vec![p.clone()]
        };
        for f in files {
            let text =
                std::fs::read_to_string(&f).map_err(|e| anyhow::anyhow!("{}: {e}", f.display()))?;
            out.push((display(&f), text));
        }
    }
    Ok(out)
}

fn display(p: &Path) -> String {
    p.display().to_string()
}

pub async fn run(args: PolicyArgs) -> anyhow::Result<i32> {
    let client = AgentClient::new(&args.socket);
    let json_out = args.output == "json";
    let answer = match &args.cmd {
        PolicyCommand::Apply { files } => {
            let sources = read_sources(files)?;
            client
                .json::<Value>("/v1/policy", Some(&json!({ "sources": sources })))
                .await
        }
        PolicyCommand::Delete { name } => {
            client
                .json::<Value>("/v1/policy/delete", Some(&json!({ "name": name })))
                .await
        }
        PolicyCommand::List => client.json::<Value>("/v1/policy", None).await,
        PolicyCommand::Get { name } => {
            client
                .json::<Value>("/v1/policy/get", Some(&json!({ "name": name })))
                .await
        }
        PolicyCommand::Explain { from, to, port } => {
            client
                .json::<Value>(
                    "/v1/policy/explain",
                    Some(&json!({ "from": from, "to": to, "port": port })),
                )
                .await
        }
        PolicyCommand::Maps => client.json::<Value>("/v1/policy/maps", None).await,
    };
    let v = match answer {
        Ok(v) => v,
        Err(ClientError::Status { status: 422, body }) => {
            let errors: Vec<String> = serde_json::from_str::<Value>(&body)
                .ok()
                .and_then(|v| v.get("errors").cloned())
                .and_then(|e| serde_json::from_value(e).ok())
                .unwrap_or_else(|| vec![body.clone()]);
            if json_out {
                println!("{}", json!({ "errors": errors }));
            } else {
                eprintln!("fathom policy: refused, nothing changed:");
                for e in &errors {
                    eprintln!("  {e}");
                }
            }
            return Ok(1);
        }
        Err(e) => return Err(e.into()),
    };
    if json_out {
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(0);
    }
    match &args.cmd {
        PolicyCommand::Apply { .. } | PolicyCommand::Delete { .. } => {
            for c in v["changes"].as_array().into_iter().flatten() {
                println!("{}", c.as_str().unwrap_or_default());
            }
            println!("generation {}", v["generation"]);
        }
        PolicyCommand::List => {
            println!(
                "{:<24} {:<32} {:<22} {:<8} {:>7} {:>6}",
                "NAMESPACE", "NAME", "KIND", "MODE", "INGRESS", "EGRESS"
            );
            for p in v["policies"].as_array().into_iter().flatten() {
                println!(
                    "{:<24} {:<32} {:<22} {:<8} {:>7} {:>6}",
                    p["namespace"].as_str().unwrap_or_default(),
                    p["name"].as_str().unwrap_or_default(),
                    p["kind"].as_str().unwrap_or_default(),
                    p["mode"].as_str().unwrap_or_default(),
                    p["ingress_rules"],
                    p["egress_rules"],
                );
            }
            println!(
                "generation {}, {} endpoints, {} policy map entries",
                v["generation"], v["endpoints"], v["policy_map_entries"]
            );
        }
        PolicyCommand::Get { .. } => {
            for doc in v.as_array().into_iter().flatten() {
                println!("---\n{}", serde_norway::to_string(doc)?);
            }
        }
        PolicyCommand::Explain { .. } => print_explanation(&v),
        PolicyCommand::Maps => println!("{}", serde_json::to_string_pretty(&v)?),
    }
    Ok(0)
}

fn refs(v: &Value) -> Vec<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            let mut s = format!(
                "{} {}/{}",
                r["kind"].as_str().unwrap_or_default(),
                r["namespace"].as_str().unwrap_or_default(),
                r["name"].as_str().unwrap_or_default()
            );
            if let Some(i) = r["rule"].as_u64() {
                s.push_str(&format!(" rule {i}"));
            }
            if r["mode"].as_str() == Some("Audit") {
                s.push_str(" (audit)");
            }
            if let Some(d) = r["description"].as_str() {
                s.push_str(&format!(": {d}"));
            }
            s
        })
        .collect()
}

fn print_explanation(v: &Value) {
    let verdict = &v["verdict"];
    println!(
        "{} -> {} {}: {} ({})",
        v["from"].as_str().unwrap_or_default(),
        v["to"].as_str().unwrap_or_default(),
        v["protocol"].as_str().unwrap_or_default(),
        verdict["action"]
            .as_str()
            .unwrap_or_default()
            .to_uppercase(),
        verdict["reason"].as_str().unwrap_or_default(),
    );
    for dir in ["egress", "ingress"] {
        let d = &verdict[dir];
        if d.is_null() {
            println!("  {dir:<8} not an endpoint: no {dir} policy applies");
            continue;
        }
        println!(
            "  {dir:<8} {} ({})",
            d["action"].as_str().unwrap_or_default().to_uppercase(),
            d["reason"].as_str().unwrap_or_default()
        );
        for r in refs(&d["policies"]) {
            println!("           {r}");
        }
    }
}
