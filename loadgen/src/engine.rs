//! The two ways the harness loads the server, independent of what a request is.
//!
//! - **Closed loop** ([`closed_loop`]): N clients, each sending its next request when the
//!   previous one answers. Throughput is what the server sustains; latency is time in the
//!   server plus queueing behind the other N - 1 clients.
//! - **Open loop** ([`open_loop`]): requests sent at a fixed rate on a fixed schedule whatever
//!   the answers, as users arrive (wrk2 and ghz do the same). Request `k` is *intended* to start
//!   at `start + k / rate`; its latency is measured from that intended start, not from when it
//!   was actually sent, so that a stall which holds requests back is counted in full for every
//!   request it delays (coordinated omission corrected). The number of requests in flight is
//!   capped (`max_in_flight`); a request that finds the cap full waits for a slot, is still
//!   timed from its intended start, and is counted in [`Recorder::cap_delayed`]; requests still
//!   waiting when the run ends are never sent and are counted in [`Recorder::unsent`].
//!
//! The schedule runs on a thread of its own that sleeps with the operating system's
//! high-resolution timer (tokio's timer has a 1 ms granularity, which would add up to 1 ms of
//! harness delay to every request). How late the harness itself sent each request is kept
//! apart ([`Recorder::lag`]) and reported, so that a harness that cannot keep up is visible.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

/// The longest latency the histograms hold (120 s, in microseconds); longer ones saturate.
const MAX_MICROS: u64 = 120_000_000;

/// A histogram of microseconds from 1 µs to 120 s with three significant digits.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_MICROS, 3)
        .unwrap_or_else(|_| Histogram::new(3).unwrap_or_else(|_| unreachable!()))
}

/// Records `d` in microseconds (at least 1), saturating at the histogram's bound.
pub(crate) fn record(h: &mut Histogram<u64>, d: Duration) {
    h.saturating_record((d.as_micros() as u64).max(1));
}

/// Live counts for the per-second progress line.
#[derive(Default)]
pub struct Counters {
    /// Requests answered successfully.
    pub ops: AtomicU64,
    /// Requests answered with an error.
    pub errors: AtomicU64,
    /// Requests sent and not yet answered (open loop).
    pub in_flight: AtomicU64,
}

/// When each request of an open-loop run is due: request `k` at `start + k / rate`, computed
/// from `k` (not by adding intervals, which would drift).
#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    start: Instant,
    rate: u64,
}

impl Schedule {
    /// `rate` requests per second from `start` (a rate of 0 is taken as 1).
    pub fn new(start: Instant, rate: u64) -> Schedule {
        Schedule {
            start,
            rate: rate.max(1),
        }
    }

    fn offset(&self, k: u64) -> Duration {
        let nanos = u128::from(k) * 1_000_000_000 / u128::from(self.rate);
        Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
    }

    /// The intended start of request `k`.
    pub fn at(&self, k: u64) -> Instant {
        self.start + self.offset(k)
    }

    /// How many requests are due within `duration` of the start (those with `at(k)` before
    /// `start + duration`).
    pub fn count(&self, duration: Duration) -> u64 {
        let due = duration.as_nanos() * u128::from(self.rate);
        u64::try_from(due.div_ceil(1_000_000_000)).unwrap_or(u64::MAX)
    }
}

/// What one phase of load measured.
pub struct Recorder {
    /// Latency of the successful requests: from the intended start (open loop) or from the
    /// send (closed loop) to the answer.
    pub latency: Histogram<u64>,
    /// Open loop: from the actual send to the answer (what a closed-loop client would see).
    pub service: Histogram<u64>,
    /// Open loop: how late each request was sent (the harness's own delay plus the wait for a
    /// slot under the in-flight cap).
    pub lag: Histogram<u64>,
    /// Requests the schedule held within the phase (open loop), or that were sent (closed).
    pub scheduled: u64,
    /// Successful requests.
    pub ok: u64,
    /// Failed requests by status code.
    pub errors: BTreeMap<String, u64>,
    /// Open loop: requests that found the in-flight cap full when due and were sent late,
    /// once a slot was free.
    pub cap_delayed: u64,
    /// Open loop: requests due that were still waiting for a slot when the phase ended, so
    /// never sent.
    pub unsent: u64,
    /// When the last answer arrived (the end of the phase for throughput).
    pub last_answer: Option<Instant>,
}

impl Default for Recorder {
    fn default() -> Self {
        Recorder {
            latency: histogram(),
            service: histogram(),
            lag: histogram(),
            scheduled: 0,
            ok: 0,
            errors: BTreeMap::new(),
            cap_delayed: 0,
            unsent: 0,
            last_answer: None,
        }
    }
}

impl Recorder {
    /// Records one open-loop request: intended at `intended`, sent at `sent`, answered at
    /// `answered` with `result` (an error is its status code's name). The latency is measured
    /// from `intended`: a request held back by a stall or by the cap counts the wait.
    pub fn answered(
        &mut self,
        intended: Instant,
        sent: Instant,
        answered: Instant,
        result: Result<(), String>,
    ) {
        record(&mut self.lag, sent.saturating_duration_since(intended));
        self.finish(answered, result, |r| {
            record(&mut r.latency, answered.saturating_duration_since(intended));
            record(&mut r.service, answered.saturating_duration_since(sent));
        });
    }

    /// Records one closed-loop request: `result` is its latency or its error.
    pub fn closed(&mut self, answered: Instant, result: Result<Duration, String>) {
        self.scheduled += 1;
        match result {
            Ok(d) => self.finish(answered, Ok(()), |r| record(&mut r.latency, d)),
            Err(e) => self.finish(answered, Err(e), |_| {}),
        }
    }

    fn finish(
        &mut self,
        answered: Instant,
        result: Result<(), String>,
        ok: impl FnOnce(&mut Self),
    ) {
        self.last_answer = Some(self.last_answer.map_or(answered, |t| t.max(answered)));
        match result {
            Ok(()) => {
                self.ok += 1;
                ok(self);
            }
            Err(code) => *self.errors.entry(code).or_default() += 1,
        }
    }

    /// Adds what `other` recorded.
    pub fn merge(&mut self, other: Recorder) {
        let _ = self.latency.add(&other.latency);
        let _ = self.service.add(&other.service);
        let _ = self.lag.add(&other.lag);
        self.scheduled += other.scheduled;
        self.ok += other.ok;
        for (code, n) in other.errors {
            *self.errors.entry(code).or_default() += n;
        }
        self.cap_delayed += other.cap_delayed;
        self.unsent += other.unsent;
        self.last_answer = match (self.last_answer, other.last_answer) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
    }

    /// Failed requests, all codes together.
    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }
}

/// An open-loop phase: the rate, for how long, and the cap on requests in flight.
#[derive(Debug, Clone, Copy)]
pub struct OpenLoop {
    /// Requests per second.
    pub rate: u64,
    /// How long requests are scheduled for.
    pub duration: Duration,
    /// At most this many requests in flight; further ones wait for a slot.
    pub max_in_flight: usize,
}

fn lock(recorder: &Mutex<Recorder>) -> std::sync::MutexGuard<'_, Recorder> {
    recorder
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Runs `op(k)` for each request `k` on the schedule of `load` (see the module doc) and
/// returns what it measured, the start of the schedule and the phase's end (the last answer,
/// or the end of the schedule if later). `op` gives `Err(code)` for a failed request.
pub async fn open_loop<F, Fut>(
    load: OpenLoop,
    counters: Arc<Counters>,
    op: F,
) -> (Recorder, Instant, Instant)
where
    F: Fn(u64) -> Fut + Send + 'static,
    Fut: Future<Output = Result<(), String>> + Send + 'static,
{
    let handle = tokio::runtime::Handle::current();
    let recorder = Arc::new(Mutex::new(Recorder::default()));
    let cap = load
        .max_in_flight
        .clamp(1, tokio::sync::Semaphore::MAX_PERMITS);
    let slots = Arc::new(tokio::sync::Semaphore::new(cap));
    let start = Instant::now();
    let schedule = Schedule::new(start, load.rate);
    let due = schedule.count(load.duration);
    let end = start + load.duration;
    let (done, finished) = tokio::sync::oneshot::channel();
    let dispatcher = {
        let recorder = recorder.clone();
        let slots = slots.clone();
        move || {
            for k in 0..due {
                let intended = schedule.at(k);
                let now = Instant::now();
                if intended > now {
                    std::thread::sleep(intended - now);
                }
                let slot = match slots.clone().try_acquire_owned() {
                    Ok(slot) => slot,
                    Err(_) => {
                        lock(&recorder).cap_delayed += 1;
                        // The timer is made inside the runtime: it needs its time driver.
                        let wait = slots.clone().acquire_owned();
                        match handle
                            .block_on(async { tokio::time::timeout_at(end.into(), wait).await })
                        {
                            Ok(Ok(slot)) => slot,
                            _ => {
                                let mut r = lock(&recorder);
                                r.cap_delayed -= 1;
                                r.unsent += due - k;
                                break;
                            }
                        }
                    }
                };
                let sent = Instant::now();
                let request = op(k);
                let recorder = recorder.clone();
                let counters = counters.clone();
                counters.in_flight.fetch_add(1, Ordering::Relaxed);
                handle.spawn(async move {
                    let result = request.await;
                    let answered = Instant::now();
                    counters.in_flight.fetch_sub(1, Ordering::Relaxed);
                    let counter = if result.is_ok() {
                        &counters.ops
                    } else {
                        &counters.errors
                    };
                    counter.fetch_add(1, Ordering::Relaxed);
                    lock(&recorder).answered(intended, sent, answered, result);
                    // The slot is given back after recording, so holding every slot means
                    // every request has been recorded.
                    drop(slot);
                });
            }
            let _ = done.send(());
        }
    };
    std::thread::spawn(dispatcher);
    let _ = finished.await;
    let all = u32::try_from(cap).unwrap_or(u32::MAX);
    let _ = slots.acquire_many(all).await;
    let mut measured = std::mem::take(&mut *lock(&recorder));
    measured.scheduled = due;
    let last = measured.last_answer.map_or(end, |t| t.max(end));
    (measured, start, last)
}

/// Runs `concurrency` workers for `duration`, each calling `op(worker, n)` for its `n`-th
/// request as soon as the previous one answers; `op` gives the latency to record or the
/// error's code. Returns what they measured, when they started and when the last finished.
pub async fn closed_loop<F, Fut>(
    concurrency: usize,
    duration: Duration,
    counters: Arc<Counters>,
    op: F,
) -> Result<(Recorder, Instant, Instant), String>
where
    F: Fn(usize, u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Duration, String>> + Send + 'static,
{
    let op = Arc::new(op);
    let started = Instant::now();
    let deadline = started + duration;
    let mut tasks = Vec::new();
    for worker in 0..concurrency.max(1) {
        let op = op.clone();
        let counters = counters.clone();
        tasks.push(tokio::spawn(async move {
            let mut recorder = Recorder::default();
            let mut n = 0u64;
            while Instant::now() < deadline {
                n += 1;
                let result = op(worker, n).await;
                let counter = if result.is_ok() {
                    &counters.ops
                } else {
                    &counters.errors
                };
                counter.fetch_add(1, Ordering::Relaxed);
                recorder.closed(Instant::now(), result);
            }
            recorder
        }));
    }
    let mut total = Recorder::default();
    for t in tasks {
        total.merge(t.await.map_err(|e| e.to_string())?);
    }
    Ok((total, started, Instant::now()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn the_schedule_is_computed_from_the_index_and_does_not_drift() {
        let t0 = Instant::now();
        let s = Schedule::new(t0, 3);
        assert_eq!(s.at(0), t0);
        assert_eq!(s.at(1) - t0, Duration::from_nanos(333_333_333));
        assert_eq!(s.at(3) - t0, Duration::from_secs(1));
        // A million requests later, still exactly on the second.
        assert_eq!(s.at(3_000_000) - t0, Duration::from_secs(1_000_000));
        let fast = Schedule::new(t0, 7_000);
        assert_eq!(fast.at(7_000 * 3600) - t0, Duration::from_secs(3600));
    }

    #[test]
    fn the_schedule_counts_the_requests_due_before_the_end() {
        let t0 = Instant::now();
        assert_eq!(Schedule::new(t0, 1000).count(Duration::from_secs(2)), 2000);
        assert_eq!(Schedule::new(t0, 3).count(Duration::from_secs(1)), 3);
        // 0, 333 and 666 ms are due within 700 ms; the next, at 1 s, is not.
        assert_eq!(Schedule::new(t0, 3).count(ms(700)), 3);
        assert_eq!(Schedule::new(t0, 3).count(ms(1)), 1);
        assert_eq!(Schedule::new(t0, 3).count(Duration::ZERO), 0);
        // Every counted request is due before the end, the next one is not.
        let s = Schedule::new(t0, 7);
        let d = ms(2_500);
        let n = s.count(d);
        assert!(s.at(n - 1) < t0 + d && s.at(n) >= t0 + d);
        // A rate of 0 never divides by zero.
        assert_eq!(Schedule::new(t0, 0).count(Duration::from_secs(2)), 2);
    }

    /// A server that stalls for 100 ms while requests are due every millisecond, one request
    /// in flight at most: the requests held behind the stall are timed from when they were
    /// due, so the stall shows in the percentiles; timed from their send it would vanish.
    #[test]
    fn latency_counts_the_wait_of_requests_held_back_by_a_stall() {
        let t0 = Instant::now();
        let s = Schedule::new(t0, 1000);
        let mut r = Recorder::default();
        // Request 0 is sent on time and answered after 100 ms.
        r.answered(s.at(0), s.at(0), t0 + ms(100), Ok(()));
        // Requests 1..=99 were due during the stall; each is sent when the previous answers
        // and answered 10 µs later.
        let mut free = t0 + ms(100);
        for k in 1..100 {
            let answered = free + Duration::from_micros(10);
            r.answered(s.at(k), free, answered, Ok(()));
            free = answered;
        }
        assert_eq!(r.ok, 100);
        // Timed from the intended start: half the requests waited about 50 ms or more.
        let p50 = r.latency.value_at_quantile(0.5);
        assert!((49_000..=52_000).contains(&p50), "p50 {p50} µs");
        assert!(r.latency.max() >= 100_000);
        // The service time alone hides the stall but for the one request that met it.
        assert!(r.service.value_at_quantile(0.5) <= 11);
        assert!(r.lag.value_at_quantile(0.5) >= 49_000);
    }

    #[test]
    fn errors_are_counted_by_code_and_not_timed() {
        let t0 = Instant::now();
        let mut r = Recorder::default();
        r.answered(t0, t0, t0 + ms(5), Err("Unavailable".into()));
        r.answered(t0, t0, t0 + ms(1), Ok(()));
        r.closed(t0 + ms(2), Err("Unavailable".into()));
        r.closed(t0 + ms(3), Err("Aborted".into()));
        assert_eq!(r.ok, 1);
        assert_eq!(r.error_count(), 3);
        assert_eq!(r.errors.get("Unavailable"), Some(&2));
        assert_eq!(r.latency.len(), 1);
        assert_eq!(r.last_answer, Some(t0 + ms(5)));
    }

    #[test]
    fn merging_adds_counts_and_histograms() {
        let t0 = Instant::now();
        let mut a = Recorder::default();
        a.closed(t0 + ms(1), Ok(ms(1)));
        a.unsent = 2;
        let mut b = Recorder::default();
        b.closed(t0 + ms(9), Ok(ms(3)));
        b.closed(t0 + ms(4), Err("Internal".into()));
        b.cap_delayed = 5;
        a.merge(b);
        assert_eq!((a.scheduled, a.ok, a.error_count()), (3, 2, 1));
        assert_eq!((a.unsent, a.cap_delayed), (2, 5));
        assert_eq!(a.latency.len(), 2);
        assert_eq!(a.last_answer, Some(t0 + ms(9)));
    }

    /// The real dispatcher: every request due is either answered or counted unsent, whatever
    /// the machine's speed; with one slot and requests that take at least 30 ms while one is
    /// due every 10 ms, requests queue for the slot and their latency includes the queueing.
    /// Only lower bounds that hold on any machine are asserted.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_dispatcher_accounts_for_every_request_due() {
        let counters = Arc::new(Counters::default());
        let load = OpenLoop {
            rate: 100,
            duration: ms(300),
            max_in_flight: 1,
        };
        let (r, start, end) = open_loop(load, counters.clone(), |k| async move {
            tokio::time::sleep(ms(30)).await;
            if k % 2 == 1 {
                Err("Unavailable".into())
            } else {
                Ok(())
            }
        })
        .await;
        assert_eq!(r.scheduled, 30);
        assert_eq!(r.ok + r.error_count() + r.unsent, 30);
        assert!(
            r.unsent > 0,
            "30 ms requests one at a time cannot all start in 300 ms"
        );
        assert!(r.cap_delayed > 0);
        assert_eq!(counters.in_flight.load(Ordering::Relaxed), 0);
        assert_eq!(counters.ops.load(Ordering::Relaxed), r.ok);
        assert!(end >= start + load.duration);
        // Request k is sent at the earliest 30 ms * k after the start and was due at 10 ms * k,
        // so the last one sent waited at least 20 ms per request before it.
        let sent = r.ok + r.error_count();
        let lag = Duration::from_micros(r.lag.max());
        assert!(
            lag >= ms(20 * (sent - 1)) - ms(1),
            "lag {lag:?} after {sent}"
        );
        assert!(Duration::from_micros(r.latency.min()) >= ms(30) - ms(1));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_closed_loop_records_what_each_worker_measured() {
        let counters = Arc::new(Counters::default());
        let (r, _, _) = closed_loop(3, ms(50), counters.clone(), |worker, n| async move {
            tokio::time::sleep(ms(5)).await;
            if worker == 0 && n == 1 {
                Err("Internal".into())
            } else {
                Ok(ms(5))
            }
        })
        .await
        .expect("workers finish");
        assert_eq!(r.scheduled, r.ok + r.error_count());
        assert_eq!(r.errors.get("Internal"), Some(&1));
        assert!(r.ok >= 2, "each worker sends at least one request");
        assert_eq!(r.latency.len(), r.ok);
    }
}
