//! The router image for tests and the demo: `FROM scratch` around this machine's HAProxy
//! binary (Debian's `haproxy` package) and the shared libraries `ldd` lists. Production uses a
//! public haproxy image instead; nothing here is needed there.

use super::{build_from_context, sha256_hex, ImageError, IMAGE_LABEL};
use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Tag of the router image built here.
pub const ROUTER_IMAGE: &str = "plugsync/router:haproxy-local";
/// Where the image expects its configuration file.
pub const ROUTER_CONFIG_PATH: &str = "/usr/local/etc/haproxy/haproxy.cfg";
const HAPROXY: &str = "/usr/sbin/haproxy";
const ROUTER_SHA_LABEL: &str = "plugsync.haproxy-sha256";

const DOCKERFILE: &str = "FROM scratch\nCOPY rootfs/ /\n\
    ENTRYPOINT [\"/usr/sbin/haproxy\", \"-W\", \"-db\", \"-f\", \"/usr/local/etc/haproxy/haproxy.cfg\"]\n";

/// Builds [`ROUTER_IMAGE`] unless it exists from the same haproxy binary.
pub async fn build_router_image(docker: &bollard::Docker) -> Result<(), ImageError> {
    let binary = std::fs::read(HAPROXY).map_err(|source| ImageError::Io {
        path: HAPROXY.into(),
        source: io::Error::new(source.kind(), format!("{source} (install Debian's haproxy package)")),
    })?;
    let sha = sha256_hex(&binary);
    if let Ok(image) = docker.inspect_image(ROUTER_IMAGE).await {
        let labels = image.config.and_then(|c| c.labels).unwrap_or_default();
        if labels.get(ROUTER_SHA_LABEL) == Some(&sha) {
            return Ok(());
        }
    }
    let libraries = shared_libraries(Path::new(HAPROXY))?;
    let context = tokio::task::spawn_blocking(move || router_context(&binary, &libraries))
        .await
        .map_err(|e| ImageError::Join(e.to_string()))?
        .map_err(|source| ImageError::Io { path: PathBuf::from("<router build context>"), source })?;
    let labels = HashMap::from([(IMAGE_LABEL.to_string(), "true".to_string()), (ROUTER_SHA_LABEL.to_string(), sha)]);
    build_from_context(docker, context, ROUTER_IMAGE, &labels).await
}

/// The absolute paths of the shared libraries `ldd` lists for `binary` (loader included).
fn shared_libraries(binary: &Path) -> Result<Vec<PathBuf>, ImageError> {
    let io_error = |source| ImageError::Io { path: binary.into(), source };
    let output = Command::new("ldd").arg(binary).output().map_err(io_error)?;
    if !output.status.success() {
        let message = String::from_utf8_lossy(&output.stderr).trim().to_string();
        return Err(io_error(io::Error::other(format!("ldd failed: {message}"))));
    }
    Ok(parse_ldd(&String::from_utf8_lossy(&output.stdout)))
}

/// `libssl.so.3 => /lib/x86_64-linux-gnu/libssl.so.3 (0x…)` and `/lib64/ld-linux-x86-64.so.2
/// (0x…)` lines → their paths; `linux-vdso.so.1` has none.
fn parse_ldd(text: &str) -> Vec<PathBuf> {
    text.lines()
        .filter_map(|line| {
            let line = line.trim();
            let path = match line.split_once("=>") {
                Some((_, rest)) => rest.trim(),
                None => line,
            };
            let path = path.split_whitespace().next()?;
            path.starts_with('/').then(|| PathBuf::from(path))
        })
        .collect()
}

/// Tar context: Dockerfile, the binary, each library under its own path (symlinks followed),
/// an empty `/tmp` (HAProxy's master needs one) and a placeholder configuration.
fn router_context(binary: &[u8], libraries: &[PathBuf]) -> io::Result<Vec<u8>> {
    let mut tar = tar::Builder::new(Vec::new());
    append(&mut tar, "Dockerfile", 0o644, DOCKERFILE.as_bytes())?;
    append(&mut tar, "rootfs/usr/sbin/haproxy", 0o755, binary)?;
    for library in libraries {
        let bytes = std::fs::read(library)?;
        let relative = library.to_string_lossy().trim_start_matches('/').to_string();
        append(&mut tar, &format!("rootfs/{relative}"), 0o755, &bytes)?;
    }
    let placeholder = "global\ndefaults\n  mode http\n  timeout connect 1s\n  timeout client 1s\n  timeout server 1s\n";
    append(&mut tar, &format!("rootfs{ROUTER_CONFIG_PATH}"), 0o644, placeholder.as_bytes())?;
    let mut tmp = tar::Header::new_gnu();
    tmp.set_path("rootfs/tmp/")?;
    tmp.set_entry_type(tar::EntryType::Directory);
    tmp.set_mode(0o1777);
    tmp.set_size(0);
    tmp.set_cksum();
    tar.append(&tmp, io::empty())?;
    tar.into_inner()
}

fn append(tar: &mut tar::Builder<Vec<u8>>, path: &str, mode: u32, data: &[u8]) -> io::Result<()> {
    let mut header = tar::Header::new_gnu();
    header.set_path(path)?;
    header.set_size(data.len() as u64);
    header.set_mode(mode);
    header.set_mtime(0);
    header.set_entry_type(tar::EntryType::Regular);
    header.set_cksum();
    tar.append(&header, data)
}

/// A tar holding the router configuration at [`ROUTER_CONFIG_PATH`], for
/// `upload_to_container` at `/`.
pub fn config_archive(config: &str) -> io::Result<Vec<u8>> {
    let mut tar = tar::Builder::new(Vec::new());
    append(&mut tar, ROUTER_CONFIG_PATH.trim_start_matches('/'), 0o644, config.as_bytes())?;
    tar.into_inner()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ldd_lines_give_library_paths() {
        let text = "\tlinux-vdso.so.1 (0x00007ffd)\n\
                    \tlibssl.so.3 => /lib/x86_64-linux-gnu/libssl.so.3 (0x00007f)\n\
                    \t/lib64/ld-linux-x86-64.so.2 (0x00007f)\n\
                    \tlibmissing.so => not found\n";
        assert_eq!(
            parse_ldd(text),
            vec![PathBuf::from("/lib/x86_64-linux-gnu/libssl.so.3"), PathBuf::from("/lib64/ld-linux-x86-64.so.2")]
        );
    }
}
