//! Writes a simulator trace exactly as `synod sim --seed S --trace FILE` does (same config,
//! same writer), for the browser tests, which must not build the whole `synod` binary.
//!
//! Usage: `sim_trace SEED NODES FAULTS EVENTS FILE`.

use anyhow::{bail, Context};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [seed, nodes, faults, events, file] = args.as_slice() else {
        bail!("usage: sim_trace SEED NODES FAULTS EVENTS FILE");
    };
    let faults = explore::multi::parse_faults(faults)?;
    let mut config = sim::SimConfig::new(seed.parse()?, nodes.parse()?, faults);
    config.trace = true;
    let mut simulation = sim::Simulation::new(config);
    for _ in 0..events.parse::<usize>()? {
        if !simulation.step() {
            break;
        }
    }
    let mut out =
        std::io::BufWriter::new(std::fs::File::create(file).context("creating the trace")?);
    sim::trace::write_jsonl(&mut out, &simulation.trace_header(), simulation.trace())?;
    Ok(())
}
