//! The batching placer of the embedded store: places that arrive while one
//! batch is written wait for the next, which is decided and saved in one
//! transaction ([`FileStore::write_batch`]). Concurrent places cost one
//! fsync per batch instead of one each, and never conflict with each other.
//!
//! A batch that panics (a bug in an engine or the store) fails its own
//! places and the thread goes on to the next batch; if the thread is gone
//! anyway, [`Batcher::stopped`] says so (`/healthz` answers 503).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;

use serde_json::Value;
use tokio::sync::oneshot;

use super::{replay, PlaceError, Placed, Repeat};
use crate::engine::{Decided, Engine, EngineError};
use crate::store::file::FileStore;
use crate::store::{Cause, Saved, StoreError};

/// The sending end of the writer thread. A clone shares the one thread; it
/// stops when the last clone is dropped.
#[derive(Clone)]
pub(super) struct Batcher {
    jobs: mpsc::Sender<Job>,
    thread: Arc<JoinHandle<()>>,
}

struct Job {
    request: Value,
    repeat: Repeat,
    conflicts: Vec<String>,
    reply: oneshot::Sender<Result<Placed, PlaceError>>,
}

/// One job's place in a batch, and what deciding it gave.
struct Slot<'a> {
    request: &'a Value,
    decided: Option<Result<Decided, EngineError>>,
}

impl Batcher {
    /// Starts the writer thread deciding with `engine`; a request whose
    /// save conflicts (another process got in first) is re-decided in the
    /// next batch, at most `max_retries` times.
    pub(super) fn start(
        store: FileStore,
        engine: Arc<dyn Engine>,
        max_retries: u32,
        max_batch: usize,
    ) -> Result<Batcher, PlaceError> {
        let (tx, rx) = mpsc::channel::<Job>();
        let max_batch = max_batch.max(1);
        let thread = std::thread::Builder::new()
            .name("flocker-placer".into())
            .spawn(move || {
                while let Ok(first) = rx.recv() {
                    let mut jobs = vec![first];
                    while jobs.len() < max_batch {
                        match rx.try_recv() {
                            Ok(j) => jobs.push(j),
                            Err(_) => break,
                        }
                    }
                    // The jobs' repliers drop with the unwinding batch, so
                    // each of its places is answered (with an error).
                    let ran = catch_unwind(AssertUnwindSafe(|| {
                        run_jobs(&store, &*engine, jobs, max_retries)
                    }));
                    if let Err(payload) = ran {
                        tracing::error!(
                            why = panic_text(&*payload),
                            "a placer batch panicked; its places failed, the placer goes on"
                        );
                    }
                }
            })
            .map_err(|e| StoreError::unavailable_by("cannot start the placer", e))?;
        Ok(Batcher {
            jobs: tx,
            thread: Arc::new(thread),
        })
    }

    /// Whether the writer thread is gone: every place would fail.
    pub(super) fn stopped(&self) -> bool {
        self.thread.is_finished()
    }

    /// Decides `request` and saves its route, batched with whatever else
    /// is being placed; the answer of [`super::place`].
    pub(super) async fn place(&self, request: Value, repeat: Repeat) -> Result<Placed, PlaceError> {
        let stopped = || PlaceError::Store(StoreError::unavailable("the placer stopped"));
        let (reply, answer) = oneshot::channel();
        let job = Job {
            request,
            repeat,
            conflicts: Vec::new(),
            reply,
        };
        self.jobs.send(job).map_err(|_| stopped())?;
        answer.await.map_err(|_| {
            if self.stopped() {
                stopped()
            } else {
                PlaceError::Store(StoreError::unavailable(
                    "the placer failed on this place's batch (the host's log says why)",
                ))
            }
        })?
    }
}

/// What a panic said, when it said it with a string.
fn panic_text(payload: &(dyn std::any::Any + Send)) -> &str {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("a panic without a message")
}

fn run_jobs(store: &FileStore, engine: &dyn Engine, mut jobs: Vec<Job>, max_retries: u32) {
    while !jobs.is_empty() {
        let mut slots: Vec<Slot> = jobs
            .iter()
            .map(|j| Slot {
                request: &j.request,
                decided: None,
            })
            .collect();
        let saved = store.write_batch(&mut slots, |slot, cluster| {
            let decided = engine.decide(cluster, slot.request);
            let route = match &decided {
                Ok(d) if !d.is_error() => d
                    .route
                    .clone()
                    .map(|r| (r, Some(replay::answer_for(slot.request, d)))),
                _ => None,
            };
            // Checked before the save: one that failed would end the batch.
            if let Some((r, answer)) = &route {
                let max = crate::store::storable::MAX_SAVE_OPS;
                if let Err(u) = crate::store::storable::check(r, answer.as_ref(), max) {
                    slot.decided = Some(Ok(replay::unstorable(u.path, u.reason)));
                    return None;
                }
            }
            slot.decided = Some(decided);
            route
        });
        let saved = match saved {
            Ok(s) => s,
            Err(e) => {
                // Every place of the batch failed with it: each answer
                // carries the one error underneath.
                let cause: Cause = Arc::new(e);
                drop(slots);
                for job in jobs {
                    let _ = job
                        .reply
                        .send(Err(PlaceError::Store(StoreError::Unavailable {
                            what: "the batch's write transaction".into(),
                            cause: Some(cause.clone()),
                        })));
                }
                return;
            }
        };
        let decided: Vec<_> = slots.into_iter().map(|s| s.decided).collect();
        let mut again = Vec::new();
        for ((mut job, decided), saved) in jobs.into_iter().zip(decided).zip(saved) {
            let answer = match (decided, saved) {
                (None, _) => Err(PlaceError::Store(StoreError::unavailable(
                    "the batch ended before this place was decided",
                ))),
                (Some(Err(e)), _) => Err(e.into()),
                // After the commit, so that a retry batched with the place
                // it repeats finds that place's answer.
                (Some(Ok(decided)), None)
                    if job.repeat == Repeat::Replay && replay::is_name_in_use(&decided) =>
                {
                    Ok(match replay_now(store, &job.request) {
                        Some(saved) => Placed::replayed(saved, job.conflicts),
                        None => Placed::unsaved(decided, job.conflicts),
                    })
                }
                (Some(Ok(decided)), None | Some(Saved::Saved)) => {
                    Ok(if decided.route.is_some() && !decided.is_error() {
                        Placed::saved(decided, job.conflicts)
                    } else {
                        Placed::unsaved(decided, job.conflicts)
                    })
                }
                (Some(Ok(_)), Some(Saved::Conflict(why))) => {
                    job.conflicts.push(why);
                    if job.conflicts.len() as u32 > max_retries {
                        Err(PlaceError::Contention {
                            retries: max_retries,
                            conflicts: job.conflicts,
                        })
                    } else {
                        again.push(job);
                        continue;
                    }
                }
            };
            let _ = job.reply.send(answer);
        }
        jobs = again;
    }
}

/// [`replay::replay`] from the placer's own thread.
fn replay_now(store: &FileStore, request: &Value) -> Option<Decided> {
    let answer = store.answer_now(replay::name_of(request)?).ok()??;
    let cluster = store.cluster_now().ok()?;
    replay::replayed(answer, &cluster, request)
}
