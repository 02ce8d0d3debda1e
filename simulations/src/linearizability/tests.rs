//! The checker against hand-written histories with known answers, large histories produced by
//! a real atomic register (and the same with one read corrupted), thousands of small random
//! histories compared with plain enumeration, and malformed history files.

use std::collections::HashSet;
use std::time::Instant;

use super::*;
use crate::rng::SimRng;

const KEY: &str = "k";

fn op(client: ClientId, op: Op, [invoke_ns, complete_ns]: [u64; 2]) -> Operation {
    Operation { key: KEY.into(), client, op, invoke_ns, complete_ns: Some(complete_ns), outcome: Outcome::Ok }
}

fn write(client: ClientId, value: &str, at: [u64; 2]) -> Operation {
    op(client, Op::Write { value: value.into() }, at)
}

fn read(client: ClientId, result: Option<&str>, at: [u64; 2]) -> Operation {
    op(client, Op::Read { result: result.map(Into::into) }, at)
}

fn delete(client: ClientId, at: [u64; 2]) -> Operation {
    op(client, Op::Delete, at)
}

fn cas(client: ClientId, expected: Option<&str>, new: &str, at: [u64; 2]) -> Operation {
    op(client, Op::Cas { expected: expected.map(Into::into), new: new.into() }, at)
}

fn failed(operation: Operation) -> Operation {
    Operation { outcome: Outcome::Fail, ..operation }
}

/// No answer came: the completion time is unknown too.
fn unknown(operation: Operation) -> Operation {
    Operation { outcome: Outcome::Unknown, complete_ns: None, ..operation }
}

fn on_key(key: &str, operation: Operation) -> Operation {
    Operation { key: key.into(), ..operation }
}

fn verdict(history: &[Operation]) -> Verdict {
    check(history, &CheckOptions::default()).expect("valid operations").verdict()
}

fn stuck(violation: &Violation) -> &Stuck {
    match &violation.cause {
        Cause::Stuck(stuck) => stuck,
        _ => panic!("expected the search to get stuck:\n{violation}"),
    }
}

/// The value, and the numbers of the operations since and until which it was held, and of
/// the one that ran in between.
fn interrupted(violation: &Violation) -> (&str, [usize; 3]) {
    match &violation.cause {
        Cause::Interrupted { value, since, until, by, .. } => (value, [since.number, until.number, by.number]),
        _ => panic!("expected an interrupted value:\n{violation}"),
    }
}

fn numbers(operations: &[NumberedOperation]) -> Vec<usize> {
    operations.iter().map(|operation| operation.number).collect()
}

fn the_violation(history: &[Operation]) -> Violation {
    let report = check(history, &CheckOptions::default()).expect("valid operations");
    let violation = report.violations().next().cloned();
    violation.unwrap_or_else(|| panic!("expected a violation, got:\n{report}"))
}

#[test]
fn a_sequential_history_is_linearizable() {
    let history = [
        read(1, None, [0, 10]),
        write(1, "a", [20, 30]),
        read(2, Some("a"), [40, 50]),
        cas(3, Some("a"), "b", [60, 70]),
        failed(cas(1, Some("a"), "c", [80, 90])),
        read(2, Some("b"), [100, 110]),
        delete(3, [120, 130]),
        read(1, None, [140, 150]),
        cas(2, None, "d", [160, 170]),
        read(3, Some("d"), [180, 190]),
    ];
    assert_eq!(verdict(&history), Verdict::Linearizable);
}

#[test]
fn reads_during_overlapping_writes_may_see_either_in_one_order() {
    let history = |first: Option<&str>, second: &str, after: &str| {
        vec![
            write(1, "a", [0, 100]),
            write(2, "b", [10, 90]),
            read(3, first, [20, 30]),
            read(4, Some(second), [40, 50]),
            read(5, Some(after), [120, 130]),
        ]
    };
    for (first, second, after) in [(None, "a", "a"), (None, "b", "a"), (Some("a"), "b", "b"), (Some("b"), "a", "a")] {
        assert_eq!(verdict(&history(first, second, after)), Verdict::Linearizable, "{first:?} {second} {after}");
    }
    // b, then a, then b again: the writes would have to take effect in both orders.
    assert_eq!(verdict(&history(Some("b"), "a", "b")), Verdict::NotLinearizable);
}

#[test]
fn a_read_seeing_the_old_value_after_another_saw_the_new_one_is_a_violation() {
    let history = [
        write(1, "old", [0, 10]),
        write(2, "new", [20, 100]),
        read(3, Some("new"), [30, 40]),
        read(4, Some("old"), [50, 60]),
    ];
    let violation = the_violation(&history);
    assert_eq!(violation.key, KEY);
    // "old" was held from its write's completion until the second read began, which leaves no
    // room for the first read to see "new".
    assert_eq!(interrupted(&violation), ("old", [1, 4, 3]));
}

#[test]
fn a_stale_read_after_a_completed_write_is_a_violation() {
    let history = [write(1, "a", [0, 10]), write(1, "b", [20, 30]), read(2, Some("a"), [40, 50])];
    let violation = the_violation(&history);
    assert_eq!(interrupted(&violation), ("a", [1, 3, 2]));
    let expected = r#"  the register held "a" from the completion of op 1, which stored it, to the start of op 3, which needed it, yet op 2, which cannot happen while it does, ran entirely in between:
    op 1: client 1 write "a" ok [0 .. 10 ns]
    op 2: client 1 write "b" ok [20 .. 30 ns]
    op 3: client 2 read = "a" ok [40 .. 50 ns]"#;
    assert_eq!(violation.to_string(), expected);
}

#[test]
fn a_read_of_a_value_not_stored_yet_is_a_violation() {
    let early = the_violation(&[read(1, Some("a"), [0, 10]), write(2, "a", [20, 30])]);
    let Cause::NotYetStored { value, seen_by, first_storer: Some(first) } = &early.cause else { panic!("{early}") };
    assert_eq!((value.as_str(), seen_by.number, first.number), ("a", 1, 2));
    let expected = r#"  op 1 needed "a", but op 2, the first to store it, began after op 1 completed:
    op 1: client 1 read = "a" ok [0 .. 10 ns]
    op 2: client 2 write "a" ok [20 .. 30 ns]"#;
    assert_eq!(early.to_string(), expected);
    let never = the_violation(&[
        write(1, "a", [0, 10]),
        failed(cas(2, Some("zzz"), "b", [20, 30])),
        cas(3, Some("b"), "c", [40, 50]),
    ]);
    let Cause::NotYetStored { first_storer: None, .. } = &never.cause else { panic!("{never}") };
    assert!(never.to_string().starts_with(r#"  op 3 needed "b", which no operation stores:"#), "{never}");
}

#[test]
fn two_cas_winners_from_the_same_expected_value_is_a_violation() {
    let history = [write(1, "a", [0, 10]), cas(2, Some("a"), "b", [20, 60]), cas(3, Some("a"), "c", [25, 65])];
    let violation = the_violation(&history);
    let stuck = stuck(&violation);
    assert_eq!((stuck.linearized, stuck.state.as_deref(), stuck.overdue), (1, Some("a"), 2));
    assert_eq!((numbers(&stuck.candidates), numbers(&stuck.still_needing)), (vec![2, 3], vec![2, 3]));
    let expected = r#"  longest linearizable prefix: 1 operation, after which the register holds "a"
  its last operations, in linearization order:
    op 1: client 1 write "a" ok [0 .. 10 ns]
  then op 2 had to take effect, but neither it nor any other candidate could:
    op 2: client 2 cas "a" -> "b" ok [20 .. 60 ns]
    op 3: client 3 cas "a" -> "c" ok [25 .. 65 ns]
  and nothing else stores "a", which these operations still needed:
    op 2: client 2 cas "a" -> "b" ok [20 .. 60 ns]
    op 3: client 3 cas "a" -> "c" ok [25 .. 65 ns]"#;
    assert_eq!(violation.to_string(), expected);
}

#[test]
fn a_cas_race_with_one_winner_is_linearizable() {
    let race = |seen: &str| {
        vec![
            write(1, "a", [0, 10]),
            cas(2, Some("a"), "b", [20, 60]),
            failed(cas(3, Some("a"), "c", [25, 65])),
            read(1, Some(seen), [70, 80]),
        ]
    };
    assert_eq!(verdict(&race("b")), Verdict::Linearizable);
    // The loser's value can never be seen.
    assert_eq!(verdict(&race("c")), Verdict::NotLinearizable);
}

#[test]
fn a_failed_cas_means_the_register_did_not_hold_the_expected_value() {
    let history = |expected: &str| vec![write(1, "a", [0, 10]), failed(cas(2, Some(expected), "b", [20, 30]))];
    assert_eq!(verdict(&history("x")), Verdict::Linearizable);
    assert_eq!(verdict(&history("a")), Verdict::NotLinearizable);
    // `If-None-Match: *` on a key that exists.
    assert_eq!(verdict(&[write(1, "a", [0, 10]), cas(2, None, "b", [20, 30])]), Verdict::NotLinearizable);
    assert_eq!(verdict(&[write(1, "a", [0, 10]), failed(cas(2, None, "b", [20, 30]))]), Verdict::Linearizable);
}

#[test]
fn an_unknown_write_that_later_reads_show_took_effect_is_linearizable() {
    let history = [
        write(1, "a", [0, 10]),
        unknown(write(2, "b", [20, 30])),
        read(3, Some("a"), [40, 50]),
        read(3, Some("b"), [1_000, 1_010]),
        read(4, Some("b"), [2_000, 2_010]),
    ];
    assert_eq!(verdict(&history), Verdict::Linearizable);
    // Once seen to have taken effect, it cannot be undone.
    let mut undone = history.to_vec();
    undone.push(read(4, Some("a"), [3_000, 3_010]));
    assert_eq!(verdict(&undone), Verdict::NotLinearizable);
}

#[test]
fn an_unknown_delete_that_a_later_read_shows_took_effect_is_linearizable() {
    let history = |seen: Option<&str>| {
        vec![
            write(1, "a", [0, 10]),
            unknown(delete(2, [20, 30])),
            read(3, Some("a"), [40, 50]),
            read(3, seen, [60, 70]),
        ]
    };
    assert_eq!(verdict(&history(None)), Verdict::Linearizable);
    assert_eq!(verdict(&history(Some("a"))), Verdict::Linearizable);
    // Absent, then "a" again: the key was never written after the write of "a".
    let mut back = history(None);
    back.push(read(4, Some("a"), [80, 90]));
    assert_eq!(verdict(&back), Verdict::NotLinearizable);
}

#[test]
fn an_unknown_write_never_observed_is_linearizable() {
    let history = [
        write(1, "a", [0, 10]),
        unknown(write(2, "b", [20, 30])),
        unknown(delete(2, [40, 50])),
        unknown(cas(2, Some("a"), "c", [60, 70])),
        read(3, Some("a"), [100, 110]),
        read(4, Some("a"), [5_000, 5_010]),
    ];
    assert_eq!(verdict(&history), Verdict::Linearizable);
}

#[test]
fn an_unknown_cas_either_took_effect_or_did_not() {
    let history = |seen: &str| {
        vec![write(1, "a", [0, 10]), unknown(cas(2, Some("a"), "b", [20, 30])), read(3, Some(seen), [40, 50])]
    };
    assert_eq!(verdict(&history("a")), Verdict::Linearizable);
    assert_eq!(verdict(&history("b")), Verdict::Linearizable);
    // It could not have taken effect before it was invoked.
    let early = [write(1, "a", [0, 10]), read(3, Some("b"), [12, 15]), unknown(cas(2, Some("a"), "b", [20, 30]))];
    assert_eq!(verdict(&early), Verdict::NotLinearizable);
}

#[test]
fn a_delete_makes_the_key_absent() {
    let history = |seen: Option<&str>| vec![write(1, "a", [0, 10]), delete(2, [20, 30]), read(3, seen, [40, 50])];
    assert_eq!(verdict(&history(None)), Verdict::Linearizable);
    assert_eq!(verdict(&history(Some("a"))), Verdict::NotLinearizable);
    // After a delete, `If-None-Match: *` may create the key again.
    let mut recreated = history(None);
    recreated.extend([cas(1, None, "b", [60, 70]), read(2, Some("b"), [80, 90])]);
    assert_eq!(verdict(&recreated), Verdict::Linearizable);
}

#[test]
fn a_failed_delete_saw_the_key_absent() {
    assert_eq!(verdict(&[failed(delete(1, [0, 10]))]), Verdict::Linearizable);
    assert_eq!(verdict(&[write(1, "a", [0, 10]), failed(delete(2, [20, 30]))]), Verdict::NotLinearizable);
    // Concurrent with the write that creates the key, it may come first.
    assert_eq!(verdict(&[write(1, "a", [0, 30]), failed(delete(2, [10, 20]))]), Verdict::Linearizable);
}

#[test]
fn failed_writes_and_unanswered_reads_constrain_nothing() {
    let history = [
        write(1, "a", [0, 10]),
        failed(write(2, "b", [20, 30])),
        unknown(read(3, Some("zzz"), [20, 30])),
        failed(read(3, None, [35, 38])),
        read(4, Some("a"), [40, 50]),
    ];
    let report = check(&history, &CheckOptions::default()).expect("valid operations");
    assert!(report.is_linearizable(), "{report}");
    assert_eq!((report.keys[0].operations, report.keys[0].constraining), (5, 2));
    // The failed write's value is never seen.
    assert_eq!(verdict(&[failed(write(2, "b", [0, 10])), read(1, Some("b"), [20, 30])]), Verdict::NotLinearizable);
}

#[test]
fn operations_whose_intervals_touch_are_concurrent() {
    assert_eq!(verdict(&[write(1, "a", [0, 10]), read(2, None, [10, 20])]), Verdict::Linearizable);
    assert_eq!(verdict(&[write(1, "a", [0, 10]), read(2, None, [11, 20])]), Verdict::NotLinearizable);
}

#[test]
fn keys_are_checked_independently() {
    let history = [
        on_key("good", write(1, "a", [0, 10])),
        on_key("bad", write(1, "x", [0, 10])),
        on_key("good", read(2, Some("a"), [20, 30])),
        on_key("bad", read(2, None, [20, 30])),
    ];
    let report = check(&history, &CheckOptions::default()).expect("valid operations");
    assert_eq!(report.verdict(), Verdict::NotLinearizable);
    let results: Vec<_> =
        report.keys.iter().map(|key| (key.key.as_str(), matches!(key.result, KeyResult::Linearizable))).collect();
    assert_eq!(results, [("bad", false), ("good", true)]);
    let violation = report.violations().next().expect("one violation");
    assert_eq!((violation.key.as_str(), stuck(violation).overdue), ("bad", 4));
    let text = report.to_string();
    assert!(text.contains(r#"key "bad": 2 operations (2 constraining), NOT linearizable"#), "{text}");
    assert!(text.contains(r#"key "good": 2 operations (2 constraining), linearizable in"#), "{text}");
    assert!(text.ends_with("history NOT LINEARIZABLE: 2 keys, 4 operations; 1 not linearizable, 0 gave up"), "{text}");
}

#[test]
fn the_search_gives_up_when_its_budget_runs_out() {
    let history = random_register_history(7, LARGE);
    let report = check(&history, &CheckOptions { budget_steps: 100 }).expect("valid operations");
    assert_eq!(report.verdict(), Verdict::GaveUp);
    assert_eq!(report.keys[0].steps, 100);
    assert!(report.to_string().contains("gave up after 100 steps"), "{report}");
}

#[test]
fn invalid_operations_are_refused() {
    let backwards = write(1, "a", [20, 10]);
    let error = check(&[read(1, None, [0, 1]), backwards], &CheckOptions::default()).expect_err("refused");
    assert_eq!(error.to_string(), "operation 2: complete_ns 10 is before invoke_ns 20");
    let no_completion = Operation { complete_ns: None, ..read(1, None, [0, 1]) };
    assert!(check(&[no_completion], &CheckOptions::default()).is_err());
}

#[derive(Debug, Clone, Copy)]
struct Workload {
    clients: u64,
    operations: usize,
    unanswered_percent: u64,
}

/// 2,000 operations from 32 clients on one key, 5% of them unanswered.
const LARGE: Workload = Workload { clients: 32, operations: 2_000, unanswered_percent: 5 };

/// A history an atomic register produced: each client runs operations back to back, each
/// taking effect at a random instant inside its interval. Values are `c{client}-{n}`; a few
/// operations get no answer (outcome unknown), and take effect or not.
fn random_register_history(seed: u64, workload: Workload) -> Vec<Operation> {
    let Workload { clients, operations, unanswered_percent } = workload;
    let mut rng = SimRng::new(seed);
    let mut free_at: Vec<u64> = (0..clients).map(|_| rng.below(50)).collect();
    let mut planned = Vec::with_capacity(operations);
    for n in 0..operations {
        let client = n as u64 % clients;
        let invoke_ns = free_at[client as usize] + rng.below(30);
        let complete_ns = invoke_ns + 1 + rng.below(300);
        let effect_ns = invoke_ns + rng.below(complete_ns - invoke_ns + 1);
        free_at[client as usize] = complete_ns;
        let value = format!("c{client}-{n}");
        let op = match rng.below(100) {
            0..45 => Op::Read { result: None },
            45..75 => Op::Write { value },
            75..90 => Op::Cas { expected: None, new: value },
            _ => Op::Delete,
        };
        let answered = !rng.chance(unanswered_percent);
        let takes_effect = answered || rng.chance(50);
        let operation = Operation {
            key: KEY.into(),
            client,
            op,
            invoke_ns,
            complete_ns: Some(complete_ns),
            outcome: if answered { Outcome::Ok } else { Outcome::Unknown },
        };
        planned.push((effect_ns, operation, takes_effect));
    }
    let mut order: Vec<usize> = (0..planned.len()).collect();
    order.sort_by_key(|&index| (planned[index].0, index));
    let mut register: Option<String> = None;
    let mut ever_held: Vec<String> = Vec::new();
    for index in order {
        let (_, operation, takes_effect) = &mut planned[index];
        if !*takes_effect {
            continue;
        }
        match &mut operation.op {
            Op::Read { result } => *result = register.clone(),
            Op::Write { value } => register = Some(value.clone()),
            Op::Delete if register.is_none() && operation.outcome == Outcome::Ok => operation.outcome = Outcome::Fail,
            Op::Delete => register = None,
            Op::Cas { expected, new } => {
                // Mostly the current value (a client that just read it), else an older one.
                *expected = match rng.below(10) {
                    0..6 => register.clone(),
                    6..8 => None,
                    _ => ever_held.get(rng.below(ever_held.len() as u64 + 1) as usize).cloned(),
                };
                if *expected == register {
                    register = Some(new.clone());
                } else if operation.outcome == Outcome::Ok {
                    operation.outcome = Outcome::Fail;
                }
            }
        }
        ever_held.extend(register.clone());
    }
    planned.into_iter().map(|(_, operation, _)| operation).collect()
}

fn timed_check(history: &[Operation], budget_steps: u64) -> Report {
    let started = Instant::now();
    let report = check(history, &CheckOptions { budget_steps }).expect("valid operations");
    println!(
        "{} operations: {:?} in {:?}, {} steps",
        history.len(),
        report.verdict(),
        started.elapsed(),
        report.keys[0].steps
    );
    report
}

#[test]
fn a_large_history_of_a_real_register_is_linearizable() {
    for seed in 1..=3 {
        let history = random_register_history(seed, LARGE);
        let report = timed_check(&history, 200_000);
        assert_eq!(report.verdict(), Verdict::Linearizable, "seed {seed}:\n{report}");
    }
}

#[test]
fn the_same_history_with_one_stale_read_is_not_linearizable() {
    let mut history = random_register_history(1, LARGE);
    assert!(timed_check(&history, 200_000).is_linearizable());
    // (invoked, completed, value) of every ok write.
    let writes: Vec<(u64, u64, String)> = history
        .iter()
        .filter_map(|op| match (&op.op, op.outcome, op.complete_ns) {
            (Op::Write { value }, Outcome::Ok, Some(complete_ns)) => Some((op.invoke_ns, complete_ns, value.clone())),
            _ => None,
        })
        .collect();
    let (_, first_completed, first_value) = writes.iter().min_by_key(|write| write.1).expect("some write").clone();
    let is_ok_read = |op: &Operation| matches!(op.op, Op::Read { .. }) && op.outcome == Outcome::Ok;
    let last_read = (0..history.len()).filter(|&i| is_ok_read(&history[i])).max_by_key(|&i| history[i].invoke_ns);
    let last_read = last_read.expect("some read");
    // The first value was certainly overwritten before the last read began.
    let read_invoked = history[last_read].invoke_ns;
    assert!(writes.iter().any(|&(invoked, completed, _)| invoked > first_completed && completed < read_invoked));
    history[last_read].op = Op::Read { result: Some(first_value.clone()) };
    let report = timed_check(&history, 200_000);
    let violation = report.violations().next().unwrap_or_else(|| panic!("expected a violation:\n{report}"));
    let (value, [_, until, _]) = interrupted(violation);
    assert_eq!((value, until), (first_value.as_str(), last_read + 1), "{violation}");
}

#[test]
fn a_history_file_round_trips() {
    let history = [
        read(1, None, [0, 10]),
        write(2, "a", [5, 15]),
        failed(cas(3, None, "b", [20, 30])),
        unknown(delete(4, [40, 50])),
        unknown(read(5, None, [60, 70])),
        Operation { complete_ns: Some(99), ..unknown(cas(6, Some("a"), "c", [80, 90])) },
    ];
    let text: String = history.iter().map(|op| op.to_json_line() + "\n").collect();
    assert_eq!(parse_history(&text).expect("parses"), history);
}

#[test]
fn the_documented_lines_parse() {
    let text = r#"
{"key":"k1","client":3,"op":"write","value":"c3-17","invoke_ns":123,"complete_ns":456,"outcome":"ok"}
{"key":"k1","client":4,"op":"read","result":"c3-17","invoke_ns":130,"complete_ns":200,"outcome":"ok"}
{"key":"k1","client":5,"op":"cas","expected":"c3-17","value":"c5-2","invoke_ns":140,"complete_ns":300,"outcome":"fail"}
{"key":"k1","client":6,"op":"delete","invoke_ns":150,"outcome":"unknown","node":"n2"}
{"key":"k1","client":7,"op":"read","result":null,"invoke_ns":150,"complete_ns":null,"outcome":"unknown"}
{"key":"k1","client":8,"op":"write","value":"c8-1","result":null,"expected":null,"invoke_ns":160,"complete_ns":170,"outcome":"fail"}
"#;
    let history = parse_history(text).expect("parses");
    assert_eq!(history.len(), 6);
    assert_eq!(history[2].op, Op::Cas { expected: Some("c3-17".into()), new: "c5-2".into() });
    assert_eq!(
        (history[3].op.clone(), history[3].complete_ns, history[3].outcome),
        (Op::Delete, None, Outcome::Unknown)
    );
    assert_eq!(verdict(&history), Verdict::Linearizable);
}

#[test]
fn malformed_lines_are_reported_with_their_line_number() {
    let good = r#"{"key":"k","client":1,"op":"write","value":"a","invoke_ns":1,"complete_ns":2,"outcome":"ok"}"#;
    let cases = [
        ("{not json", "key must be a string"),
        (
            r#"{"key":"k","client":1,"op":"write","value":"a","complete_ns":2,"outcome":"ok"}"#,
            "missing field `invoke_ns`",
        ),
        (
            r#"{"key":"k","client":1,"op":"increment","invoke_ns":1,"complete_ns":2,"outcome":"ok"}"#,
            "unknown variant `increment`",
        ),
        (
            r#"{"key":"k","client":1,"op":"read","invoke_ns":1,"complete_ns":2,"outcome":"maybe"}"#,
            "unknown variant `maybe`",
        ),
        (
            r#"{"key":"k","client":1,"op":"write","invoke_ns":1,"complete_ns":2,"outcome":"ok"}"#,
            "a write needs a string value",
        ),
        (
            r#"{"key":"k","client":1,"op":"read","invoke_ns":1,"complete_ns":2,"outcome":"ok"}"#,
            "an ok read needs result",
        ),
        (
            r#"{"key":"k","client":1,"op":"cas","value":"b","invoke_ns":1,"complete_ns":2,"outcome":"ok"}"#,
            "a cas needs expected",
        ),
        (
            r#"{"key":"k","client":1,"op":"read","value":"b","result":null,"invoke_ns":1,"complete_ns":2,"outcome":"ok"}"#,
            "value does not belong to a read operation",
        ),
        (r#"{"key":"k","client":1,"op":"delete","invoke_ns":1,"outcome":"ok"}"#, "outcome ok needs complete_ns"),
        (
            r#"{"key":"k","client":1,"op":"delete","invoke_ns":5,"complete_ns":4,"outcome":"fail"}"#,
            "complete_ns 4 is before invoke_ns 5",
        ),
        (
            r#"{"key":"k","client":-1,"op":"delete","invoke_ns":5,"complete_ns":6,"outcome":"ok"}"#,
            "invalid value: integer `-1`",
        ),
        (r#"{"key":7,"client":1,"op":"delete","invoke_ns":5,"complete_ns":6,"outcome":"ok"}"#, "invalid type"),
    ];
    for (bad, expected) in cases {
        // Line 2 is blank: lines count as in an editor.
        let text = format!("{good}\n\n{good}\n{bad}\n{good}\n");
        match parse_history(&text) {
            Err(HistoryError::Line { line: 4, message }) => {
                assert!(message.contains(expected), "{bad}: {message:?} lacks {expected:?}");
            }
            other => panic!("{bad}: expected an error on line 4, got {other:?}"),
        }
    }
}

/// The reference the search is compared with: every order that respects real time, and for
/// each operation of unknown outcome both taking effect and not, straight from the client
/// semantics (no register steps, no pruning).
fn linearizable_by_enumeration(history: &[Operation]) -> bool {
    fn takes_effect(operation: &Operation, state: &Option<String>) -> Option<Option<String>> {
        let unchanged = state.clone();
        match (&operation.op, operation.outcome) {
            (Op::Read { result }, _) => (result == state).then_some(unchanged),
            (Op::Write { value }, _) => Some(Some(value.clone())),
            (Op::Delete, Outcome::Fail) => state.is_none().then_some(unchanged),
            (Op::Delete, _) => Some(None),
            (Op::Cas { expected, .. }, Outcome::Fail) => (expected != state).then_some(unchanged),
            (Op::Cas { expected, new }, _) => (expected == state).then(|| Some(new.clone())),
        }
    }
    fn search(
        ops: &[&Operation],
        done: u32,
        state: Option<String>,
        failed: &mut HashSet<(u32, Option<String>)>,
    ) -> bool {
        if done == (1 << ops.len()) - 1 {
            return true;
        }
        if failed.contains(&(done, state.clone())) {
            return false;
        }
        let pending = |j: usize| done & (1 << j) == 0;
        for (i, op) in ops.iter().enumerate().filter(|&(i, _)| pending(i)) {
            let blocked = (0..ops.len()).any(|j| {
                j != i && pending(j) && ops[j].outcome != Outcome::Unknown && ops[j].complete_ns < Some(op.invoke_ns)
            });
            if blocked {
                continue;
            }
            if let Some(next) = takes_effect(op, &state) {
                if search(ops, done | 1 << i, next, failed) {
                    return true;
                }
            }
            if op.outcome == Outcome::Unknown && search(ops, done | 1 << i, state.clone(), failed) {
                return true;
            }
        }
        failed.insert((done, state));
        false
    }
    let constraining = |op: &&Operation| match (&op.op, op.outcome) {
        (Op::Read { .. }, outcome) => outcome == Outcome::Ok,
        (Op::Write { .. }, outcome) => outcome != Outcome::Fail,
        _ => true,
    };
    let ops: Vec<&Operation> = history.iter().filter(constraining).collect();
    search(&ops, 0, None, &mut HashSet::new())
}

/// Changes one operation of a history at random, so that it often stops being linearizable.
fn corrupt(history: &mut [Operation], rng: &mut SimRng) {
    let values: Vec<Option<String>> = history
        .iter()
        .filter_map(|op| match &op.op {
            Op::Write { value } | Op::Cas { new: value, .. } => Some(Some(value.clone())),
            _ => None,
        })
        .chain([None])
        .collect();
    let pick = |rng: &mut SimRng| values[rng.below(values.len() as u64) as usize].clone();
    let index = rng.below(history.len() as u64) as usize;
    let operation = &mut history[index];
    match (&mut operation.op, rng.below(3)) {
        (Op::Read { result }, 0 | 1) => *result = pick(rng),
        (Op::Cas { expected, .. }, 0) => *expected = pick(rng),
        // Values stop being unique: the checker must not depend on it for its verdict.
        (Op::Write { value } | Op::Cas { new: value, .. }, 1) => *value = pick(rng).unwrap_or_default(),
        (_, 2) => {
            operation.outcome = Outcome::Unknown;
            operation.complete_ns = None;
        }
        (_, _) if operation.outcome == Outcome::Ok => operation.outcome = Outcome::Fail,
        (_, _) => operation.outcome = Outcome::Ok,
    }
}

#[test]
fn the_search_agrees_with_enumeration_on_small_histories() {
    let mut rng = SimRng::new(99);
    let (mut linearizable, mut not) = (0, 0);
    for seed in 0..20_000 {
        let workload = Workload {
            clients: 2 + seed % 5,
            operations: 4 + (seed % 13) as usize,
            unanswered_percent: [5, 30][seed as usize % 2],
        };
        let mut history = random_register_history(seed, workload);
        if rng.chance(60) {
            corrupt(&mut history, &mut rng);
        }
        let expected = linearizable_by_enumeration(&history);
        let report = check(&history, &CheckOptions::default()).expect("valid operations");
        let listing: String = history.iter().enumerate().map(|(i, op)| format!("\n  op {}: {op}", i + 1)).collect();
        assert_eq!(report.is_linearizable(), expected, "seed {seed}:{listing}\n{report}");
        if expected {
            linearizable += 1
        } else {
            not += 1
        }
    }
    println!("{linearizable} linearizable, {not} not");
    assert!(linearizable > 10_000 && not > 1_000, "{linearizable} linearizable, {not} not");
}
