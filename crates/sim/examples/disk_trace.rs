//! Prints the trace of one Disk Paxos seed: `cargo run -p synod-sim --example disk_trace -- SEED [P] [D]`.
fn main() {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("a number"))
        .collect();
    let seed = args.first().copied().unwrap_or(0);
    let p = args.get(1).copied().unwrap_or(3) as usize;
    let d = args.get(2).copied().unwrap_or(3) as usize;
    let mut config = sim::disk::DiskSimConfig::new(seed, p, d);
    config.trace = true;
    let report = sim::disk::run_disk_seed(config);
    for line in &report.trace {
        println!("{line}");
    }
    println!("{:?}", report.violations);
}
