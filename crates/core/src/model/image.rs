//! Image references as people write them and as engines report them.

/// `nginx` → `docker.io/library/nginx:latest`, so a spec and what Docker reports compare
/// equal however either spelled it (a digest reference is kept as is).
pub fn normalise(reference: &str) -> String {
    let (name, tag) = match reference.rsplit_once('@') {
        Some(_) => (reference.to_string(), String::new()),
        None => {
            let slash = reference.rfind('/').map(|i| i + 1).unwrap_or(0);
            match reference[slash..].rfind(':') {
                Some(i) => (reference[..slash + i].to_string(), reference[slash + i..].to_string()),
                None => (reference.to_string(), ":latest".to_string()),
            }
        }
    };
    let first = name.split('/').next().unwrap_or_default();
    let has_registry = name.contains('/') && (first.contains('.') || first.contains(':') || first == "localhost");
    let full = if has_registry {
        name
    } else if name.contains('/') {
        format!("docker.io/{name}")
    } else {
        format!("docker.io/library/{name}")
    };
    format!("{full}{tag}")
}

#[cfg(test)]
mod tests {
    #[test]
    fn spellings_of_one_image_compare_equal() {
        for (written, normal) in [
            ("nginx", "docker.io/library/nginx:latest"),
            ("nginx:1.27", "docker.io/library/nginx:1.27"),
            ("team/crm:2", "docker.io/team/crm:2"),
            ("registry.example.com/plugins/crm:1", "registry.example.com/plugins/crm:1"),
            ("localhost:5000/crm", "localhost:5000/crm:latest"),
            ("crm@sha256:abc", "docker.io/library/crm@sha256:abc"),
            ("", "docker.io/library/:latest"),
        ] {
            assert_eq!(super::normalise(written), normal, "{written}");
        }
    }
}
