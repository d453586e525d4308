//! `--admission FILE` and the single-rule flags: the admission policy comes from outside the
//! fleet repo, so a pull request cannot loosen it.

use anyhow::Context;
use plugsync::model::admission::{admit, locate, AdmissionPolicy, Refusal};
use plugsync::model::Fleet;
use plugsync::model::{Cpu, Memory};
use std::path::PathBuf;

#[derive(Debug, Clone, Default, clap::Args)]
pub struct AdmissionArgs {
    /// Admission policy file (YAML or JSON, `plugsync schema admission-policy`); keep it
    /// outside the fleet repo. The flags below override its rules one by one.
    #[arg(long, env = "PLUGSYNC_ADMISSION")]
    pub admission: Option<PathBuf>,
    /// Image prefix a plugin may use (repeatable; `nginx` means docker.io/library/nginx).
    #[arg(long = "allow-image-prefix", value_name = "PREFIX")]
    pub allow_image_prefix: Vec<String>,
    /// Most replicas per plugin.
    #[arg(long)]
    pub max_replicas: Option<u32>,
    /// Most CPU per instance (runtime.resources.cpu), e.g. 500m or 2.
    #[arg(long, value_parser = parse_cpu)]
    pub max_cpu: Option<Cpu>,
    /// Most memory per instance (runtime.resources.memory), e.g. 512Mi.
    #[arg(long, value_parser = parse_memory)]
    pub max_memory: Option<Memory>,
    /// Most CPU for the whole fleet (sum of replicas × cpu).
    #[arg(long, value_parser = parse_cpu)]
    pub max_fleet_cpu: Option<Cpu>,
    /// Most memory for the whole fleet (sum of replicas × memory).
    #[arg(long, value_parser = parse_memory)]
    pub max_fleet_memory: Option<Memory>,
}

fn parse_cpu(text: &str) -> Result<Cpu, String> {
    Cpu::parse(text).ok_or_else(|| format!("found {text:?}, expected {}", plugsync::model::quantity::CPU_EXPECTED))
}

fn parse_memory(text: &str) -> Result<Memory, String> {
    Memory::parse(text)
        .ok_or_else(|| format!("found {text:?}, expected {}", plugsync::model::quantity::MEMORY_EXPECTED))
}

impl AdmissionArgs {
    /// The policy from the file (if any) with the flags on top; empty when nothing was given.
    pub fn policy(&self) -> anyhow::Result<AdmissionPolicy> {
        let from_file = match &self.admission {
            Some(path) => {
                let bytes =
                    std::fs::read(path).with_context(|| format!("reading admission policy {}", path.display()))?;
                AdmissionPolicy::parse(&path.display().to_string(), &bytes).map_err(|problems| {
                    let lines: Vec<String> = problems.iter().map(ToString::to_string).collect();
                    anyhow::anyhow!("admission policy {} is invalid:\n{}", path.display(), lines.join("\n"))
                })?
            }
            None => AdmissionPolicy::default(),
        };
        Ok(from_file.overridden_by(AdmissionPolicy {
            allowed_image_prefixes: self.allow_image_prefix.clone(),
            max_replicas: self.max_replicas,
            max_cpu: self.max_cpu,
            max_memory: self.max_memory,
            max_fleet_cpu: self.max_fleet_cpu,
            max_fleet_memory: self.max_fleet_memory,
        }))
    }
}

/// The policy's verdict on a fleet read from `dir`, each refusal with its manifest line.
pub fn judge(policy: &AdmissionPolicy, fleet: &Fleet, dir: &std::path::Path) -> anyhow::Result<Vec<Refusal>> {
    let mut refused = admit(policy, fleet);
    if !refused.is_empty() {
        locate(&mut refused, &plugsync::source::dir::read_fleet_dir(dir)?);
    }
    Ok(refused)
}
