//! `faultline init-target DIR [--name NAME]`: the starting point of a new target — a
//! commented target.yaml and a stdio adapter skeleton (adapter.py) with the parts to write
//! marked TODO, from the templates in `templates/target/`.
//!
//! It never overwrites: if either file exists, nothing is written.

use super::cli::InitTargetArgs;
use anyhow::{bail, Context, Result};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

const TARGET_YAML: &str = include_str!("../../templates/target/target.yaml");
const ADAPTER_PY: &str = include_str!("../../templates/target/adapter.py");
/// The token the templates carry where the target's name goes.
const NAME_TOKEN: &str = "@NAME@";

pub fn run(args: &InitTargetArgs) -> ExitCode {
    match init_target(&args.dir, args.name.as_deref()) {
        Ok(files) => {
            for f in &files {
                println!("wrote {}", f.display());
            }
            let dir = args.dir.display();
            println!(
                "next: fill in the TODOs of both files, then\n  \
                 faultline probe-target --target {dir} --nodes 3   # does every op work?\n  \
                 faultline run --target {dir} --nodes 3 --nemesis none --time-limit 10s"
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(3)
        }
    }
}

/// Write `target.yaml` and `adapter.py` into `dir` (created if missing); returns their
/// paths. Fails before writing anything if either exists.
pub fn init_target(dir: &Path, name: Option<&str>) -> Result<Vec<PathBuf>> {
    let name = match name {
        Some(n) => n.to_string(),
        None => default_name(dir)?,
    };
    // The same rule as a target name given to `--target`, so `--target NAME` finds it
    // once the directory sits under targets/.
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        bail!("target name {name:?} may only contain letters, digits, '-' and '_' (give one with --name)");
    }
    let files = [
        (dir.join("target.yaml"), TARGET_YAML, 0o644),
        (dir.join("adapter.py"), ADAPTER_PY, 0o755),
    ];
    for (path, _, _) in &files {
        if path.exists() || path.is_symlink() {
            bail!(
                "{} exists already; init-target writes only new files (move it away or choose another directory)",
                path.display()
            );
        }
    }
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut written = Vec::new();
    for (path, template, mode) in files {
        write_new(&path, &template.replace(NAME_TOKEN, &name), mode)?;
        written.push(path);
    }
    Ok(written)
}

/// The directory's own name, e.g. `mykv` for `targets/mykv`.
fn default_name(dir: &Path) -> Result<String> {
    let abs =
        std::path::absolute(dir).with_context(|| format!("cannot resolve {}", dir.display()))?;
    abs.components()
        .next_back()
        .and_then(|c| c.as_os_str().to_str())
        .map(str::to_string)
        .with_context(|| {
            format!(
                "cannot name the target after {}; give --name",
                dir.display()
            )
        })
}

/// Create `path` (it must not exist: a file that appeared since the check is left alone).
fn write_new(path: &Path, text: &str, mode: u32) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    f.write_all(text.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::target::{Protocol, ReadyCheck, TargetSpec};

    #[test]
    fn the_generated_target_loads_and_validates_and_uses_the_adapter() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("mykv");
        let files = init_target(&dir, None).unwrap();
        assert_eq!(files.len(), 2);
        let spec = TargetSpec::load(&dir.join("target.yaml")).unwrap();
        assert_eq!(spec.name, "mykv");
        assert_eq!(spec.client.protocol, Protocol::Stdio);
        assert_eq!(
            spec.client.command,
            vec!["python3".to_string(), "{target_dir}/adapter.py".to_string()]
        );
        assert_eq!(spec.ready.check, ReadyCheck::Client);
        let adapter = std::fs::read_to_string(dir.join("adapter.py")).unwrap();
        assert!(adapter.contains("adapter for mykv"));
        assert!(!adapter.contains(NAME_TOKEN), "name not filled in");
        for f in ["node_read", "node_write", "node_cas", "node_leaders"] {
            assert!(adapter.contains(&format!("def {f}(")), "{f} missing");
        }
    }

    #[test]
    fn the_generated_target_resolves_into_a_plan() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("t");
        init_target(&dir, Some("my_kv")).unwrap();
        let o = crate::spec::Overrides {
            target: Some(dir.join("target.yaml").display().to_string()),
            nemesis: Some("none".into()),
            nodes: Some(3),
            ..Default::default()
        };
        let plan = crate::spec::Plan::resolve(
            &crate::spec::SpecRoots::default_roots(),
            &o,
            crate::spec::HostsChoice::Loopback,
        )
        .unwrap();
        assert_eq!(plan.target.spec.name, "my_kv");
        assert_eq!(plan.nodes.len(), 3);
    }

    #[test]
    fn existing_files_are_never_overwritten() {
        let tmp = tempfile::tempdir().unwrap();
        let adapter = tmp.path().join("adapter.py");
        std::fs::write(&adapter, "mine").unwrap();
        let err = format!("{:#}", init_target(tmp.path(), Some("x")).unwrap_err());
        assert!(err.contains("adapter.py exists already"), "{err}");
        assert_eq!(std::fs::read_to_string(&adapter).unwrap(), "mine");
        // Nothing half-written either.
        assert!(!tmp.path().join("target.yaml").exists());
    }

    #[test]
    fn a_name_that_cannot_name_a_target_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let err = format!(
            "{:#}",
            init_target(&tmp.path().join("a b"), None).unwrap_err()
        );
        assert!(err.contains("--name"), "{err}");
    }
}
