//! `fathom replay FILE`: flows and L7 records from a pcap/pcapng file, through the same engine
//! as live capture and printed by the same code as `fathom observe`. With `--write-pcap` it
//! writes the packets of the matching flows out again instead.

use std::path::PathBuf;

use fathom_l7::replay::{replay_file, write_filtered_pcap, PcapFilter, ReplayOptions, ReplayStats};
use fathom_model::filter::{parse_cidr, IpNetArg};
use fathom_model::l7::L7Protocol;
use fathom_model::{FlowFilter, L4Protocol};

use crate::output::{Format, Printer};

fn parse_l7(s: &str) -> Result<L7Protocol, String> {
    L7Protocol::parse(s).ok_or_else(|| {
        let all: Vec<&str> = L7Protocol::ALL.iter().map(|p| p.name()).collect();
        format!("unknown protocol {s:?}: expected one of {}", all.join(", "))
    })
}

#[derive(clap::Args)]
pub struct ReplayArgs {
    /// A pcap or pcapng capture (Ethernet, raw IP, loopback/NULL, Linux SLL/SLL2).
    file: PathBuf,
    /// Only these application protocols (http, http2, grpc, dns, redis, kafka, postgres, mysql,
    /// tls); flows are still all reported.
    #[arg(long, value_parser = parse_l7)]
    protocol: Vec<L7Protocol>,
    /// Either side's address is in this CIDR.
    #[arg(long, value_parser = |s: &str| parse_cidr(s).map_err(|e| e.to_string()))]
    ip: Vec<IpNetArg>,
    #[arg(long, value_parser = |s: &str| parse_cidr(s).map_err(|e| e.to_string()))]
    from_ip: Vec<IpNetArg>,
    #[arg(long, value_parser = |s: &str| parse_cidr(s).map_err(|e| e.to_string()))]
    to_ip: Vec<IpNetArg>,
    /// Either side's port.
    #[arg(long)]
    port: Vec<u16>,
    /// Transport protocol: tcp, udp, icmp, icmpv6, sctp.
    #[arg(long = "l4", value_parser = |s: &str| fathom_model::filter::parse_protocol(s).map_err(|e| e.to_string()))]
    l4: Vec<L4Protocol>,
    /// Record types to print: flow, l7.
    #[arg(long = "type")]
    types: Vec<String>,
    /// Write the packets of the matching flows to this pcap instead of printing records.
    #[arg(long)]
    write_pcap: Option<PathBuf>,
    /// Print capture statistics (packets, reassembly, per protocol) to stderr.
    #[arg(long)]
    stats: bool,
    /// Threads running the flow engines (0: one per core, the default; 1 on a busy machine).
    /// The output is the same whatever the count.
    #[arg(long, default_value_t = 0)]
    threads: usize,
    #[arg(long, short = 'o', value_enum, default_value = "table")]
    output: Format,
}

fn print_stats(s: &ReplayStats) {
    eprintln!(
        "replay: {} packets, {} flows, {} L7 records; {} non-IP, {} undecodable, {} truncated by snaplen; checksums bad (counted, not dropped): {} IP, {} L4",
        s.packets, s.flows, s.l7_records, s.non_ip_packets, s.decode_errors, s.truncated_packets, s.bad_ip_checksums, s.bad_l4_checksums
    );
    eprintln!(
        "replay: TCP {} segments, {} bytes delivered, {} retransmitted, {} out of order, {} gaps ({} bytes); IP fragments {} ({} reassembled)",
        s.tcp.segments,
        s.tcp.delivered_bytes,
        s.tcp.retransmitted_bytes,
        s.tcp.out_of_order_segments,
        s.tcp.gaps,
        s.tcp.gap_bytes,
        s.ip_fragments,
        s.reassembled_datagrams
    );
    for (p, ps) in &s.protocols {
        eprintln!("replay: {p}: {ps:?}");
    }
    if s.unidentified_connections > 0 {
        eprintln!(
            "replay: {} connections ({} bytes) of no recognised protocol",
            s.unidentified_connections, s.unidentified_bytes
        );
    }
}

pub fn run(args: ReplayArgs) -> anyhow::Result<i32> {
    let filter = FlowFilter {
        ip: args.ip.clone(),
        from_ip: args.from_ip.clone(),
        to_ip: args.to_ip.clone(),
        port: args.port.clone(),
        protocol: args.l4.clone(),
        r#type: args.types.clone(),
        ..Default::default()
    };
    let opts = ReplayOptions {
        node: crate::hostname(),
        threads: args.threads,
        ..ReplayOptions::default()
    }
    .with_protocols(args.protocol.clone());

    if let Some(out) = &args.write_pcap {
        let pf = PcapFilter {
            flow: filter,
            protocols: args.protocol.clone(),
        };
        let s = write_filtered_pcap(&args.file, out, &pf, &opts)?;
        eprintln!(
            "wrote {} of {} packets ({} flows) to {} (link type {})",
            s.packets_written,
            s.packets_read,
            s.flows_matched,
            out.display(),
            s.linktype
        );
        return Ok(0);
    }

    let (report, error) = match replay_file(&args.file, &opts) {
        Ok(r) => (r, None),
        Err(e) => {
            let report = (*e.report).clone();
            (report, Some(e))
        }
    };
    let stdout = std::io::stdout();
    let mut printer = Printer::new(stdout.lock(), args.output, false);
    for r in report.records.iter().filter(|r| filter.matches(r)) {
        if printer.record(r).is_err() {
            return Ok(0); // the reader went away (| head)
        }
    }
    printer.finish()?;
    if args.stats {
        print_stats(&report.stats);
    }
    match error {
        // The records up to the break are printed above; say where it broke and fail.
        Some(e) => Err(anyhow::anyhow!("{}: {e}", args.file.display())),
        None => Ok(0),
    }
}
