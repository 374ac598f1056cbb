//! The log payload encoding and the snapshot reader on hostile input.

mod common;

use common::{arb_command, command};
use kv::*;
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig { cases: 500, ..ProptestConfig::default() })]

    #[test]
    fn every_command_round_trips(cmd in arb_command()) {
        let bytes = encode(&cmd);
        prop_assert_eq!(bytes[0], FORMAT_VERSION);
        prop_assert_eq!(decode(&bytes), Ok(cmd));
    }

    #[test]
    fn random_bytes_never_panic_the_decoder(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        // Whatever it answers, it answers; a decoded command re-encodes to the same bytes,
        // because every value has exactly one encoding.
        if let Ok(cmd) = decode(&bytes) {
            prop_assert_eq!(encode(&cmd), bytes);
        }
    }

    #[test]
    fn damaged_payloads_never_panic_the_decoder(
        cmd in arb_command(),
        at in any::<prop::sample::Index>(),
        xor in 1u8..=255,
        cut in any::<prop::sample::Index>(),
    ) {
        let good = encode(&cmd);
        let mut flipped = good.clone();
        let i = at.index(flipped.len());
        flipped[i] ^= xor;
        if let Ok(other) = decode(&flipped) {
            prop_assert_ne!(other, cmd.clone(), "a changed payload decoded to the same command");
        }
        let n = cut.index(good.len());
        prop_assert!(decode(&good[..n]).is_err(), "a strict prefix decoded");
    }

    #[test]
    fn random_bytes_never_panic_restore(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let _ = KvStore::restore(&bytes);
        let mut framed = b"SKVS\x01".to_vec();
        framed.extend_from_slice(&bytes);
        let crc = crc32c(&framed);
        framed.extend_from_slice(&crc.to_le_bytes());
        // Checksum right, body random: refused or restored, never a panic; if restored, the
        // store snapshots back to the same bytes.
        if let Ok(s) = KvStore::restore(&framed) {
            prop_assert_eq!(s.snapshot(), framed);
        }
    }

    #[test]
    fn arbitrary_commands_never_panic_the_store(cmds in prop::collection::vec(arb_command(), 0..20)) {
        let mut s = KvStore::new();
        for cmd in &cmds {
            let before = s.clone();
            if s.apply(cmd).is_err() {
                prop_assert_eq!(&s, &before, "a refused command changed the store");
            }
        }
        prop_assert!(s.revision() >= 1);
    }

    #[test]
    fn realistic_commands_round_trip(cmd in command()) {
        prop_assert_eq!(decode(&encode(&cmd)), Ok(cmd));
    }
}

/// CRC32C, bit by bit: the tests compute it independently of the crate under test.
fn crc32c(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for b in bytes {
        crc ^= u32::from(*b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0x82f6_3b78
            } else {
                crc >> 1
            };
        }
    }
    !crc
}
