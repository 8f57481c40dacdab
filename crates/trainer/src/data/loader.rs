//! The data loader: batches built on worker threads, handed out in order through a bounded
//! prefetch queue.
//!
//! ```text
//! plan: batch 0 = [i0, i1, ...], batch 1 = [...], ...      (the epoch's shuffled order)
//!   worker k: claims the next batch b (at most `prefetch` ahead of the training step),
//!             reads its examples (decode, crop, flip, normalize), puts it in the queue
//!   training thread: takes batch b, b+1, ... in order, timing how long it waits
//! ```
//!
//! A batch's content depends only on the plan and the seed: example `j` of batch `b` is read
//! with a generator seeded by `(seed, b, j)` ([`item_seed`]), never by which worker built it
//! or when. So 1 or 16 workers give the same batches bit for bit, and a run resumed at batch
//! `b` of an epoch draws the same crops as the uninterrupted one.
//!
//! Memory is bounded by `prefetch` batches (built or being built) beside the one in use,
//! whatever the size of the data set.

use super::{DataError, Item, Source};
use biofeedback_core::init::seeded_rng;
use std::collections::BTreeMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How batches are built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoaderConfig {
    /// Worker threads; 0 builds each batch on the calling thread when it is asked for.
    pub workers: usize,
    /// Batches built or being built ahead of the one in use (at least 1).
    pub prefetch: usize,
}

/// One batch, ready for the device.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    /// Its number in the plan, from 0.
    pub index: usize,
    /// The examples read, `[labels.len(), dim]` row-major.
    pub x: Vec<f32>,
    /// Their classes.
    pub labels: Vec<usize>,
    /// Examples left out (files that did not decode, with `on_bad_image = "skip"`): why.
    pub skipped: Vec<String>,
}

impl Batch {
    /// Number of examples read.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether every example was skipped.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// One-hot targets, `[len, classes]`.
    pub fn one_hot(&self, classes: usize) -> Vec<f32> {
        let mut t = vec![0.0; self.labels.len() * classes];
        for (row, &label) in self.labels.iter().enumerate() {
            t[row * classes + label] = 1.0;
        }
        t
    }
}

/// The seed of example `item` of batch `batch` in a stream seeded with `seed` (SplitMix64
/// of the three).
pub fn item_seed(seed: u64, batch: usize, item: usize) -> u64 {
    let mix = |z: u64| {
        let z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        let z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    let z = mix(seed ^ (batch as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    mix(z
        ^ (item as u64)
            .wrapping_add(1)
            .wrapping_mul(0xD1B5_4A32_D192_ED03))
}

/// Reads batch `index` of `indices`: through the training transform with per-example
/// generators from `augment` (a seed), or through the evaluation transform.
pub fn read_batch(
    source: &dyn Source,
    index: usize,
    indices: &[usize],
    augment: Option<u64>,
) -> Result<Batch, DataError> {
    let mut batch = Batch {
        index,
        x: Vec::with_capacity(indices.len() * source.dim()),
        labels: Vec::with_capacity(indices.len()),
        skipped: Vec::new(),
    };
    for (j, &i) in indices.iter().enumerate() {
        let mut rng = augment.map(|seed| seeded_rng(item_seed(seed, index, j)));
        match source.read(i, rng.as_mut(), &mut batch.x)? {
            Item::Read => batch.labels.push(source.label(i)),
            Item::Skipped(why) => batch.skipped.push(why),
        }
    }
    Ok(batch)
}

/// What the workers and the consumer share.
#[derive(Debug, Default)]
struct Queue {
    /// The next batch a worker may claim.
    next_claim: usize,
    /// The next batch the consumer takes (claims stay below `taken + prefetch`).
    taken: usize,
    /// Built batches not yet taken, by number.
    ready: BTreeMap<usize, Result<Batch, DataError>>,
    /// Set when the stream is dropped or failed: workers stop.
    stop: bool,
}

#[derive(Debug, Default)]
struct Shared {
    queue: Mutex<Queue>,
    changed: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The batches of one pass over a plan, in order; an iterator of `Result<Batch, DataError>`.
/// Dropping it stops and joins the workers.
pub struct Batches {
    source: Arc<dyn Source>,
    plan: Arc<Vec<Vec<usize>>>,
    augment: Option<u64>,
    next: usize,
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<()>>,
    waited: Duration,
    /// A loader thread that could not be started: returned by the first `next`.
    failed: Option<DataError>,
}

/// The error of a loader thread `k` that the system could not start.
fn spawn_error(k: usize, workers: usize, e: &std::io::Error) -> DataError {
    DataError::Threads(format!(
        "data.workers = {workers}: the system could not start loader thread {} ({e}); lower \
         data.workers",
        k + 1
    ))
}

/// Starts `workers` threads `<name>-<k>`, each running what `body` makes for it, up to the
/// first one the system refuses (fault point `loader.spawn`: [`crate::faults`]): the threads
/// started, and the error of the refused one.
fn spawn_all<F: FnOnce() + Send + 'static>(
    name: &str,
    workers: usize,
    mut body: impl FnMut() -> F,
) -> (Vec<JoinHandle<()>>, Option<DataError>) {
    let mut started = Vec::with_capacity(workers);
    for k in 0..workers {
        let spawned = crate::faults::point("loader.spawn").and_then(|()| {
            std::thread::Builder::new()
                .name(format!("{name}-{k}"))
                .spawn(body())
        });
        match spawned {
            Ok(handle) => started.push(handle),
            Err(e) => return (started, Some(spawn_error(k, workers, &e))),
        }
    }
    (started, None)
}

/// Starts and joins `config.workers` threads, as [`Batches`] will: a system that cannot start
/// that many (a process limit) is an error before anything is written, not in the middle of
/// an epoch.
pub fn probe_workers(config: LoaderConfig) -> Result<(), DataError> {
    let (started, failed) = spawn_all("loader-probe", config.workers, || || {});
    for handle in started {
        let _ = handle.join();
    }
    failed.map_or(Ok(()), Err)
}

impl Batches {
    /// Streams batches `start..plan.len()` of `plan` (each a list of example indices) from
    /// `source`, through the training transform seeded by `augment` when given.
    pub fn new(
        source: Arc<dyn Source>,
        plan: Vec<Vec<usize>>,
        start: usize,
        augment: Option<u64>,
        config: LoaderConfig,
    ) -> Self {
        let plan = Arc::new(plan);
        let shared = Arc::new(Shared::default());
        {
            let mut q = shared.lock();
            q.next_claim = start;
            q.taken = start;
        }
        let prefetch = config.prefetch.max(1);
        let (workers, failed) = spawn_all("loader", config.workers, || {
            let (source, plan, shared) = (source.clone(), plan.clone(), shared.clone());
            move || work(source.as_ref(), &plan, augment, prefetch, &shared)
        });
        Self {
            source,
            plan,
            augment,
            next: start,
            shared,
            workers,
            waited: Duration::ZERO,
            failed,
        }
    }

    /// Time the consumer has spent waiting for batches so far.
    pub fn waited(&self) -> Duration {
        self.waited
    }
}

/// A worker: claims batches in order while they are within `prefetch` of the consumer.
fn work(
    source: &dyn Source,
    plan: &[Vec<usize>],
    augment: Option<u64>,
    prefetch: usize,
    shared: &Shared,
) {
    loop {
        let b = {
            let mut q = shared.lock();
            loop {
                if q.stop || q.next_claim >= plan.len() {
                    return;
                }
                if q.next_claim < q.taken + prefetch {
                    break;
                }
                q = shared
                    .changed
                    .wait(q)
                    .unwrap_or_else(PoisonError::into_inner);
            }
            q.next_claim += 1;
            q.next_claim - 1
        };
        let result = catch_unwind(AssertUnwindSafe(|| {
            read_batch(source, b, &plan[b], augment)
        }))
        .unwrap_or_else(|panic| {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "a panic".into());
            Err(DataError::Worker(format!("batch {b}: {message}")))
        });
        let mut q = shared.lock();
        q.ready.insert(b, result);
        shared.changed.notify_all();
    }
}

impl Iterator for Batches {
    type Item = Result<Batch, DataError>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(e) = self.failed.take() {
            self.next = self.plan.len();
            return Some(Err(e));
        }
        if self.next >= self.plan.len() {
            return None;
        }
        let b = self.next;
        self.next += 1;
        let start = Instant::now();
        let result = if self.workers.is_empty() {
            read_batch(self.source.as_ref(), b, &self.plan[b], self.augment)
        } else {
            let mut q = self.shared.lock();
            let result = loop {
                if let Some(result) = q.ready.remove(&b) {
                    break result;
                }
                q = self
                    .shared
                    .changed
                    .wait(q)
                    .unwrap_or_else(PoisonError::into_inner);
            };
            q.taken = b + 1;
            q.stop |= result.is_err();
            self.shared.changed.notify_all();
            result
        };
        self.waited += start.elapsed();
        if result.is_err() {
            self.next = self.plan.len();
        }
        Some(result)
    }
}

impl Drop for Batches {
    fn drop(&mut self) {
        self.shared.lock().stop = true;
        self.shared.changed.notify_all();
        for worker in self.workers.drain(..) {
            // A worker's panic was already turned into a DataError.
            let _ = worker.join();
        }
    }
}

/// `0..len` cut into batches of `batch_size` (the last one shorter).
pub fn sequential_plan(len: usize, batch_size: usize) -> Vec<Vec<usize>> {
    (0..len)
        .collect::<Vec<_>>()
        .chunks(batch_size.max(1))
        .map(<[usize]>::to_vec)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::Dataset;
    use biofeedback_core::init::Rng;
    use rand::RngExt;

    /// A source whose examples are their index plus one draw of the training generator, and
    /// that fails on example 13 and skips example 7.
    #[derive(Debug)]
    struct Numbers(usize);

    impl Source for Numbers {
        fn len(&self) -> usize {
            self.0
        }
        fn classes(&self) -> usize {
            2
        }
        fn shape(&self) -> [usize; 3] {
            [1, 1, 2]
        }
        fn label(&self, index: usize) -> usize {
            index % 2
        }
        fn read(
            &self,
            index: usize,
            augment: Option<&mut Rng>,
            out: &mut Vec<f32>,
        ) -> Result<Item, DataError> {
            match index {
                7 => return Ok(Item::Skipped("seven".into())),
                13 => return Err(DataError::Worker("thirteen".into())),
                99 => panic!("ninety-nine"),
                _ => {}
            }
            // Slow enough that workers finish out of order.
            std::thread::sleep(Duration::from_micros((index as u64 * 7919) % 300));
            let noise = augment.map_or(0.0, |rng| rng.random::<f32>());
            out.extend([index as f32, noise]);
            Ok(Item::Read)
        }
    }

    fn all(
        source: Arc<dyn Source>,
        plan: &[Vec<usize>],
        start: usize,
        workers: usize,
    ) -> Vec<Batch> {
        let config = LoaderConfig {
            workers,
            prefetch: 3,
        };
        Batches::new(source, plan.to_vec(), start, Some(42), config)
            .collect::<Result<_, _>>()
            .unwrap()
    }

    #[test]
    fn batches_do_not_depend_on_the_number_of_workers_or_the_start() {
        let source: Arc<dyn Source> = Arc::new(Numbers(12));
        let plan = vec![vec![5, 3, 11], vec![0, 7, 1], vec![2, 4], vec![6, 8, 9, 10]];
        let one = all(source.clone(), &plan, 0, 1);
        assert_eq!(one, all(source.clone(), &plan, 0, 3));
        assert_eq!(one, all(source.clone(), &plan, 0, 0));
        assert_eq!(one[2..], all(source.clone(), &plan, 2, 3)[..]);
        assert_eq!(one[1].labels, [0, 1]);
        assert_eq!(one[1].skipped, ["seven"]);
        assert_eq!(one[0].x[0], 5.0);
        // Every example has its own draw.
        let draws: Vec<f32> = one
            .iter()
            .flat_map(|b| b.x.iter().skip(1).step_by(2))
            .copied()
            .collect();
        let mut distinct = draws.clone();
        distinct.sort_by(f32::total_cmp);
        distinct.dedup();
        assert_eq!(distinct.len(), draws.len());
    }

    #[test]
    fn an_error_or_a_panic_in_a_worker_is_returned_in_order_and_stops_the_stream() {
        let source: Arc<dyn Source> = Arc::new(Numbers(100));
        let config = LoaderConfig {
            workers: 3,
            prefetch: 2,
        };
        let plan = vec![vec![0], vec![1], vec![13], vec![2], vec![3]];
        let got: Vec<_> = Batches::new(source.clone(), plan, 0, None, config).collect();
        assert_eq!(got.len(), 3);
        assert!(
            got[2]
                .as_ref()
                .unwrap_err()
                .to_string()
                .contains("thirteen")
        );
        let plan = vec![vec![0], vec![99]];
        let got: Vec<_> = Batches::new(source, plan, 0, None, config).collect();
        let e = got[1].as_ref().unwrap_err().to_string();
        assert!(e.contains("ninety-nine") && e.contains("batch 1"), "{e}");
    }

    #[test]
    fn dropping_a_stream_early_stops_its_workers() {
        let set = Dataset {
            images: (0..1000).map(|v| v as f32).collect(),
            labels: vec![0; 1000],
            dim: 1,
            channels: 1,
            classes: 1,
            ..Dataset::default()
        };
        let config = LoaderConfig {
            workers: 2,
            prefetch: 4,
        };
        let mut stream = Batches::new(Arc::new(set), sequential_plan(1000, 10), 0, None, config);
        assert_eq!(stream.next().unwrap().unwrap().x[..2], [0.0, 1.0]);
        drop(stream);
    }
}
