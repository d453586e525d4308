//! Files read back from the status branch (anyone with push access can write them).
//! Input: records `path \0 bytes`, separated by 0xff bytes (never in UTF-8 text).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let files = data.split(|b| *b == 0xff).take(8).map(|record| {
        let (path, bytes) = match record.iter().position(|b| *b == 0) {
            Some(i) => (&record[..i], &record[i + 1..]),
            None => (&b"status/crm.yaml"[..], record),
        };
        (String::from_utf8_lossy(path).into_owned(), bytes.to_vec())
    });
    let (_fleet, plugins) = plugsync::status::read_files(files);
    for status in plugins.values() {
        // A rollout in flight read back becomes strategy state again.
        if let Some(rollout) = &status.rollout {
            let _ = rollout.to_state();
        }
        let _ = plugsync::model::short_revision(status.revision.as_deref().unwrap_or_default());
    }
});
