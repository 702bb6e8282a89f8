//! Stand-alone `fathom lab` (the same sub-commands the `fathom` CLI embeds), e.g. `fathom-lab up -f lab.yaml`.

use clap::Parser;

/// Network-namespace "pods" on one machine, for Fathom tests and demos.
#[derive(Parser)]
#[command(name = "fathom-lab", version)]
struct Cli {
    #[command(subcommand)]
    cmd: fathom_lab::LabCommand,
}

fn main() {
    let cli = Cli::parse();
    match fathom_lab::run(cli.cmd) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("fathom-lab: {e:#}");
            std::process::exit(1);
        }
    }
}
