//! Scenario tests of Disk Paxos, each named for the rule it defends (sections of Gafni and
//! Lamport, *Disk Paxos*).

use super::*;
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// Disks as arrays of blocks, one per processor; `down` disks fail every request.
struct Disks {
    blocks: Vec<Vec<DiskBlock>>,
    down: Vec<bool>,
}

impl Disks {
    fn new(processors: usize, disks: usize) -> Disks {
        Disks {
            blocks: vec![vec![DiskBlock::INITIAL; processors]; disks],
            down: vec![false; disks],
        }
    }

    fn serve(&mut self, who: NodeId, io: DiskIo) -> Completion {
        let d = io.disk().0 as usize;
        match io {
            DiskIo::Write { disk, tag, .. } | DiskIo::Read { disk, tag, .. } if self.down[d] => {
                Completion::Failed { disk, tag }
            }
            DiskIo::Write { disk, tag, block } => {
                self.blocks[d][(who.0 - 1) as usize] = block;
                Completion::Written { disk, tag }
            }
            DiskIo::Read { disk, tag, of } => {
                let blocks = of
                    .iter()
                    .map(|q| (*q, self.blocks[d][(q.0 - 1) as usize].clone()))
                    .collect();
                Completion::Read { disk, tag, blocks }
            }
        }
    }
}

fn processor(id: u64, processors: usize, disks: usize) -> DiskProcessor {
    let config = DiskConfig::new(processors, disks).unwrap();
    DiskProcessor::new(
        NodeId(id),
        config,
        DiskPaxosOptions::default(),
        PlantedBugs::none(),
    )
    .unwrap()
}

/// Serves every request of `p` at once until it issues none.
fn settle(p: &mut DiskProcessor, disks: &mut Disks) {
    for _ in 0..1000 {
        let io = p.ready().io;
        if io.is_empty() {
            return;
        }
        for r in io {
            let c = disks.serve(p.id(), r);
            p.completed(c);
        }
    }
    panic!("never settled");
}

#[test]
fn a_lone_processor_decides_its_input_with_a_minority_of_disks_down() {
    let mut disks = Disks::new(2, 3);
    disks.down[2] = true;
    let mut p = processor(1, 2, 3);
    p.propose(b"a".to_vec()).unwrap();
    settle(&mut p, &mut disks);
    assert_eq!(p.stage(), Stage::Idle);
    p.campaign();
    settle(&mut p, &mut disks);
    assert_eq!(p.decided(), Some(&b"a".to_vec()));
}

#[test]
fn no_phase_completes_without_a_majority_of_disks() {
    let mut disks = Disks::new(2, 3);
    disks.down[1] = true;
    disks.down[2] = true;
    let mut p = processor(1, 2, 3);
    p.propose(b"a".to_vec()).unwrap();
    settle(&mut p, &mut disks);
    assert_eq!(p.stage(), Stage::Recovering, "phase 0 needs a majority too");
    disks.down[2] = false;
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    for _ in 0..30 {
        p.tick(&mut rng);
        settle(&mut p, &mut disks);
    }
    disks.down[2] = true;
    p.campaign();
    settle(&mut p, &mut disks);
    assert_eq!(p.decided(), None);
    assert_eq!(p.stage(), Stage::Idle, "gave up on losing the majority");
}

#[test]
fn a_later_ballot_adopts_the_decided_value() {
    // Section 2.2: phase 1 takes the value of the highest bal read.
    let mut disks = Disks::new(2, 3);
    let mut p = processor(1, 2, 3);
    let mut q = processor(2, 2, 3);
    p.propose(b"p".to_vec()).unwrap();
    q.propose(b"q".to_vec()).unwrap();
    settle(&mut p, &mut disks);
    settle(&mut q, &mut disks);
    p.campaign();
    settle(&mut p, &mut disks);
    assert_eq!(p.decided(), Some(&b"p".to_vec()));
    q.campaign();
    settle(&mut q, &mut disks);
    assert_eq!(q.decided(), Some(&b"p".to_vec()));
}

#[test]
fn a_higher_mbal_read_aborts_the_ballot() {
    let mut disks = Disks::new(2, 3);
    let mut p = processor(1, 2, 3);
    let mut q = processor(2, 2, 3);
    p.propose(b"p".to_vec()).unwrap();
    q.propose(b"q".to_vec()).unwrap();
    settle(&mut p, &mut disks);
    settle(&mut q, &mut disks);
    // q's ballot (1.2) is above p's coming ballot (1.1): p, writing after it, must abort.
    q.campaign();
    let q_writes = q.ready().io;
    for r in q_writes {
        let c = disks.serve(q.id(), r);
        q.completed(c);
    }
    p.campaign();
    settle(&mut p, &mut disks);
    assert_eq!(p.decided(), None);
    assert_eq!(p.counters().aborts, 1);
    settle(&mut q, &mut disks);
    assert_eq!(q.decided(), Some(&b"q".to_vec()));
}

#[test]
fn a_restarted_processor_keeps_its_vote_and_raises_its_ballot() {
    // Phase 0 of the paper's specification: a restart reads the own block back.
    let mut disks = Disks::new(2, 3);
    let mut p = processor(1, 2, 3);
    p.propose(b"p".to_vec()).unwrap();
    settle(&mut p, &mut disks);
    p.campaign();
    settle(&mut p, &mut disks);
    let before = p.block().clone();
    let mut p = processor(1, 2, 3);
    p.propose(b"other".to_vec()).unwrap();
    settle(&mut p, &mut disks);
    assert_eq!(p.block(), &before);
    p.campaign();
    settle(&mut p, &mut disks);
    assert!(p.block().mbal > before.mbal);
    assert_eq!(p.decided(), Some(&b"p".to_vec()));
}

#[test]
fn a_malformed_block_is_a_failed_read_and_stale_answers_are_ignored() {
    let mut disks = Disks::new(2, 3);
    disks.blocks[0][1] = DiskBlock {
        mbal: Ballot::ZERO,
        bal: Ballot::new(3, NodeId(2)),
        inp: None,
    };
    let mut p = processor(1, 2, 3);
    p.propose(b"p".to_vec()).unwrap();
    settle(&mut p, &mut disks);
    p.campaign();
    settle(&mut p, &mut disks);
    assert_eq!(p.decided(), Some(&b"p".to_vec()));
    assert!(p.counters().malformed >= 1);
    p.completed(Completion::Written {
        disk: DiskId(0),
        tag: IoTag(1),
    });
    p.completed(Completion::Read {
        disk: DiskId(9),
        tag: IoTag(99),
        blocks: Vec::new(),
    });
    assert_eq!(p.decided(), Some(&b"p".to_vec()));
}

#[test]
fn bounds_are_refused() {
    assert!(DiskConfig::new(0, 3).is_err());
    assert!(DiskConfig::new(3, DISKS_MAX + 1).is_err());
    let mut p = processor(1, 1, 1);
    assert!(p.propose(vec![0; VALUE_BYTES_MAX + 1]).is_err());
    let config = DiskConfig::new(2, 3).unwrap();
    assert!(DiskProcessor::new(
        NodeId(3),
        config,
        DiskPaxosOptions::default(),
        PlantedBugs::none()
    )
    .is_err());
}
