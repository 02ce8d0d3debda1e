//! Per-node clocks: skew and drift against the simulation's one virtual time.
//!
//! Real nodes read their own clocks, which disagree by an offset and run at slightly
//! different rates. Each simulated node gets `local(t) = t + offset + t * drift / 10^6`
//! (milliseconds; drift in parts per million), and every time value the node sees goes
//! through it: the `now` handed to its `Replica`, the timestamps of its writes. Timers the
//! replica sets are in its local time and fire at the global time its clock reaches them.
//! The clock stays strictly increasing (drift is bounded well below 10^6 ppm), as a
//! monotonic clock does.

use crate::rng::SimRng;

const PPM: i128 = 1_000_000;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NodeClock {
    pub offset_ms: i64,
    pub drift_ppm: i64,
}

impl NodeClock {
    /// A clock with an offset in `[0, max_skew_ms]` and a drift in
    /// `[-max_drift_ppm, max_drift_ppm]`; the perfect clock when both bounds are 0 (drawing
    /// nothing, so scenarios without skew replay as before).
    pub fn draw(rng: &mut SimRng, max_skew_ms: i64, max_drift_ppm: i64) -> Self {
        if max_skew_ms == 0 && max_drift_ppm == 0 {
            return Self::default();
        }
        Self { offset_ms: rng.range([0, max_skew_ms]), drift_ppm: rng.range([-max_drift_ppm, max_drift_ppm]) }
    }

    /// What this node's clock reads at global time `global_ms`.
    pub fn local(&self, global_ms: i64) -> i64 {
        let drifted = i128::from(global_ms) * (PPM + i128::from(self.drift_ppm)) / PPM;
        i64::try_from(drifted + i128::from(self.offset_ms)).unwrap_or(i64::MAX)
    }

    /// The earliest global time (not before 0) at which this node's clock reads `local_ms`
    /// or later.
    pub fn global(&self, local_ms: i64) -> i64 {
        let rate = PPM + i128::from(self.drift_ppm);
        let since_offset = i128::from(local_ms) - i128::from(self.offset_ms);
        let mut global = i64::try_from((since_offset * PPM).div_euclid(rate).max(0)).unwrap_or(i64::MAX);
        // The estimate rounds down; step up to the first instant that reaches it.
        while self.local(global) < local_ms {
            global += 1;
        }
        global
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timers_fire_exactly_when_the_local_clock_reaches_them() {
        let mut rng = SimRng::new(7);
        for _ in 0..200 {
            let clock = NodeClock::draw(&mut rng, 500, 200);
            for local in [0, 1, 999, 30_000, 1_234_567] {
                let global = clock.global(local);
                assert!(clock.local(global) >= local, "{clock:?} {local}");
                assert!(global == 0 || clock.local(global - 1) < local, "{clock:?} {local}");
            }
        }
    }

    #[test]
    fn a_clock_is_strictly_increasing_and_perfect_without_bounds() {
        let clock = NodeClock { offset_ms: 300, drift_ppm: -200 };
        let readings: Vec<i64> = (0..10_000).step_by(7).map(|t| clock.local(t)).collect();
        assert!(readings.windows(2).all(|w| w[0] <= w[1]));
        assert_eq!(clock.local(1_000_000), 1_000_000 + 300 - 200);
        let perfect = NodeClock::draw(&mut SimRng::new(1), 0, 0);
        assert_eq!((perfect.local(42), perfect.global(42)), (42, 42));
    }
}
