//! Building container images for plugins from Rust, through the Docker API.
//!
//! No registry is reachable where plugsync is tested, so images are built `FROM scratch`
//! around a statically linked binary: a tar context holding a Dockerfile and the binary is
//! sent to the daemon's `/build` endpoint (classic builder). Nothing here ever pulls.
//!
//! The main user is the test suite, which needs `plugsync/echo-plugin:<version>` images
//! (see `examples/echo-plugin`): [`ensure_echo_images`] builds them once and skips the work
//! when an image with the tag exists and was built from the same binary (label
//! [`BINARY_SHA_LABEL`]).
//!
//! # Connecting
//!
//! The caller connects (`Docker::connect_with_local_defaults()`) **and must call
//! `docker.negotiate_version().await`**: bollard 0.21 speaks API 1.53 by default and
//! Docker 20.10 (API 1.41) rejects every request from a client newer than itself.
//!
//! # Labels
//!
//! Image labels are inherited by every container created from the image. The labels put
//! here (`plugsync.image`, `plugsync.binary-sha256`) therefore show up on plugin containers
//! too; ownership must be decided on the container labels plugsync sets itself
//! (`plugsync.fleet`, ...), never on "has some `plugsync.*` label".

mod router;

pub use router::{build_router_image, config_archive as router_config_archive, ROUTER_CONFIG_PATH, ROUTER_IMAGE};

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};

use bollard::query_parameters::{BuildImageOptionsBuilder, TagImageOptionsBuilder};
use bollard::Docker;
use futures_util::StreamExt;
use sha2::{Digest, Sha256};

/// Repository of the echo test plugin images.
pub const ECHO_IMAGE_REPO: &str = "plugsync/echo-plugin";
/// Label present on every image built by [`build_scratch_image`].
pub const IMAGE_LABEL: &str = "plugsync.image";
/// Label holding the hex sha256 of the binary an image was built from.
pub const BINARY_SHA_LABEL: &str = "plugsync.binary-sha256";
/// Target triple the plugin binaries are built for (static glibc).
const TARGET_TRIPLE: &str = "x86_64-unknown-linux-gnu";
/// How many trailing lines of cargo's stderr an [`ImageError::CargoFailed`] keeps.
const STDERR_TAIL_LINES: usize = 40;

/// Why an image could not be produced.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("could not run `{program}`: {source}")]
    CargoSpawn {
        program: String,
        #[source]
        source: io::Error,
    },
    #[error("`cargo build -p echo-plugin` failed ({status}); last lines of its stderr:\n{stderr_tail}")]
    CargoFailed { status: ExitStatus, stderr_tail: String },
    #[error("cargo succeeded but the binary is missing at {0}")]
    BinaryMissing(PathBuf),
    #[error("I/O error on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("invalid image tag `{0}` (a Docker tag is [A-Za-z0-9_][A-Za-z0-9_.-]{{0,127}})")]
    InvalidTag(String),
    #[error("Docker API error while {action}: {source}")]
    Docker {
        action: String,
        #[source]
        source: bollard::errors::Error,
    },
    #[error("docker build of {tag} failed: {message}")]
    BuildFailed { tag: String, message: String },
    #[error("background task failed: {0}")]
    Join(String),
}

impl ImageError {
    fn docker(action: impl Into<String>, source: bollard::errors::Error) -> Self {
        ImageError::Docker { action: action.into(), source }
    }
}

/// Builds `examples/echo-plugin` as a static binary and returns its path.
///
/// Runs `cargo build --release -p echo-plugin --target x86_64-unknown-linux-gnu` with
/// `RUSTFLAGS=-C target-feature=+crt-static` in `<workspace_root>/target/echo`, a target dir
/// of its own so the changed RUSTFLAGS never invalidate the main build. Blocking: from async
/// code, call it through `spawn_blocking` (as [`ensure_echo_images`] does). Quiet unless it
/// fails, in which case the error carries the tail of cargo's stderr.
pub fn echo_plugin_binary(workspace_root: &Path) -> Result<PathBuf, ImageError> {
    let target_dir = workspace_root.join("target").join("echo");
    // Inside `cargo test`, $CARGO names the cargo that is running us; prefer it.
    let program = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = Command::new(&program)
        .current_dir(workspace_root)
        .args(["build", "--release", "-p", "echo-plugin", "--target", TARGET_TRIPLE])
        .env("CARGO_TARGET_DIR", &target_dir)
        .env("RUSTFLAGS", "-C target-feature=+crt-static")
        // These would take precedence over RUSTFLAGS.
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("CARGO_BUILD_RUSTFLAGS")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .map_err(|source| ImageError::CargoSpawn { program: program.to_string_lossy().into_owned(), source })?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let lines: Vec<&str> = stderr.lines().collect();
        let tail = lines[lines.len().saturating_sub(STDERR_TAIL_LINES)..].join("\n");
        return Err(ImageError::CargoFailed { status: output.status, stderr_tail: tail });
    }
    let binary = target_dir.join(TARGET_TRIPLE).join("release").join("echo-plugin");
    if !binary.is_file() {
        return Err(ImageError::BinaryMissing(binary));
    }
    Ok(binary)
}

/// Hex sha256 of a file's contents.
pub fn file_sha256(path: &Path) -> Result<String, ImageError> {
    let bytes = std::fs::read(path).map_err(|source| ImageError::Io { path: path.into(), source })?;
    Ok(sha256_hex(&bytes))
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// The Dockerfile of every scratch plugin image.
const DOCKERFILE: &str = "FROM scratch\nCOPY plugin /plugin\nEXPOSE 8080\nENTRYPOINT [\"/plugin\"]\n";

/// Builds a `FROM scratch` image whose entrypoint is `binary` (copied to `/plugin`),
/// exposing 8080, labelled with `labels` plus `plugsync.image=true` and
/// `plugsync.binary-sha256=<sha256 of binary>`, tagged `tag` (`repo:tag`).
///
/// The binary must be statically linked: there is nothing else in the image. Errors the
/// daemon reports in the build stream come back as [`ImageError::BuildFailed`].
pub async fn build_scratch_image(
    docker: &Docker,
    binary: &Path,
    tag: &str,
    labels: &BTreeMap<String, String>,
) -> Result<(), ImageError> {
    let bin = tokio::fs::read(binary).await.map_err(|source| ImageError::Io { path: binary.into(), source })?;
    let mut all_labels: HashMap<String, String> = labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    all_labels.insert(IMAGE_LABEL.into(), "true".into());
    all_labels.insert(BINARY_SHA_LABEL.into(), sha256_hex(&bin));

    let context = build_context(&bin)
        .map_err(|source| ImageError::Io { path: PathBuf::from("<in-memory build context>"), source })?;
    build_from_context(docker, context, tag, &all_labels).await
}

/// Sends a tar build context (with its `Dockerfile`) to the engine and waits for `tag`.
async fn build_from_context(
    docker: &Docker,
    context: Vec<u8>,
    tag: &str,
    all_labels: &HashMap<String, String>,
) -> Result<(), ImageError> {
    let options = BuildImageOptionsBuilder::default()
        .dockerfile("Dockerfile")
        .t(tag)
        .labels(all_labels)
        .rm(true)
        .forcerm(true)
        .build();

    let mut stream = docker.build_image(options, None, Some(bollard::body_full(context.into())));
    let mut log = String::new();
    while let Some(item) = stream.next().await {
        match item {
            Ok(info) => {
                if let Some(line) = info.stream.as_deref().or(info.status.as_deref()) {
                    log.push_str(line);
                }
            }
            // bollard turns an `errorDetail` in the stream into DockerStreamError.
            Err(bollard::errors::Error::DockerStreamError { error }) => {
                return Err(ImageError::BuildFailed { tag: tag.into(), message: error });
            }
            Err(bollard::errors::Error::DockerResponseServerError { status_code, message }) => {
                return Err(ImageError::BuildFailed {
                    tag: tag.into(),
                    message: format!("HTTP {status_code}: {message}"),
                });
            }
            Err(e) => return Err(ImageError::docker(format!("building {tag}"), e)),
        }
    }
    tracing::debug!(tag, build_log = %log.trim_end(), "built scratch image");

    // The stream ending without an error should mean success; make sure.
    docker.inspect_image(tag).await.map_err(|e| ImageError::BuildFailed {
        tag: tag.into(),
        message: format!("build stream ended but the image is not there ({e}); log:\n{log}"),
    })?;
    Ok(())
}

/// An uncompressed tar holding `Dockerfile` and `plugin`.
fn build_context(binary: &[u8]) -> io::Result<Vec<u8>> {
    let mut tar = tar::Builder::new(Vec::new());
    for (name, mode, data) in [("Dockerfile", 0o644, DOCKERFILE.as_bytes()), ("plugin", 0o755, binary)] {
        let mut header = tar::Header::new_gnu();
        header.set_path(name)?;
        header.set_size(data.len() as u64);
        header.set_mode(mode);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(0);
        header.set_entry_type(tar::EntryType::Regular);
        header.set_cksum();
        tar.append(&header, data)?;
    }
    tar.into_inner()
}

/// Whether `tag` is a valid Docker tag (the part after `repo:`).
fn valid_tag(tag: &str) -> bool {
    let mut chars = tag.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphanumeric() || c == '_')
        && tag.len() <= 128
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// Makes sure `plugsync/echo-plugin:<version>` exists for every version, built from the
/// current `examples/echo-plugin` source.
///
/// The binary is (re)built with [`echo_plugin_binary`] (a no-op for cargo when unchanged);
/// a tag is left alone when its image carries the binary's sha256 in
/// [`BINARY_SHA_LABEL`]. Missing or stale tags are built once and the rest tagged from
/// that image. The image does not know its version: plugsync passes `ECHO_VERSION` in the
/// container's environment.
pub async fn ensure_echo_images(docker: &Docker, workspace_root: &Path, versions: &[&str]) -> Result<(), ImageError> {
    if let Some(bad) = versions.iter().find(|v| !valid_tag(v)) {
        return Err(ImageError::InvalidTag((*bad).to_string()));
    }
    let root = workspace_root.to_path_buf();
    let binary = tokio::task::spawn_blocking(move || echo_plugin_binary(&root))
        .await
        .map_err(|e| ImageError::Join(e.to_string()))??;
    let sha = file_sha256(&binary)?;

    let mut stale = Vec::new();
    // Images the stale tags pointed at; once re-tagged they are dangling.
    let mut replaced = Vec::new();
    for version in versions {
        let tag = format!("{ECHO_IMAGE_REPO}:{version}");
        let current = match docker.inspect_image(&tag).await {
            Ok(image) => {
                let current = image
                    .config
                    .and_then(|c| c.labels)
                    .and_then(|l| l.get(BINARY_SHA_LABEL).cloned())
                    .is_some_and(|s| s == sha);
                if let (false, Some(id)) = (current, image.id) {
                    if !replaced.contains(&id) {
                        replaced.push(id);
                    }
                }
                current
            }
            Err(bollard::errors::Error::DockerResponseServerError { status_code: 404, .. }) => false,
            Err(e) => return Err(ImageError::docker(format!("inspecting {tag}"), e)),
        };
        if current {
            tracing::debug!(%tag, "echo image is up to date");
        } else if !stale.contains(version) {
            stale.push(*version);
        }
    }
    let Some((first, rest)) = stale.split_first() else {
        return Ok(());
    };

    let first_tag = format!("{ECHO_IMAGE_REPO}:{first}");
    let labels = BTreeMap::from([("plugsync.image-source".to_string(), "examples/echo-plugin".to_string())]);
    tracing::info!(tag = %first_tag, sha256 = %sha, "building echo plugin image");
    build_scratch_image(docker, &binary, &first_tag, &labels).await?;
    for version in rest {
        let options = TagImageOptionsBuilder::default().repo(ECHO_IMAGE_REPO).tag(version).build();
        docker
            .tag_image(&first_tag, Some(options))
            .await
            .map_err(|e| ImageError::docker(format!("tagging {first_tag} as {ECHO_IMAGE_REPO}:{version}"), e))?;
    }

    // Best effort: drop the images we just replaced (and their build-cache parents). The
    // daemon refuses while a container uses one or another tag still names it; that is fine.
    for id in replaced {
        // Only if nothing names it any more: `rmi <id>` would also delete a last other tag.
        let dangling =
            docker.inspect_image(&id).await.is_ok_and(|image| image.repo_tags.unwrap_or_default().is_empty());
        if !dangling {
            continue;
        }
        match docker.remove_image(&id, None::<bollard::query_parameters::RemoveImageOptions>, None).await {
            Ok(_) => tracing::debug!(%id, "removed replaced echo image"),
            Err(e) => tracing::debug!(%id, error = %e, "kept replaced echo image"),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags() {
        assert!(valid_tag("0.0.1-test"));
        assert!(valid_tag("1.2.3"));
        assert!(!valid_tag("1.2.3+build"));
        assert!(!valid_tag("-x"));
        assert!(!valid_tag(""));
    }

    #[test]
    fn context_has_dockerfile_and_plugin() {
        let tar_bytes = build_context(b"\x7fELF").unwrap();
        let mut archive = tar::Archive::new(&tar_bytes[..]);
        let names: Vec<String> =
            archive.entries().unwrap().map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned()).collect();
        assert_eq!(names, ["Dockerfile", "plugin"]);
    }
}
