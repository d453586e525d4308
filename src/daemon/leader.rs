//! Leader election for several plugsync replicas against one Kubernetes cluster, with a
//! `coordination.k8s.io/v1` Lease (what client-go's leaderelection does): the holder renews
//! it every `retry`; another replica takes it once `renewTime + leaseDurationSeconds` has
//! passed. Only the leader applies; a leader that cannot renew for `renew_deadline` steps
//! down before anyone else may take over. Writes carry the Lease's resourceVersion, so two
//! replicas racing for an expired lease cannot both win.

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{Api, PostParams};
use serde_json::json;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Notify;

#[derive(Debug, Clone)]
pub struct LeaseConfig {
    pub name: String,
    pub namespace: String,
    /// Who this replica is (pod name in a cluster, else host and pid).
    pub identity: String,
    pub duration: Duration,
    /// How often the holder renews and a follower looks.
    pub retry: Duration,
}

impl LeaseConfig {
    pub fn new(name: String, namespace: String, duration: Duration) -> LeaseConfig {
        let identity = std::env::var("POD_NAME").ok().filter(|s| !s.is_empty()).unwrap_or_else(|| {
            let host = std::fs::read_to_string("/etc/hostname").map(|h| h.trim().to_string()).unwrap_or_default();
            format!("{host}-{}", std::process::id())
        });
        let retry = (duration / 5).max(Duration::from_millis(200));
        LeaseConfig { name, namespace, identity, duration, retry }
    }
}

/// What the Lease says, in plain numbers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held {
    pub holder: Option<String>,
    /// When the record last changed (a renewal), on the caller's clock.
    pub renewed_ms: Option<i64>,
    pub duration_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// No Lease yet: create it holding it.
    Create,
    /// Ours: renew it.
    Renew,
    /// Someone else's and expired (or released): take it over.
    TakeOver,
    /// Someone else's and live.
    Follow,
}

/// Pure: what to do with the Lease at `now_ms`.
pub fn decide(held: Option<&Held>, me: &str, now_ms: i64) -> Decision {
    let Some(held) = held else { return Decision::Create };
    match &held.holder {
        Some(holder) if holder == me => Decision::Renew,
        Some(holder) if !holder.is_empty() => match held.renewed_ms {
            Some(renewed) if now_ms < renewed + held.duration_ms => Decision::Follow,
            _ => Decision::TakeOver,
        },
        _ => Decision::TakeOver,
    }
}

/// The Lease in plain numbers, with when this replica last saw it change (its own clock).
fn held(lease: &Lease, changed_ms: Option<i64>) -> Held {
    let spec = lease.spec.clone().unwrap_or_default();
    Held {
        holder: spec.holder_identity,
        renewed_ms: changed_ms,
        duration_ms: i64::from(spec.lease_duration_seconds.unwrap_or(15)) * 1000,
    }
}

fn now() -> MicroTime {
    MicroTime(k8s_openapi::jiff::Timestamp::now())
}

/// Runs the election until the daemon stops; `leader` tells the daemon whether it may apply
/// and `wake` is notified when this replica becomes leader. Once `stop` is set it stops
/// looking (and idles, so it does not read as an ended task): a released Lease must not be
/// taken back by the replica that released it.
pub async fn run(
    client: kube::Client,
    config: LeaseConfig,
    leader: Arc<AtomicBool>,
    wake: Arc<Notify>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let api: Api<Lease> = Api::namespaced(client, &config.namespace);
    let mut last_renewed: Option<Instant> = None;
    let mut seen = Seen::default();
    loop {
        // A request that hangs (half-open connection) must not keep a leader leading.
        let attempt = tokio::time::timeout(config.retry, attempt(&api, &config, &mut seen));
        let result = tokio::select! {
            _ = stop.wait_for(|s| *s) => break,
            result = attempt => match result {
                Ok(result) => result,
                Err(_) => Err(kube::Error::Service(format!("no answer within {:?}", config.retry).into())),
            },
        };
        let was = leader.load(Ordering::Relaxed);
        let is = match result {
            Ok(true) => {
                last_renewed = Some(Instant::now());
                true
            }
            Ok(false) => false,
            Err(e) => {
                tracing::warn!(error = %e, lease = %config.name, "lease request failed");
                // Keep leading only while the lease we hold cannot have expired for others.
                was && last_renewed.is_some_and(|t| t.elapsed() < config.duration * 2 / 3)
            }
        };
        if is != was {
            leader.store(is, Ordering::Relaxed);
            if is {
                tracing::info!(identity = %config.identity, lease = %config.name, "became leader");
                wake.notify_one();
            } else {
                tracing::warn!(identity = %config.identity, lease = %config.name, "lost leadership; applying stops");
            }
        }
        tokio::select! {
            _ = stop.wait_for(|s| *s) => break,
            _ = tokio::time::sleep(config.retry) => {}
        }
    }
    std::future::pending::<()>().await;
}

/// When this replica last saw the Lease change, on its own monotonic clock: expiry is judged
/// from that (as client-go does), never from another replica's wall-clock `renewTime`, so
/// clock skew between nodes cannot cut a live lease short or make failover late.
#[derive(Default)]
struct Seen {
    version: Option<String>,
    at: Option<Instant>,
    started: Option<Instant>,
}

impl Seen {
    /// Local milliseconds: `now`, and when the record last changed.
    fn observe(&mut self, lease: Option<&Lease>) -> (i64, Option<i64>) {
        let started = *self.started.get_or_insert_with(Instant::now);
        let version = lease.and_then(|l| l.metadata.resource_version.clone());
        if version != self.version {
            self.version = version;
            self.at = Some(Instant::now());
        }
        let ms = |t: Instant| t.duration_since(started).as_millis() as i64;
        (ms(Instant::now()), self.at.map(ms))
    }
}

/// Gives the Lease up (holder emptied, 1 s duration), as client-go's ReleaseOnCancel does, so
/// a replica shutting down cleanly is replaced at the followers' next look.
pub async fn release(client: &kube::Client, config: &LeaseConfig) {
    let api: Api<Lease> = Api::namespaced(client.clone(), &config.namespace);
    // The election task still runs beside this and may renew between our read and write:
    // a 409 means "read again", not "give up" (the next leader would wait the Lease out).
    let released = async {
        loop {
            let Some(mut lease) = api.get_opt(&config.name).await? else { return Ok(()) };
            let spec = lease.spec.get_or_insert_with(Default::default);
            if spec.holder_identity.as_deref() != Some(config.identity.as_str()) {
                return Ok(());
            }
            spec.holder_identity = Some(String::new());
            spec.lease_duration_seconds = Some(1);
            spec.renew_time = Some(now());
            match api.replace(&config.name, &PostParams::default(), &lease).await {
                Ok(_) => return Ok(()),
                Err(kube::Error::Api(s)) if s.code == 409 => continue,
                Err(e) => return Err(e),
            }
        }
    };
    match tokio::time::timeout(config.retry, released).await {
        Ok(Ok(())) => tracing::info!(lease = %config.name, "leader Lease released"),
        Ok(Err(e)) => tracing::warn!(error = %e, "could not release the leader Lease"),
        Err(_) => tracing::warn!("releasing the leader Lease timed out"),
    }
}

/// One look at the Lease; `Ok(true)` when this replica holds it afterwards.
async fn attempt(api: &Api<Lease>, config: &LeaseConfig, seen: &mut Seen) -> Result<bool, kube::Error> {
    let current = api.get_opt(&config.name).await?;
    let (now_ms, changed_ms) = seen.observe(current.as_ref());
    let seconds = config.duration.as_secs_f64().ceil().max(1.0) as i32;
    let record = current.as_ref().map(|lease| held(lease, changed_ms));
    match decide(record.as_ref(), &config.identity, now_ms) {
        Decision::Follow => Ok(false),
        Decision::Create => {
            let lease: Lease = serde_json::from_value(json!({
                "metadata": { "name": config.name, "labels": { "app.kubernetes.io/managed-by": "plugsync" } },
                "spec": {
                    "holderIdentity": config.identity,
                    "leaseDurationSeconds": seconds,
                    "leaseTransitions": 0,
                },
            }))
            .map_err(kube::Error::SerdeError)?;
            let mut lease = lease;
            if let Some(spec) = lease.spec.as_mut() {
                spec.acquire_time = Some(now());
                spec.renew_time = Some(now());
            }
            match api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(true),
                Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
                Err(e) => Err(e),
            }
        }
        decision => {
            let Some(mut lease) = current else { return Ok(false) };
            let spec = lease.spec.get_or_insert_with(Default::default);
            if decision == Decision::TakeOver {
                spec.holder_identity = Some(config.identity.clone());
                spec.acquire_time = Some(now());
                spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
            }
            spec.renew_time = Some(now());
            spec.lease_duration_seconds = Some(seconds);
            // The resourceVersion read above makes this a compare-and-swap.
            match api.replace(&config.name, &PostParams::default(), &lease).await {
                Ok(_) => Ok(true),
                Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
                Err(e) => Err(e),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decision_table() {
        let lease = |holder: Option<&str>, renewed: Option<i64>| Held {
            holder: holder.map(str::to_string),
            renewed_ms: renewed,
            duration_ms: 10_000,
        };
        let cases = [
            (None, 0, Decision::Create),
            (Some(lease(Some("me"), Some(0))), 50_000, Decision::Renew),
            (Some(lease(Some("other"), Some(1_000))), 10_999, Decision::Follow),
            (Some(lease(Some("other"), Some(1_000))), 11_000, Decision::TakeOver),
            (Some(lease(Some("other"), None)), 0, Decision::TakeOver),
            (Some(lease(Some(""), Some(1_000))), 2_000, Decision::TakeOver),
            (Some(lease(None, Some(1_000))), 2_000, Decision::TakeOver),
        ];
        for (held, now, want) in cases {
            assert_eq!(decide(held.as_ref(), "me", now), want, "{held:?} at {now}");
        }
    }
}

/// What a look at the Lease found, relative to the last look.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// Just became leader: reread status (the previous leader may have left a rollout).
    Gained,
    /// Just lost the Lease: drop status not pushed yet (the new leader's is newer).
    Lost,
    Leading,
    Following,
}

impl Transition {
    pub fn may_apply(self) -> bool {
        matches!(self, Transition::Gained | Transition::Leading)
    }
}

/// This replica's leadership as the loop sees it: always leading without a Lease; with one,
/// the election task's flag, read as transitions.
#[derive(Debug)]
pub struct Leadership {
    flag: Option<Arc<AtomicBool>>,
    was_leading: bool,
}

impl Leadership {
    pub fn new(flag: Option<Arc<AtomicBool>>) -> Self {
        Leadership { flag, was_leading: false }
    }

    /// The election's flag, for the executor (it stops applying once the flag drops).
    pub fn flag(&self) -> Option<Arc<AtomicBool>> {
        self.flag.clone()
    }

    /// Reads the flag and says what changed since the last look.
    pub fn look(&mut self) -> Transition {
        let Some(flag) = &self.flag else { return Transition::Leading };
        let leading = flag.load(Ordering::Relaxed);
        let was = std::mem::replace(&mut self.was_leading, leading);
        match (was, leading) {
            (false, true) => Transition::Gained,
            (true, false) => Transition::Lost,
            (true, true) => Transition::Leading,
            (false, false) => Transition::Following,
        }
    }
}

#[cfg(test)]
mod leadership_tests {
    use super::*;

    #[test]
    fn looks_report_transitions_once() {
        assert_eq!(Leadership::new(None).look(), Transition::Leading, "without a Lease, always");
        let flag = Arc::new(AtomicBool::new(false));
        let mut leadership = Leadership::new(Some(flag.clone()));
        let mut seen = Vec::new();
        for leading in [false, true, true, false, false, true] {
            flag.store(leading, Ordering::Relaxed);
            seen.push(leadership.look());
        }
        use Transition::*;
        assert_eq!(seen, [Following, Gained, Leading, Lost, Following, Gained]);
    }
}
