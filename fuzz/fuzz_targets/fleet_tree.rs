//! A whole fleet tree (paths and bytes) through the loader, every check and the planner.
//! Input: records `path \0 bytes`, separated by `\0\0\0` (seeds: `examples/fleet` and the
//! test fleets, written by `.ci/fuzz-seeds`).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut tree = plugsync::model::FileSet::new();
    for record in split(data, b"\0\0\0").take(32) {
        let (path, bytes) = match record.iter().position(|b| *b == 0) {
            Some(i) => (&record[..i], &record[i + 1..]),
            None => (record, &[][..]),
        };
        tree.insert(String::from_utf8_lossy(path).into_owned(), bytes.to_vec());
    }
    let loaded = plugsync::model::load(&tree, None);
    for d in &loaded.diagnostics {
        let _ = d.to_string();
    }
    if loaded.is_valid() {
        let plan = plugsync::plan::plan(&loaded.fleet, &Default::default(), plugsync::plan::DesiredHealth::Complete);
        let _ = plugsync::plan::render::markdown(&plan);
    }
});

fn split<'a>(data: &'a [u8], separator: &'a [u8]) -> impl Iterator<Item = &'a [u8]> + 'a {
    let mut rest = Some(data);
    std::iter::from_fn(move || {
        let current = rest?;
        match current.windows(separator.len()).position(|w| w == separator) {
            Some(i) => {
                rest = Some(&current[i + separator.len()..]);
                Some(&current[..i])
            }
            None => {
                rest = None;
                Some(current)
            }
        }
    })
}
