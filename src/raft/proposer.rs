//! Proposal batching: the commands that wait while earlier proposals are in flight go into
//! Raft together, as one log entry.
//!
//! openraft 0.9 turns every `client_write` into its own log entry, appended and synced on
//! the leader before it is replicated, and followers sync each append they receive: one
//! write, one round of syncs and messages. Under load that round is the cost of a strong
//! write. So proposals go through one queue: a proposer task takes what is waiting (up to
//! [`BATCH_COMMANDS_MAX`] commands and a byte budget) whenever fewer than
//! [`PROPOSALS_IN_FLIGHT`] batches are in Raft, and proposes it as one entry. One client
//! waiting alone is proposed as a plain command, so a quiet cluster pays nothing for this.
//!
//! A batch does not merge fates where fates are independent: the state machine applies each
//! command on its own and answers each with its own result (a refused compare-and-swap is
//! that command's result, not its batch-mates'). What batch-mates do share is what Raft
//! says about the entry: committed, not the leader (nothing appended), or not known in time.
//!
//! Every caller keeps its own deadline. One whose deadline passes while its command still
//! waits in the queue takes it back (nothing was proposed, so the answer is a definite
//! "unavailable"); once the proposer has taken it, the answer is "outcome unknown". A
//! compare-and-swap on the command's [`Claim`] decides which of the two happened, so the
//! answer is never wrong.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::metrics::histogram::Histogram;
use tokio::sync::{mpsc, oneshot, Semaphore};
use tokio::time::Instant;

use super::types::{Command, CommandResult, LogPosition, Raft};
use super::StrongError;
use crate::storage::codec;

/// The command kind of a batch entry: its payload is the encoded `Vec<Command>` of the
/// commands it carries, and its result the encoded `Vec<CommandResult>` of their results,
/// in order. Appliers never see it; no applier may use this kind.
pub const BATCH_KIND: u16 = u16::MAX;
/// Most commands one entry carries.
pub(crate) const BATCH_COMMANDS_MAX: usize = 1024;
/// Most payload bytes one entry carries (a single larger command goes alone).
const BATCH_BYTES_MAX: usize = 1024 * 1024;
/// Batches proposed and not yet answered. Two let the leader append the next batch while
/// the previous one is being replicated.
const PROPOSALS_IN_FLIGHT: usize = 2;
/// Commands that may wait for the proposer; more are refused as unavailable (back-pressure
/// to the client, who retries).
const QUEUE_MAX: usize = 8192;
/// Bytes a command adds to a batch's encoding besides its payload (kind and lengths).
const COMMAND_OVERHEAD_BYTES: usize = 16;

/// Where a queued command stands: waiting, taken by the proposer, or taken back by its
/// caller. Only one of the last two ever happens.
struct Claim(AtomicU8);

const WAITING: u8 = 0;
const PROPOSED: u8 = 1;
const WITHDRAWN: u8 = 2;

impl Claim {
    fn take(&self, to: u8) -> bool {
        self.0.compare_exchange(WAITING, to, Ordering::AcqRel, Ordering::Acquire).is_ok()
    }
}

/// A committed command: the entry it went into, its place among the entry's commands (0
/// for an entry of one command) and what applying it produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committed {
    pub position: LogPosition,
    pub slot: u32,
    pub result: CommandResult,
}

type Answer = Result<Committed, StrongError>;

struct Queued {
    command: Command,
    claim: Arc<Claim>,
    reply: oneshot::Sender<Answer>,
}

/// The queue in front of Raft; the proposer task ends when the last handle is dropped.
pub(crate) struct Proposer {
    queue: mpsc::Sender<Queued>,
}

impl Proposer {
    /// Starts the proposer task for `raft`. A batch whose entry is not committed within
    /// `request_timeout` is answered "outcome unknown".
    /// Each batch's number of commands is observed in `batch_sizes`.
    pub(crate) fn start(raft: Raft, request_timeout: Duration, max_rpc_bytes: usize, batch_sizes: Histogram) -> Self {
        let (queue, waiting) = mpsc::channel(QUEUE_MAX);
        let budget = BATCH_BYTES_MAX.min(max_rpc_bytes / 2);
        tokio::spawn(run(raft, waiting, request_timeout, budget, batch_sizes));
        Self { queue }
    }

    /// Queues `command` and waits, until `deadline` at most, for the answer of the entry it
    /// went into.
    pub(crate) async fn propose(&self, command: Command, deadline: Instant) -> Answer {
        let claim = Arc::new(Claim(AtomicU8::new(WAITING)));
        let (reply, answer) = oneshot::channel();
        let queued = Queued { command, claim: claim.clone(), reply };
        match self.queue.try_send(queued) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                return Err(StrongError::Unavailable {
                    reason: format!(
                        "{QUEUE_MAX} strong writes are already waiting for this leader; nothing was proposed"
                    ),
                })
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                return Err(StrongError::Stopped("the proposer has stopped".to_owned()))
            }
        }
        match tokio::time::timeout_at(deadline, answer).await {
            Ok(Ok(answer)) => answer,
            // The proposer dropped the command without answering: it stopped.
            Ok(Err(_)) if claim.take(WITHDRAWN) => Err(StrongError::Stopped("the proposer has stopped".to_owned())),
            Ok(Err(_)) => {
                Err(StrongError::Indeterminate { reason: "the proposer stopped during the proposal".to_owned() })
            }
            Err(_) if claim.take(WITHDRAWN) => Err(StrongError::Unavailable {
                reason: "the leader did not get to propose it in time; nothing was proposed".to_owned(),
            }),
            Err(_) => Err(StrongError::Indeterminate { reason: "not committed in time".to_owned() }),
        }
    }
}

async fn run(
    raft: Raft,
    mut waiting: mpsc::Receiver<Queued>,
    request_timeout: Duration,
    budget: usize,
    batch_sizes: Histogram,
) {
    let in_flight = Arc::new(Semaphore::new(PROPOSALS_IN_FLIGHT));
    let mut carried: Option<Queued> = None;
    loop {
        let Ok(permit) = in_flight.clone().acquire_owned().await else { return };
        let first = match carried.take() {
            Some(first) => first,
            None => match waiting.recv().await {
                Some(first) => first,
                None => return,
            },
        };
        let mut batch = Vec::new();
        let mut bytes = 0;
        let mut next = Some(first);
        while let Some(queued) = next.take() {
            let size = queued.command.payload.len() + COMMAND_OVERHEAD_BYTES;
            if !batch.is_empty() && (bytes + size > budget || batch.len() == BATCH_COMMANDS_MAX) {
                carried = Some(queued);
                break;
            }
            // A caller that gave up while waiting has its answer already; skip it.
            if queued.claim.take(PROPOSED) {
                bytes += size;
                batch.push(queued);
            }
            next = waiting.try_recv().ok();
        }
        if batch.is_empty() {
            continue;
        }
        batch_sizes.observe(batch.len() as f64);
        let raft = raft.clone();
        tokio::spawn(async move {
            propose_batch(&raft, batch, request_timeout).await;
            drop(permit);
        });
    }
}

/// Proposes `batch` as one entry and answers each of its commands.
async fn propose_batch(raft: &Raft, mut batch: Vec<Queued>, request_timeout: Duration) {
    let entry = if batch.len() == 1 {
        batch[0].command.clone()
    } else {
        let commands: Vec<&Command> = batch.iter().map(|queued| &queued.command).collect();
        Command::new(BATCH_KIND, codec::encode(&commands))
    };
    let outcome = match tokio::time::timeout(request_timeout, raft.client_write(entry)).await {
        Ok(Ok(response)) => Ok((LogPosition::from_log_id(&response.log_id), response.data)),
        Ok(Err(e)) => Err(super::write_error(raft, e)),
        Err(_) => Err(StrongError::Indeterminate { reason: format!("not committed within {request_timeout:?}") }),
    };
    let (position, result) = match outcome {
        Ok(committed) => committed,
        Err(error) => {
            for queued in batch {
                let _ = queued.reply.send(Err(error.clone()));
            }
            return;
        }
    };
    if batch.len() == 1 {
        let queued = batch.remove(0);
        let _ = queued.reply.send(Ok(Committed { position, slot: 0, result }));
        return;
    }
    let results: Vec<CommandResult> = match codec::decode(&result.0, "batch results") {
        Ok(results) => results,
        Err(e) => {
            // The state machine answers a batch with one result per command; anything else
            // is a broken invariant, and the entry did commit.
            let error =
                StrongError::Indeterminate { reason: format!("committed, but its results are unreadable: {e}") };
            for queued in batch {
                let _ = queued.reply.send(Err(error.clone()));
            }
            return;
        }
    };
    let mut results = results.into_iter();
    for (slot, queued) in batch.into_iter().enumerate() {
        let answer = match results.next() {
            Some(result) => Ok(Committed { position, slot: slot as u32, result }),
            None => {
                Err(StrongError::Indeterminate { reason: "committed without a result for this command".to_owned() })
            }
        };
        let _ = queued.reply.send(answer);
    }
}

/// The commands of a batch entry, or `None` for a plain command.
pub(crate) fn unbatch(command: &Command) -> Option<Vec<Command>> {
    if command.kind != BATCH_KIND {
        return None;
    }
    // The entry came from a leader; still, no length inside it may claim more than it holds.
    codec::decode_bounded(&command.payload, "batch entry", command.payload.len()).ok()
}
