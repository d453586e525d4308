//! A team's compose file (or Kubernetes manifests) → plugin manifests and a report; the
//! manifests then loaded as a fleet (what `plugsync import` validates). Input: a compose file
//! or multi-document Kubernetes YAML.
#![no_main]
use libfuzzer_sys::fuzz_target;
use plugsync::import::compose::{import, Options};
use plugsync::model::document::Document;

fn load(imported: plugsync::import::Imported) {
    let _ = imported.report("fuzz");
    let mut files = plugsync::model::FileSet::new();
    files.insert("plugsync.yaml".into(), imported.fleet_config.into_bytes());
    for p in imported.plugins {
        files.insert(format!("plugins/{}/plugin.yaml", p.id), p.manifest.into_bytes());
    }
    let _ = plugsync::model::load(&files, None);
}

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let docs: Vec<Document> =
            plugsync::import::kubernetes::split("k8s.yaml", text).into_iter().filter_map(Result::ok).collect();
        load(plugsync::import::kubernetes::import(&docs, Some("fuzz")));
    }
    let Ok(doc) = Document::parse("docker-compose.yml", data) else { return };
    let options = Options { exclude: vec!["db".into()], exclude_labels: vec!["plugsync.skip".into()], fleet: None };
    load(import(&[doc], &options));
});
