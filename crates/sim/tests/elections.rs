//! Leader election under partial connectivity: the three shapes of the Omni-Paxos paper
//! (Ng, Haridi, Carbone, EuroSys 2023, section 2 and figure 1), on 5 nodes. After the partition
//! is applied, a stable leader (one a quorum follows at its ballot) must emerge within four
//! election timeouts and keep leading. And the liveness check must be able to fail.

use sim::{CheckKind, FaultProfile, LinkMatrix, PartitionShape, SimConfig, Simulation};

/// A hand-driven run: no nemesis, no end, two clients writing and reading.
fn scenario(seed: u64, nodes: usize) -> Simulation {
    let mut config = SimConfig::new(seed, nodes, FaultProfile::None);
    config.nemesis = false;
    config.clients = 2;
    config.timing.fault_phase_us = u64::MAX;
    config.trace = true;
    Simulation::new(config)
}

/// Runs until a stable leader exists; returns its member index.
fn settle(sim: &mut Simulation) -> usize {
    let deadline = sim.now_us() + 2_000_000;
    while sim.now_us() < deadline {
        let t = sim.now_us() + 10_000;
        sim.run_until(t);
        if let Some(s) = sim.stable_leader() {
            if sim.now_us() - s.since_us > 200_000 {
                return (s.node.0 - 1) as usize;
            }
        }
    }
    panic!("no stable leader before the partition");
}

fn election_max_us(sim: &Simulation) -> u64 {
    sim.config().timing.election_max_us(&sim.config().replica)
}

/// Applies `shape` now, then checks that a stable leader among `eligible` emerges within four
/// election timeouts and is still the same one a second later. Returns how long it took.
fn assert_recovers(
    sim: &mut Simulation,
    shape: &PartitionShape,
    eligible: &[usize],
    name: &str,
) -> u64 {
    let bound_us = 4 * election_max_us(sim);
    sim.set_partition(shape);
    let start = sim.now_us();
    let mut emerged = None;
    while sim.now_us() <= start + bound_us {
        let t = sim.now_us() + 1_000;
        sim.run_until(t);
        if let Some(s) = sim.stable_leader() {
            if eligible.contains(&((s.node.0 - 1) as usize)) {
                emerged = Some(s);
                break;
            }
        }
    }
    let Some(leader) = emerged else {
        let tail: Vec<String> = sim
            .trace()
            .iter()
            .rev()
            .filter(|r| {
                !matches!(
                    r.event,
                    sim::trace::TraceEvent::Send { .. } | sim::trace::TraceEvent::Deliver { .. }
                )
            })
            .take(40)
            .map(|r| serde_json::to_string(r).unwrap_or_default())
            .collect();
        panic!(
            "{name}: no stable leader among {eligible:?} within {bound_us} us; last events:\n{}",
            tail.join("\n")
        );
    };
    let took = leader.since_us.saturating_sub(start);
    sim.run_until(start + bound_us + 1_000_000);
    let after = sim.stable_leader().expect("the leader stays stable");
    assert_eq!(
        (after.node, after.ballot, after.since_us),
        (leader.node, leader.ballot, leader.since_us),
        "{name}: leadership changed again"
    );
    println!(
        "{name}: stable leader {} within {took} us of the partition (bound {bound_us} us)",
        leader.node
    );
    took
}

#[test]
fn quorum_loss_elects_the_one_node_connected_to_all() {
    for seed in 0..10 {
        let mut sim = scenario(seed, 5);
        let leader = settle(&mut sim);
        let center = (leader + 2) % 5;
        let shape = PartitionShape::QuorumLoss { center };
        assert_recovers(
            &mut sim,
            &shape,
            &[center],
            &format!("quorum-loss seed {seed}"),
        );
        assert!(sim.violations().is_empty(), "{:?}", sim.violations());
    }
}

#[test]
fn constrained_election_picks_the_lagging_hub() {
    for seed in 0..10 {
        let mut sim = scenario(seed, 5);
        let leader = settle(&mut sim);
        let hub = (leader + 1) % 5;
        // The hub first falls behind: cut off while the clients keep writing.
        sim.set_partition(&PartitionShape::IsolateOne { node: hub });
        let t = sim.now_us() + 300_000;
        sim.run_until(t);
        let hub_through = sim.nodes()[hub]
            .replica()
            .map(|r| r.chosen_through())
            .expect("up");
        let leader_through = sim.nodes()[leader]
            .replica()
            .map(|r| r.chosen_through())
            .expect("up");
        assert!(hub_through < leader_through, "seed {seed}: the hub lags");
        let shape = PartitionShape::Constrained {
            isolated: leader,
            hub,
        };
        assert_recovers(
            &mut sim,
            &shape,
            &[hub],
            &format!("constrained seed {seed}"),
        );
        assert!(sim.violations().is_empty(), "{:?}", sim.violations());
    }
}

#[test]
fn chained_leader_at_one_end_gives_way_to_the_middle() {
    for seed in 0..10 {
        let mut sim = scenario(seed, 5);
        let leader = settle(&mut sim);
        // leader - a - b - c - d: the leader reaches only `a`; a, b and c each reach a quorum.
        let order: Vec<usize> = (0..5).map(|k| (leader + k) % 5).collect();
        let eligible = [order[1], order[2], order[3]];
        let shape = PartitionShape::Chained { order };
        assert_recovers(&mut sim, &shape, &eligible, &format!("chained seed {seed}"));
        assert!(sim.violations().is_empty(), "{:?}", sim.violations());
    }
}

#[test]
fn chained_three_nodes_keep_their_leader() {
    for seed in 0..10 {
        let mut sim = scenario(seed, 3);
        let leader = settle(&mut sim);
        let before = sim.stable_leader().expect("settled");
        // leader - a - b: b cannot hear the leader, but must not depose it.
        let order = vec![leader, (leader + 1) % 3, (leader + 2) % 3];
        let took = assert_recovers(
            &mut sim,
            &PartitionShape::Chained { order },
            &[leader],
            &format!("chained-3 seed {seed}"),
        );
        assert_eq!(took, 0, "the leader was never deposed");
        assert_eq!(sim.stable_leader().map(|s| s.ballot), Some(before.ballot));
    }
}

#[test]
fn liveness_check_fails_when_a_majority_stays_cut_off() {
    let mut config = SimConfig::new(5, 5, FaultProfile::None);
    config.nemesis = false;
    let mut sim = Simulation::new(config);
    while sim.phase() == sim::Phase::Faults {
        assert!(sim.step());
    }
    // Faults have stopped and everything was healed; now cut every link for good.
    let mut links = LinkMatrix::healed(5);
    for a in 0..5 {
        for b in 0..5 {
            links.set(a, b, true);
        }
    }
    sim.set_links(links);
    while sim.step() {}
    let report = sim.finish();
    let liveness = report
        .violation_counts
        .get(&CheckKind::Liveness)
        .copied()
        .unwrap_or(0);
    assert!(liveness > 0, "{report}");
    assert!(!report.passed());
    assert_eq!(
        report.violation_total(),
        liveness,
        "only liveness fails: {report}"
    );
}
