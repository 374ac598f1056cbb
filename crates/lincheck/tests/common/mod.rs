//! Shared helpers: terse constructors for hand-written histories and a
//! generator of histories from a real, correct register.

// Each integration test binary uses a different subset of these helpers.
#![allow(dead_code)]

use std::collections::HashMap;

use lincheck::kv::{KvInput, KvOperation, KvOutput};

pub fn put(client: u64, key: &str, value: &str, invoke: u64, complete: u64) -> KvOperation {
    KvOperation {
        client,
        input: KvInput::Put {
            key: key.into(),
            value: value.into(),
        },
        invoke,
        complete: Some(complete),
        output: Some(KvOutput::Put),
    }
}

pub fn get(client: u64, key: &str, value: Option<&str>, invoke: u64, complete: u64) -> KvOperation {
    KvOperation {
        client,
        input: KvInput::Get { key: key.into() },
        invoke,
        complete: Some(complete),
        output: Some(KvOutput::Get {
            value: value.map(Into::into),
        }),
    }
}

pub fn cas(
    client: u64,
    key: &str,
    expected: Option<&str>,
    new: &str,
    ok: bool,
    invoke: u64,
    complete: u64,
) -> KvOperation {
    KvOperation {
        client,
        input: KvInput::Cas {
            key: key.into(),
            expected: expected.map(Into::into),
            new: new.into(),
        },
        invoke,
        complete: Some(complete),
        output: Some(KvOutput::Cas { ok }),
    }
}

pub fn delete(client: u64, key: &str, existed: bool, invoke: u64, complete: u64) -> KvOperation {
    KvOperation {
        client,
        input: KvInput::Delete { key: key.into() },
        invoke,
        complete: Some(complete),
        output: Some(KvOutput::Delete { existed }),
    }
}

/// The same operation with its outcome erased, as if the client timed out.
pub fn timed_out(mut op: KvOperation) -> KvOperation {
    op.complete = None;
    op.output = None;
    op
}

/// SplitMix64: tiny, deterministic, good enough to drive test histories.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    pub fn percent(&mut self, p: u64) -> bool {
        self.below(100) < p
    }
}

#[derive(Clone, Copy, Debug)]
pub struct GenConfig {
    pub seed: u64,
    pub clients: u64,
    pub ops: usize,
    pub keys: u64,
    /// Percentage of operations whose client times out.
    pub unknown_percent: u64,
}

struct Planned {
    op: KvOperation,
    /// When the real register applies it; `None` means it never takes
    /// effect (only for timed-out operations).
    effect_at: Option<u64>,
}

/// Builds a history that is linearizable by construction: each operation is
/// applied to a real sequential register at a point inside its interval
/// (or, for timed-out operations, at any point after invocation or never),
/// and its output is whatever the register returned. Every written value is
/// unique, which the mutation tests rely on.
pub fn correct_history(cfg: GenConfig) -> Vec<KvOperation> {
    let mut rng = Rng::new(cfg.seed);
    let mut clock: Vec<u64> = (0..cfg.clients).map(|_| rng.below(10)).collect();
    let mut written: HashMap<String, Vec<String>> = HashMap::new();
    let mut next_value = 0u64;
    let mut planned = Vec::with_capacity(cfg.ops);

    for _ in 0..cfg.ops {
        // Always advance the client that is furthest behind, so generation
        // runs roughly in time order and CAS expectations are plausible.
        let client = (0..clock.len())
            .min_by_key(|&c| clock[c])
            .expect("at least one client");
        let key = format!("k{}", rng.below(cfg.keys));
        let input = match rng.below(10) {
            0..=3 => KvInput::Get { key: key.clone() },
            4..=6 => {
                next_value += 1;
                KvInput::Put {
                    key: key.clone(),
                    value: format!("v{next_value}"),
                }
            }
            7..=8 => {
                next_value += 1;
                let history = written.get(&key).map(Vec::as_slice).unwrap_or(&[]);
                let expected = match history.len() {
                    0 => None,
                    n if rng.percent(80) => {
                        let back = rng.below(2.min(n as u64)) as usize;
                        Some(history[n - 1 - back].clone())
                    }
                    _ => None,
                };
                KvInput::Cas {
                    key: key.clone(),
                    expected,
                    new: format!("v{next_value}"),
                }
            }
            _ => KvInput::Delete { key: key.clone() },
        };
        if let KvInput::Put { value, .. } | KvInput::Cas { new: value, .. } = &input {
            written.entry(key).or_default().push(value.clone());
        }

        let invoke = clock[client] + rng.below(5);
        let (complete, effect_at) = if rng.percent(cfg.unknown_percent) {
            // The client gives up after a timeout; the request may still
            // land much later, or be lost.
            let gave_up = invoke + 20;
            clock[client] = gave_up + 1;
            let effect = (!rng.percent(30)).then(|| invoke + rng.below(80));
            (None, effect)
        } else {
            let effect = invoke + rng.below(10);
            let complete = effect + rng.below(10);
            // May equal `complete`: exercises equal-timestamp handling.
            clock[client] = complete + rng.below(3);
            (Some(complete), Some(effect))
        };
        planned.push(Planned {
            op: KvOperation {
                client: client as u64,
                input,
                invoke,
                complete,
                output: None,
            },
            effect_at,
        });
    }

    let mut by_effect: Vec<usize> = (0..planned.len())
        .filter(|&i| planned[i].effect_at.is_some())
        .collect();
    by_effect.sort_by_key(|&i| (planned[i].effect_at, i));
    let mut register: HashMap<String, String> = HashMap::new();
    for i in by_effect {
        let output = apply(&mut register, &planned[i].op.input);
        if planned[i].op.complete.is_some() {
            planned[i].op.output = Some(output);
        }
    }
    planned.into_iter().map(|p| p.op).collect()
}

fn apply(register: &mut HashMap<String, String>, input: &KvInput) -> KvOutput {
    match input {
        KvInput::Get { key } => KvOutput::Get {
            value: register.get(key).cloned(),
        },
        KvInput::Put { key, value } => {
            register.insert(key.clone(), value.clone());
            KvOutput::Put
        }
        KvInput::Cas { key, expected, new } => {
            let ok = register.get(key) == expected.as_ref();
            if ok {
                register.insert(key.clone(), new.clone());
            }
            KvOutput::Cas { ok }
        }
        KvInput::Delete { key } => KvOutput::Delete {
            existed: register.remove(key).is_some(),
        },
    }
}

/// Reads whose outcome is known: the ones a mutation can corrupt.
pub fn known_reads(history: &[KvOperation]) -> Vec<usize> {
    history
        .iter()
        .enumerate()
        .filter(|(_, op)| matches!(op.output, Some(KvOutput::Get { .. })))
        .map(|(i, _)| i)
        .collect()
}

/// Finds a known read `r` and a value `v` such that `v` was written by a
/// completed write `w1`, which was followed (in real time) by a completed
/// overwrite `w2`, which completed before `r` was invoked. Since values are
/// unique, no linearization lets `r` observe `v`.
pub fn stale_value_for_some_read(history: &[KvOperation]) -> Option<(usize, String)> {
    let key_of = |op: &KvOperation| op.input.key().to_owned();
    for r in known_reads(history) {
        let read = &history[r];
        let key = key_of(read);
        let overwrites = history.iter().filter(|w2| {
            key_of(w2) == key
                && precedes(w2, read)
                && matches!(
                    w2.output,
                    Some(KvOutput::Put | KvOutput::Delete { .. } | KvOutput::Cas { ok: true })
                )
        });
        for w2 in overwrites {
            let stale = history.iter().find_map(|w1| {
                if key_of(w1) != key || !precedes(w1, w2) {
                    return None;
                }
                match (&w1.input, &w1.output) {
                    (KvInput::Put { value, .. }, Some(KvOutput::Put))
                    | (KvInput::Cas { new: value, .. }, Some(KvOutput::Cas { ok: true })) => {
                        Some(value.clone())
                    }
                    _ => None,
                }
            });
            if let Some(value) = stale {
                return Some((r, value));
            }
        }
    }
    None
}

/// Whether `a` completed strictly before `b` was invoked, which forces `a`
/// before `b` in every linearization.
fn precedes(a: &KvOperation, b: &KvOperation) -> bool {
    a.complete.is_some_and(|c| c < b.invoke)
}

/// Replaces the value returned by the read at `index`.
pub fn set_read_value(history: &mut [KvOperation], index: usize, value: Option<String>) {
    history[index].output = Some(KvOutput::Get { value });
}
