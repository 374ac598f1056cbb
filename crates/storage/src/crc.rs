//! CRC-32C arithmetic the `crc32c` crate does not do fast enough: combining the CRC of a
//! record's frame with the CRC of its body, computed earlier on another thread.
//!
//! `crc32c::crc32c_combine` builds 32×32 bit matrices for every call (about 17 µs here for a
//! 64 KiB body), which would cost more than the checksum it saves. Combining is one
//! multiplication by x^(8·len) modulo the CRC polynomial, and x^(8·len) is a product of
//! precomputed powers x^(2^k): a few hundred nanoseconds.

/// The CRC-32C (Castagnoli) polynomial, bit-reversed as the CRC is computed.
const POLY: u32 = 0x82F6_3B78;

/// `a · b mod P`, both in the CRC's bit-reversed representation (bit 31 is x^0).
const fn mul_mod(a: u32, mut b: u32) -> u32 {
    let mut product = 0;
    let mut bit = 1u32 << 31;
    while bit != 0 {
        if a & bit != 0 {
            product ^= b;
        }
        bit >>= 1;
        // b · x: a shift towards the low bits, reduced by P when x^31 falls off.
        b = if b & 1 != 0 { (b >> 1) ^ POLY } else { b >> 1 };
    }
    product
}

/// `X2N[k]` = x^(2^k) mod P.
const X2N: [u32; 64] = {
    let mut table = [0u32; 64];
    // x^1.
    let mut p = 1u32 << 30;
    let mut k = 0;
    while k < 64 {
        table[k] = p;
        p = mul_mod(p, p);
        k += 1;
    }
    table
};

/// x^(8·bytes) mod P: the operator that moves a CRC past `bytes` zero bytes.
fn x_pow_8n(bytes: u64) -> u32 {
    // x^0.
    let mut p = 1u32 << 31;
    let mut n = bytes;
    // x^(8n) = product of x^(2^(k+3)) over the set bits k of n.
    let mut k = 3;
    while n != 0 {
        if n & 1 != 0 {
            p = mul_mod(X2N[k], p);
        }
        n >>= 1;
        k += 1;
    }
    p
}

/// The CRC-32C of `a ‖ b` from `crc_a` = CRC-32C of `a`, `crc_b` = CRC-32C of `b`, and `b`'s
/// length: what `crc32c::crc32c_combine` returns, without building matrices.
pub(crate) fn combine(crc_a: u32, crc_b: u32, len_b: u64) -> u32 {
    if len_b == 0 {
        return crc_a;
    }
    mul_mod(x_pow_8n(len_b), crc_a) ^ crc_b
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_table_starts_at_x_and_squares() {
        assert_eq!(X2N[0], 1 << 30);
        assert_eq!(X2N[1], 1 << 29);
        for k in 1..64 {
            assert_eq!(X2N[k], mul_mod(X2N[k - 1], X2N[k - 1]));
        }
    }

    #[test]
    fn combining_with_nothing_changes_nothing() {
        let a = crc32c::crc32c(b"synod");
        assert_eq!(combine(a, crc32c::crc32c(b""), 0), a);
    }

    proptest! {
        #[test]
        fn combine_is_the_crc_of_the_concatenation(
            a in proptest::collection::vec(any::<u8>(), 0..300),
            b in proptest::collection::vec(any::<u8>(), 0..3000),
        ) {
            let whole = crc32c::crc32c(&[a.as_slice(), b.as_slice()].concat());
            let crc_a = crc32c::crc32c(&a);
            let crc_b = crc32c::crc32c(&b);
            prop_assert_eq!(combine(crc_a, crc_b, b.len() as u64), whole);
            prop_assert_eq!(
                crc32c::crc32c_combine(crc_a, crc_b, b.len()),
                whole,
                "the reference disagrees with the definition"
            );
        }

        #[test]
        fn combine_agrees_with_the_crate_for_long_lengths(
            crc_a in any::<u32>(), crc_b in any::<u32>(), len in 0u64..(1 << 33),
        ) {
            prop_assert_eq!(
                combine(crc_a, crc_b, len),
                crc32c::crc32c_combine(crc_a, crc_b, len as usize)
            );
        }
    }
}
