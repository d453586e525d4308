//! What instances and servers answer: Prometheus text, Prometheus API JSON, router log lines,
//! the router's runtime API answers.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let counters = plugsync::analysis::InstanceCounters::from_text(&text);
    let window = plugsync::analysis::delta(&Default::default(), &counters);
    let metrics = plugsync::analysis::aggregate(&[window], 10.0);
    let _ = metrics.ratio("conversions_total", "http_requests_total");
    let _ = plugsync::analysis::summary(&metrics);
    let _ = plugsync::analysis::prometheus::parse_response(&text);
    let _ = plugsync::analysis::router_log::window(text.lines(), "crm", 10.0);
    let _ = plugsync::traffic::haproxy::shares_from_state(&text);
});
