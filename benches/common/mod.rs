//! Helpers the benchmarks share.

use std::time::Duration;

/// CPU time (user + system) a process has used so far, from `/proc/{pid}/stat` (in the
/// kernel's fixed 100 Hz `USER_HZ` ticks); zero where that cannot be read. `pid` `None` is
/// this process. A per-operation CPU figure is steadier between runs on a shared machine than
/// a rate, and says where a core's time goes.
pub fn cpu_time(pid: Option<u32>) -> Duration {
    let path = pid.map_or_else(|| "/proc/self/stat".to_string(), |pid| format!("/proc/{pid}/stat"));
    let stat = std::fs::read_to_string(path).unwrap_or_default();
    // Fields after the parenthesised command name, which may itself hold spaces, start at the
    // state; utime and stime follow 11 and 12 places later.
    let fields: Vec<&str> = stat.rsplit_once(')').map_or(Vec::new(), |(_, rest)| rest.split_whitespace().collect());
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok()).unwrap_or(0);
    Duration::from_millis((ticks(11) + ticks(12)) * 10)
}
