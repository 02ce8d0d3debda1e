//! The simulated network: per-link latency, jitter, loss, duplication, reordering and cuts.
//!
//! The network only decides *when* (if ever) each copy of a message arrives; the world puts
//! the deliveries on its event queue. Reordering falls out of per-message delays: a message
//! held back arrives after later ones.

use crate::rng::SimRng;
use crate::scenario;

/// The network settings one seed drew from the scenario's ranges.
#[derive(Debug, Clone)]
pub struct Settings {
    pub jitter_ms: [i64; 2],
    pub loss_percent: u64,
    pub duplicate_percent: u64,
    pub reorder_percent: u64,
    pub reorder_delay_ms: [i64; 2],
}

pub struct Network {
    pub settings: Settings,
    n: usize,
    /// Base latency of each directed link, `from * n + to`.
    latency: Vec<i64>,
    /// How many active partitions cut each directed link.
    cuts: Vec<u16>,
    /// Messages scheduled and not yet delivered or dropped.
    pub in_flight: usize,
}

impl Network {
    pub fn new(n: usize, config: &scenario::Network, rng: &mut SimRng) -> Self {
        let settings = Settings {
            jitter_ms: config.jitter_ms,
            loss_percent: rng.range(config.loss_percent) as u64,
            duplicate_percent: rng.range(config.duplicate_percent) as u64,
            reorder_percent: rng.range(config.reorder_percent) as u64,
            reorder_delay_ms: config.reorder_delay_ms,
        };
        let latency = (0..n * n).map(|_| rng.range(config.latency_ms)).collect();
        Self { settings, n, latency, cuts: vec![0; n * n], in_flight: 0 }
    }

    pub fn is_cut(&self, from: usize, to: usize) -> bool {
        self.cuts[from * self.n + to] > 0
    }

    /// Whether the replicas at `a` and `b` see a connection: only a cut in both directions
    /// closes it (a one-way cut looks like a healthy link that silently loses messages).
    pub fn connected(&self, a: usize, b: usize) -> bool {
        !(self.is_cut(a, b) && self.is_cut(b, a))
    }

    pub fn apply_cut(&mut self, links: &[(usize, usize)], active: bool) {
        for &(from, to) in links {
            let count = &mut self.cuts[from * self.n + to];
            *count = if active { count.saturating_add(1) } else { count.saturating_sub(1) };
        }
    }

    /// Arrival times of the copies of one message sent now (none if lost or cut).
    pub fn arrivals(&self, from: usize, to: usize, now_ms: i64, rng: &mut SimRng) -> Vec<i64> {
        if self.is_cut(from, to) || rng.chance(self.settings.loss_percent) {
            return Vec::new();
        }
        let copies = if rng.chance(self.settings.duplicate_percent) { 2 } else { 1 };
        (0..copies)
            .map(|_| {
                let mut delay = self.latency[from * self.n + to] + rng.range(self.settings.jitter_ms);
                if rng.chance(self.settings.reorder_percent) {
                    delay += rng.range(self.settings.reorder_delay_ms);
                }
                now_ms + delay.max(1)
            })
            .collect()
    }
}
