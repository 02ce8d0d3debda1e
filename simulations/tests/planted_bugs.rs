//! Proof that the checkers bite: bugs planted on the harness side must be reported, while
//! the same seeds pass without them.

mod common;

use simulations::checkers::bounded_reads;
use simulations::strong_docs::{self, DocsSettings};
use simulations::{run_seed, PlantedBug, RunOptions};

fn properties(bug: Option<PlantedBug>, seeds: std::ops::Range<u64>) -> Vec<Option<&'static str>> {
    let scenario = common::scenario("smoke.toml");
    let options = RunOptions { bug, echo_trace: false };
    seeds.map(|seed| run_seed(&scenario, seed, &options).violation.map(|v| v.property)).collect()
}

#[test]
fn acknowledging_before_storing_is_caught_by_the_durability_checker() {
    let seeds = 0..20;
    assert!(properties(None, seeds.clone()).iter().all(Option::is_none));
    let found = properties(Some(PlantedBug::AckBeforeStore), seeds);
    let durability = found.iter().filter(|p| **p == Some("durability")).count();
    assert!(durability >= 5, "durability reported on only {durability} of 20 seeds: {found:?}");
}

#[test]
fn dropping_every_sync_request_is_caught_by_the_convergence_checker() {
    let seeds = 0..10;
    assert!(properties(None, seeds.clone()).iter().all(Option::is_none));
    let found = properties(Some(PlantedBug::DropSyncRequests), seeds);
    let convergence = found.iter().filter(|p| **p == Some("convergence")).count();
    assert!(convergence >= 5, "convergence reported on only {convergence} of 10 seeds: {found:?}");
}

#[test]
fn anti_entropy_skipping_a_seq_range_is_caught_by_the_convergence_checker() {
    let seeds = 0..10;
    assert!(properties(None, seeds.clone()).iter().all(Option::is_none));
    let found = properties(Some(PlantedBug::SkipSeqRange), seeds);
    let caught = found.iter().filter(|p| p.is_some()).count();
    assert!(caught >= 5, "a violation reported on only {caught} of 10 seeds: {found:?}");
}

/// The property each seed of a strong-document run broke, if any.
fn strong_properties(settings: DocsSettings, seeds: std::ops::RangeInclusive<u64>) -> Vec<Option<&'static str>> {
    seeds.map(|seed| strong_docs::run(seed, settings).expect("run").violation.map(|v| v.property)).collect()
}

#[test]
fn bounded_reads_served_without_checking_staleness_are_caught() {
    let planted = DocsSettings { unchecked_bounded_reads: true, ..DocsSettings::default() };
    let found = strong_properties(planted, 1..=10);
    let caught = found.iter().filter(|p| **p == Some(bounded_reads::PROPERTY)).count();
    assert!(caught >= 2, "bounded_reads reported on only {caught} of 10 seeds: {found:?}");
}

#[test]
fn strong_document_reads_without_a_barrier_are_caught() {
    let planted = DocsSettings { stale_strong_reads: true, ..DocsSettings::default() };
    let found = strong_properties(planted, 1..=10);
    let caught = found.iter().filter(|p| **p == Some("linearizability")).count();
    assert!(caught >= 2, "linearizability reported on only {caught} of 10 seeds: {found:?}");
}
