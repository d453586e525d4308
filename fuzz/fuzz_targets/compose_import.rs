//! A team's compose file → plugin manifests and a report; the manifests then loaded as a fleet
//! (what `plugsync import compose` validates). Input: a compose file (YAML).
#![no_main]
use libfuzzer_sys::fuzz_target;
use plugsync::import::compose::{import, Options};
use plugsync::model::document::Document;

fuzz_target!(|data: &[u8]| {
    let Ok(doc) = Document::parse("docker-compose.yml", data) else { return };
    let options = Options { exclude: vec!["db".into()], exclude_labels: vec!["plugsync.skip".into()], fleet: None };
    let imported = import(&[doc], &options);
    let _ = imported.report("fuzz");
    let mut files = plugsync::model::FileSet::new();
    files.insert("plugsync.yaml".into(), imported.fleet_config.into_bytes());
    for p in imported.plugins {
        files.insert(format!("plugins/{}/plugin.yaml", p.id), p.manifest.into_bytes());
    }
    let _ = plugsync::model::load(&files, None);
});
