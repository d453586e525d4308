//! What Docker says of a container (labels, state, networks) → an observed instance.
//! Input: a `docker inspect` document (one container, JSON).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(inspect) = serde_json::from_slice::<bollard::models::ContainerInspectResponse>(data) else { return };
    let network = inspect
        .network_settings
        .as_ref()
        .and_then(|n| n.networks.as_ref())
        .and_then(|n| n.keys().next().cloned())
        .unwrap_or_default();
    if let Some(instance) = plugsync::backend::docker::instance_of(inspect, &network) {
        let _ = instance.departures();
        let _ = instance.retire_order();
    }
});
