//! `wrun spec`: write a default config.json for a bundle, like `runc spec`.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

#[derive(Args, Debug)]
pub struct SpecArgs {
    /// The bundle directory to write config.json into.
    #[arg(short, long, default_value = ".")]
    pub bundle: PathBuf,
}

pub fn run(a: &SpecArgs) -> anyhow::Result<()> {
    let path = a.bundle.join("config.json");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
        .with_context(|| {
            format!(
                "{}: cannot write a new config.json (remove the existing one first)",
                path.display()
            )
        })?;
    let text = serde_json::to_string_pretty(&wrun::spec::default_config())?;
    writeln!(f, "{text}").with_context(|| format!("write {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_config_parses_as_a_runtime_spec() {
        let spec: oci_spec::runtime::Spec = serde_json::from_value(wrun::spec::default_config()).unwrap();
        assert!(wrun::spec::version_supported(spec.version()));
        assert_eq!(spec.process().as_ref().unwrap().args().as_ref().unwrap()[0], "sh");
    }
}
