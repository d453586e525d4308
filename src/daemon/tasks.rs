//! No panic in one task may leave the daemon up but stuck (issue 10, defect 9).
//!
//! - Essential tasks (rollout commands, the HTTP server, leader election) hold state that
//!   cannot be rebuilt in place: when one ends or panics, the daemon stops with an error naming
//!   it, and whatever supervises plugsync (systemd, Docker, Kubernetes) starts it again.
//! - Restartable tasks (the engine's event stream) are run again after a panic, with a delay.
//! - Locks are taken whether or not an earlier holder panicked: the data they guard (a git
//!   cache, a list of plugin ids) stays valid when a holder dies mid-way.

use futures_util::FutureExt;
use std::collections::HashMap;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;
use tokio::task::{Id, JoinSet};

/// The guard, even when a holder panicked.
pub fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Tasks the daemon cannot run without.
#[derive(Default)]
pub struct Essential {
    set: JoinSet<()>,
    names: HashMap<Id, &'static str>,
}

/// How an essential task ended.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the daemon's {task} task {how}; stopping so that a supervisor restarts plugsync")]
pub struct TaskEnded {
    pub task: &'static str,
    pub how: String,
}

impl Essential {
    pub fn spawn(&mut self, name: &'static str, task: impl Future<Output = ()> + Send + 'static) {
        let handle = self.set.spawn(task);
        self.names.insert(handle.id(), name);
    }

    /// Waits until an essential task ends (never, while all run; pending forever when there
    /// are none).
    pub async fn ended(&mut self) -> TaskEnded {
        match self.set.join_next_with_id().await {
            Some(Ok((id, ()))) => TaskEnded { task: self.name(id), how: "ended".into() },
            Some(Err(e)) => {
                let task = self.name(e.id());
                let how =
                    if e.is_panic() { format!("panicked: {}", panic_text(e.into_panic())) } else { e.to_string() };
                TaskEnded { task, how }
            }
            None => std::future::pending().await,
        }
    }

    fn name(&self, id: Id) -> &'static str {
        self.names.get(&id).copied().unwrap_or("unnamed")
    }
}

fn panic_text(payload: Box<dyn std::any::Any + Send>) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a non-text panic".into())
}

/// Runs `make()`'s future again whenever it panics (after `delay`), logging each panic.
pub fn restarting<F, Fut>(name: &'static str, delay: Duration, make: F)
where
    F: Fn() -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    tokio::spawn(async move {
        loop {
            match AssertUnwindSafe(make()).catch_unwind().await {
                Ok(()) => return,
                Err(payload) => {
                    tracing::error!(task = name, panic = %panic_text(payload), "task panicked; restarting it");
                    tokio::time::sleep(delay).await;
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Arc;

    /// Issue 10, defect 9: a lock whose holder panicked is still usable.
    #[test]
    fn defect_9_a_poisoned_lock_still_works() {
        let shared = Arc::new(Mutex::new(vec!["crm".to_string()]));
        let poisoner = shared.clone();
        let _ = std::thread::spawn(move || {
            let _guard = lock(&poisoner);
            panic!("a task dies holding the lock");
        })
        .join();
        assert!(shared.is_poisoned());
        lock(&shared).push("billing".into());
        assert_eq!(*lock(&shared), ["crm", "billing"]);
    }

    /// Issue 10, defect 9: an essential task that panics stops the daemon with its name,
    /// instead of leaving it up without it.
    #[tokio::test]
    async fn defect_9_a_panicking_essential_task_is_reported_by_name() {
        let mut essential = Essential::default();
        essential.spawn("HTTP server", std::future::pending());
        essential.spawn("rollout commands", async { panic!("boom") });
        let ended = tokio::time::timeout(Duration::from_secs(5), essential.ended()).await.expect("noticed at once");
        assert_eq!(ended.task, "rollout commands");
        assert!(ended.how.contains("panicked: boom"), "{ended}");
        assert!(ended.to_string().contains("restarts plugsync"), "{ended}");
    }

    #[tokio::test]
    async fn a_restartable_task_runs_again_after_a_panic() {
        let runs = Arc::new(AtomicU32::new(0));
        let counter = runs.clone();
        restarting("events", Duration::from_millis(10), move || {
            let counter = counter.clone();
            async move {
                if counter.fetch_add(1, Ordering::SeqCst) < 2 {
                    panic!("stream broke");
                }
            }
        });
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while runs.load(Ordering::SeqCst) < 3 {
            assert!(tokio::time::Instant::now() < deadline, "restarted {} times", runs.load(Ordering::SeqCst));
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}
