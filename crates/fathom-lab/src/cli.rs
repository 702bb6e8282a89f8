//! `fathom lab …`: the clap sub-commands and their implementation. The `fathom` CLI embeds [`LabCommand`] and calls
//! [`run`]; `src/bin/fathom-lab.rs` is the same thing as a stand-alone binary.

use std::ffi::OsString;
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;

use anyhow::{anyhow, bail, Context};
use serde::Serialize;

use crate::spec::{validate_lab_name, LabSpec, Labels};
use crate::state::{list_labs, load_lab, LabState};
use crate::up::{Lab, UpOptions};
use crate::{down, down_all, host_warnings, leftovers};

#[derive(Debug, Clone, clap::Subcommand)]
pub enum LabCommand {
    /// Create a lab: a bridge, and per pod a netns + veth + cgroup with IPv4/IPv6 addresses
    Up {
        /// Lab spec (YAML); `-` reads stdin. Default: the built-in demo lab
        #[arg(short = 'f', long = "file", value_name = "FILE")]
        file: Option<PathBuf>,
        /// Lab name (overrides the spec's `name`; default "lab")
        #[arg(long)]
        name: Option<String>,
    },
    /// Take a lab down: kill its processes, remove its netns, links, cgroups and state
    Down {
        /// Lab name
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        name: Option<String>,
        /// Every lab, and the remains of crashed runs
        #[arg(long)]
        all: bool,
    },
    /// Run a command in a pod; it replaces this process (same pid, same exit status)
    Exec {
        /// The pod, as NAMESPACE/POD
        #[arg(value_name = "NS/POD")]
        pod: String,
        /// Lab name (optional when only one lab exists)
        #[arg(long)]
        lab: Option<String>,
        /// The command and its arguments, after `--`
        #[arg(
            required = true,
            trailing_var_arg = true,
            allow_hyphen_values = true,
            value_name = "CMD"
        )]
        command: Vec<OsString>,
    },
    /// List the pods of every lab
    Ls {
        /// Output format
        #[arg(short = 'o', long = "output", value_enum, default_value_t = OutputFormat::Table)]
        output: OutputFormat,
    },
    /// List anything lab-shaped on the host (netns, links, cgroups, state); exit status 1 if there is any
    Leftovers,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    Table,
    Json,
}

/// Run a `fathom lab` sub-command; returns the process exit code. `exec` does not return on success.
pub fn run(cmd: LabCommand) -> anyhow::Result<i32> {
    match cmd {
        LabCommand::Up { file, name } => cmd_up(file, name),
        LabCommand::Down { name, all } => cmd_down(name, all),
        LabCommand::Exec { pod, lab, command } => cmd_exec(&pod, lab.as_deref(), &command),
        LabCommand::Ls { output } => cmd_ls(output),
        LabCommand::Leftovers => {
            let items = leftovers();
            for item in &items {
                println!("{item}");
            }
            Ok(i32::from(!items.is_empty()))
        }
    }
}

fn cmd_up(file: Option<PathBuf>, name: Option<String>) -> anyhow::Result<i32> {
    let spec = match &file {
        None => LabSpec::demo(),
        Some(p) if p.as_os_str() == "-" => {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .context("reading lab spec from stdin")?;
            LabSpec::from_yaml(&text)?
        }
        Some(p) => LabSpec::from_file(p)?,
    };
    if let Some(n) = &name {
        validate_lab_name(n).context("--name")?;
    }
    for w in host_warnings() {
        eprintln!("warning: {w}");
    }
    let lab = Lab::up_with(
        &spec,
        &UpOptions {
            name,
            ..UpOptions::default()
        },
    )?;
    println!(
        "lab {} is up (id {}): bridge {}, {} and {}",
        lab.name, lab.id, lab.bridge, lab.ipv4_subnet, lab.ipv6_subnet
    );
    let mut rows = vec![header(&["POD", "IPV4", "IPV6", "HOST-VETH", "LABELS"])];
    for p in &lab.pods {
        rows.push(vec![
            p.full_name(),
            p.ipv4.to_string(),
            p.ipv6.to_string(),
            p.host_veth.clone(),
            labels(&p.labels),
        ]);
    }
    print!("{}", table(&rows));
    println!(
        "run in a pod: fathom lab exec NS/POD --lab {0} -- CMD…   remove: fathom lab down {0}",
        lab.name
    );
    Ok(0)
}

fn cmd_down(name: Option<String>, all: bool) -> anyhow::Result<i32> {
    if all {
        for removed in down_all()? {
            println!("removed lab {removed}");
        }
        return Ok(0);
    }
    let name = name.ok_or_else(|| anyhow!("give a lab name or --all"))?;
    if down(&name)? {
        println!("removed lab {name}");
        Ok(0)
    } else {
        let names: Vec<String> = list_labs()?.into_iter().map(|l| l.name).collect();
        let known = if names.is_empty() {
            "no labs exist".to_string()
        } else {
            format!("labs: {}", names.join(", "))
        };
        eprintln!("no lab named {name:?} ({known})");
        Ok(1)
    }
}

/// The lab `exec` acts on: the named one, or the only one.
fn pick_lab(lab: Option<&str>) -> anyhow::Result<LabState> {
    if let Some(name) = lab {
        return Ok(load_lab(name)?);
    }
    let mut labs = list_labs()?;
    match labs.len() {
        0 => bail!("no labs exist; create one with `fathom lab up`"),
        1 => Ok(labs.remove(0)),
        _ => bail!(
            "{} labs exist; choose one with --lab NAME (labs: {})",
            labs.len(),
            labs.iter()
                .map(|l| l.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

fn cmd_exec(pod: &str, lab: Option<&str>, command: &[OsString]) -> anyhow::Result<i32> {
    let lab = pick_lab(lab)?;
    let pod = lab.require_pod(pod)?;
    let (program, args) = command
        .split_first()
        .ok_or_else(|| anyhow!("no command given (put it after `--`)"))?;
    let mut cmd = pod.try_command(program)?;
    cmd.args(args);
    // exec(2) replaces this process: the caller's child pid is the program's pid and its exit status is ours.
    let err = cmd.exec();
    Err(anyhow!(err).context(format!(
        "executing {:?} in pod {} of lab {}",
        program,
        pod.full_name(),
        lab.name
    )))
}

/// One pod in `ls -o json`.
#[derive(Serialize)]
struct PodRow<'a> {
    lab: &'a str,
    namespace: &'a str,
    name: &'a str,
    labels: &'a Labels,
    ipv4: String,
    ipv6: String,
    host_veth: &'a str,
    host_ifindex: u32,
    cgroup_id: u64,
    netns: &'a str,
}

fn cmd_ls(output: OutputFormat) -> anyhow::Result<i32> {
    let labs = list_labs()?;
    let pods = labs.iter().flat_map(|l| l.pods.iter().map(move |p| (l, p)));
    match output {
        OutputFormat::Json => {
            let rows: Vec<PodRow<'_>> = pods
                .map(|(l, p)| PodRow {
                    lab: &l.name,
                    namespace: &p.namespace,
                    name: &p.name,
                    labels: &p.labels,
                    ipv4: p.ipv4.to_string(),
                    ipv6: p.ipv6.to_string(),
                    host_veth: &p.host_veth,
                    host_ifindex: p.host_ifindex,
                    cgroup_id: p.cgroup_id,
                    netns: &p.netns,
                })
                .collect();
            println!("{}", serde_json::to_string_pretty(&rows)?);
        }
        OutputFormat::Table => {
            let mut rows = vec![header(&[
                "LAB",
                "NAMESPACE",
                "POD",
                "IPV4",
                "IPV6",
                "HOST-VETH",
                "IFINDEX",
                "CGROUP-ID",
                "LABELS",
            ])];
            for (l, p) in pods {
                rows.push(vec![
                    l.name.clone(),
                    p.namespace.clone(),
                    p.name.clone(),
                    p.ipv4.to_string(),
                    p.ipv6.to_string(),
                    p.host_veth.clone(),
                    p.host_ifindex.to_string(),
                    p.cgroup_id.to_string(),
                    labels(&p.labels),
                ]);
            }
            print!("{}", table(&rows));
        }
    }
    Ok(0)
}

fn header(cols: &[&str]) -> Vec<String> {
    cols.iter().map(|c| c.to_string()).collect()
}

fn labels(l: &Labels) -> String {
    l.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// Left-aligned columns separated by two spaces; the last column is not padded.
fn table(rows: &[Vec<String>]) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            if c + 1 == row.len() {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<w$}  ", w = widths[c]));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(subcommand)]
        cmd: LabCommand,
    }

    fn parse(args: &[&str]) -> Result<LabCommand, clap::Error> {
        Cli::try_parse_from(std::iter::once("fathom-lab").chain(args.iter().copied()))
            .map(|c| c.cmd)
    }

    #[test]
    fn parses_exec_with_and_without_separator() {
        let LabCommand::Exec { pod, lab, command } = parse(&[
            "exec", "x/a", "--lab", "demo", "--", "curl", "-s", "http://x",
        ])
        .unwrap() else {
            panic!("not exec")
        };
        assert_eq!((pod.as_str(), lab.as_deref()), ("x/a", Some("demo")));
        assert_eq!(command, ["curl", "-s", "http://x"]);
        let LabCommand::Exec { command, .. } =
            parse(&["exec", "x/a", "ip", "-br", "addr"]).unwrap()
        else {
            panic!("not exec")
        };
        assert_eq!(command, ["ip", "-br", "addr"]);
        assert!(parse(&["exec", "x/a"]).is_err());
    }

    #[test]
    fn parses_down_and_ls() {
        assert!(matches!(
            parse(&["down", "--all"]).unwrap(),
            LabCommand::Down {
                name: None,
                all: true
            }
        ));
        assert!(matches!(
            parse(&["down", "x"]).unwrap(),
            LabCommand::Down {
                name: Some(_),
                all: false
            }
        ));
        assert!(parse(&["down"]).is_err());
        assert!(parse(&["down", "x", "--all"]).is_err());
        assert!(matches!(
            parse(&["ls", "-o", "json"]).unwrap(),
            LabCommand::Ls {
                output: OutputFormat::Json
            }
        ));
        assert!(matches!(
            parse(&["up", "-f", "a.yaml", "--name", "n"]).unwrap(),
            LabCommand::Up { .. }
        ));
    }

    #[test]
    fn table_is_aligned() {
        let t = table(&[
            header(&["A", "BB", "C"]),
            vec!["xxx".into(), "y".into(), "z".into()],
        ]);
        assert_eq!(t, "A    BB  C\nxxx  y   z\n");
    }
}
