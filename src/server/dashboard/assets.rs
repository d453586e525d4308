//! The dashboard's stylesheet and script, embedded in the binary (no build step, nothing
//! loaded from anywhere else). Their URLs carry a hash of the content, so a browser may keep
//! them while the daemon runs the same build and fetches them again after an upgrade.

use std::sync::LazyLock;

pub const CSS: &str = include_str!("assets/dashboard.css");
pub const JS: &str = include_str!("assets/dashboard.js");

/// FNV-1a of the text, 8 hex digits: enough to tell two builds' assets apart.
fn fingerprint(text: &str) -> String {
    let mut hash: u32 = 0x811c_9dc5;
    for byte in text.bytes() {
        hash ^= u32::from(byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    format!("{hash:08x}")
}

pub static CSS_URL: LazyLock<String> = LazyLock::new(|| format!("/assets/dashboard.css?v={}", fingerprint(CSS)));
pub static JS_URL: LazyLock<String> = LazyLock::new(|| format!("/assets/dashboard.js?v={}", fingerprint(JS)));

/// `(content type, text)` of an asset by file name.
pub fn get(name: &str) -> Option<(&'static str, &'static str)> {
    match name {
        "dashboard.css" => Some(("text/css; charset=utf-8", CSS)),
        "dashboard.js" => Some(("text/javascript; charset=utf-8", JS)),
        _ => None,
    }
}
