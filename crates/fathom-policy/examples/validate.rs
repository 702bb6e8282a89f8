//! Validate policy files or directories as one apply and list what would be applied:
//! `cargo run -p fathom-policy --example validate -- policies/`
fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match fathom_policy::load_paths(&args, &fathom_policy::LoadOptions::default()) {
        Ok(set) => {
            for p in set.policies() {
                let types: Vec<&str> = [
                    (p.isolates_ingress, "Ingress"),
                    (p.isolates_egress, "Egress"),
                ]
                .iter()
                .filter(|(on, _)| *on)
                .map(|(_, t)| *t)
                .collect();
                println!(
                    "{} mode={} podSelector={} isolates=[{}] ingress rules={} egress rules={}",
                    p.display_name(),
                    p.mode,
                    p.pod_selector,
                    types.join(","),
                    p.ingress.len(),
                    p.egress.len()
                );
            }
        }
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    }
}
