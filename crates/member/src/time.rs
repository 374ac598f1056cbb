//! Time as the caller tells it: the member never reads a clock.

use std::time::Duration;

/// A moment on the caller's monotonic clock, in microseconds since a start the caller chose
/// (the node: when the member started; the simulator: virtual time). Only differences between
/// two `Micros` of one member mean anything.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Micros(pub u64);

impl Micros {
    /// The start of the caller's clock.
    pub const ZERO: Micros = Micros(0);

    /// `self + d`, saturating (a TTL of 9e9 s must not overflow: it lands in the far future).
    pub fn plus(self, d: Duration) -> Micros {
        let add = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        Micros(self.0.saturating_add(add))
    }

    /// How long from `earlier` to `self`, zero if `earlier` is later.
    pub fn saturating_since(self, earlier: Micros) -> Duration {
        Duration::from_micros(self.0.saturating_sub(earlier.0))
    }
}

impl std::ops::Add<Duration> for Micros {
    type Output = Micros;

    /// Saturating, as [`Micros::plus`].
    fn add(self, d: Duration) -> Micros {
        self.plus(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_saturates() {
        assert_eq!(Micros(5).plus(Duration::from_micros(7)), Micros(12));
        assert_eq!(Micros(5).plus(Duration::MAX), Micros(u64::MAX));
        assert_eq!(
            Micros(12).saturating_since(Micros(5)),
            Duration::from_micros(7)
        );
        assert_eq!(Micros(5).saturating_since(Micros(12)), Duration::ZERO);
    }
}
