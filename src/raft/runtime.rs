//! openraft's async runtime for statemesh: tokio, with election timeouts drawn from an RNG the
//! simulator can seed.
//!
//! openraft draws each election timeout from its runtime's `thread_rng()`. With the stock
//! tokio runtime that is the OS-seeded `rand::thread_rng()`, so two runs of the same
//! simulated schedule elect differently. This runtime delegates everything to tokio but draws
//! from a per-thread RNG that [`seed_election_timeouts`] can fix; unseeded threads (every
//! thread of a production node) keep using `rand::thread_rng()`.

use std::cell::RefCell;
use std::future::Future;
use std::time::Duration;

use openraft::{AsyncRuntime, OptionalSend, TokioRuntime};
use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};

type Tokio = TokioRuntime;

thread_local! {
    static ELECTION_RNG: RefCell<Option<StdRng>> = const { RefCell::new(None) };
}

/// Makes the election timeouts drawn on this thread follow `seed` from now on. A simulator
/// running every node on one thread calls it once per run.
pub fn seed_election_timeouts(seed: u64) {
    ELECTION_RNG.with(|rng| *rng.borrow_mut() = Some(StdRng::seed_from_u64(seed)));
}

fn with_rng<T>(draw: impl FnOnce(&mut dyn RngCore) -> T) -> T {
    ELECTION_RNG.with(|cell| match cell.borrow_mut().as_mut() {
        Some(seeded) => draw(seeded),
        None => draw(&mut rand::thread_rng()),
    })
}

/// A handle on this thread's election RNG.
pub struct ElectionRng;

impl RngCore for ElectionRng {
    fn next_u32(&mut self) -> u32 {
        with_rng(|rng| rng.next_u32())
    }

    fn next_u64(&mut self) -> u64 {
        with_rng(|rng| rng.next_u64())
    }

    fn fill_bytes(&mut self, dest: &mut [u8]) {
        with_rng(|rng| rng.fill_bytes(dest));
    }

    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand::Error> {
        with_rng(|rng| rng.try_fill_bytes(dest))
    }
}

/// Tokio, with a seedable election RNG.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct StrongRuntime;

impl AsyncRuntime for StrongRuntime {
    type JoinError = <Tokio as AsyncRuntime>::JoinError;
    type JoinHandle<T: OptionalSend + 'static> = <Tokio as AsyncRuntime>::JoinHandle<T>;
    type Sleep = <Tokio as AsyncRuntime>::Sleep;
    type Instant = <Tokio as AsyncRuntime>::Instant;
    type TimeoutError = <Tokio as AsyncRuntime>::TimeoutError;
    type Timeout<R, T: Future<Output = R> + OptionalSend> = <Tokio as AsyncRuntime>::Timeout<R, T>;
    type ThreadLocalRng = ElectionRng;
    type OneshotSender<T: OptionalSend> = <Tokio as AsyncRuntime>::OneshotSender<T>;
    type OneshotReceiverError = <Tokio as AsyncRuntime>::OneshotReceiverError;
    type OneshotReceiver<T: OptionalSend> = <Tokio as AsyncRuntime>::OneshotReceiver<T>;

    fn spawn<T>(future: T) -> Self::JoinHandle<T::Output>
    where
        T: Future + OptionalSend + 'static,
        T::Output: OptionalSend + 'static,
    {
        Tokio::spawn(future)
    }

    fn sleep(duration: Duration) -> Self::Sleep {
        Tokio::sleep(duration)
    }

    fn sleep_until(deadline: Self::Instant) -> Self::Sleep {
        Tokio::sleep_until(deadline)
    }

    fn timeout<R, F: Future<Output = R> + OptionalSend>(duration: Duration, future: F) -> Self::Timeout<R, F> {
        Tokio::timeout(duration, future)
    }

    fn timeout_at<R, F: Future<Output = R> + OptionalSend>(deadline: Self::Instant, future: F) -> Self::Timeout<R, F> {
        Tokio::timeout_at(deadline, future)
    }

    fn is_panic(join_error: &Self::JoinError) -> bool {
        Tokio::is_panic(join_error)
    }

    fn thread_rng() -> ElectionRng {
        ElectionRng
    }

    fn oneshot<T>() -> (Self::OneshotSender<T>, Self::OneshotReceiver<T>)
    where
        T: OptionalSend,
    {
        Tokio::oneshot()
    }
}

#[cfg(test)]
mod tests {
    use rand::Rng;

    use super::*;

    #[test]
    fn a_seeded_thread_draws_the_same_timeouts_every_run() {
        let draw = || {
            let mut rng = StrongRuntime::thread_rng();
            (0..5).map(|_| rng.gen_range(300..600u64)).collect::<Vec<_>>()
        };
        seed_election_timeouts(42);
        let first = draw();
        seed_election_timeouts(42);
        assert_eq!(draw(), first);
        seed_election_timeouts(43);
        assert_ne!(draw(), first);
    }
}
