//! Compiles the datapath objects (`bpf/bpf_lxc.c` for endpoints,
//! `bpf/bpf_overlay.c` for the tunnel device, `bpf/bpf_host.c` for the
//! underlay device, `bpf/bpf_sock.c` for the cgroup socket hooks) with clang
//! into `OUT_DIR`,
//! where `src/loader.rs` embeds them. Set `CLANG` to use another compiler.

use std::{
    env,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{bail, Context, Result};

/// The objects to build: `bpf/<name>.c` becomes `$OUT_DIR/<name>.o`.
const OBJECTS: [&str; 4] = ["bpf_lxc", "bpf_overlay", "bpf_host", "bpf_sock"];

/// Every file under `dir` (recursively), for `rerun-if-changed`.
fn sources(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        if path.is_dir() {
            sources(&path, out)?;
        } else {
            out.push(path);
        }
    }
    Ok(())
}

fn main() -> Result<()> {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR")?);
    let bpf_dir = manifest_dir
        .join("../../bpf")
        .canonicalize()
        .context("the C datapath directory bpf/ must sit two levels above crates/datapath")?;
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);

    let mut files = Vec::new();
    sources(&bpf_dir, &mut files)?;
    files.sort();
    println!("cargo:rerun-if-changed={}", bpf_dir.display());
    for dir in ["lib", "include"] {
        let path = bpf_dir.join(dir);
        if path.exists() {
            println!("cargo:rerun-if-changed={}", path.display());
        }
    }
    for file in &files {
        println!("cargo:rerun-if-changed={}", file.display());
    }
    println!("cargo:rerun-if-env-changed=CLANG");

    let clang = env::var("CLANG").unwrap_or_else(|_| "clang".to_string());
    for name in OBJECTS {
        compile(&clang, &bpf_dir, &out_dir, name)?;
    }
    Ok(())
}

/// Compiles `bpf/<name>.c` into `<out_dir>/<name>.o`.
fn compile(clang: &str, bpf_dir: &Path, out_dir: &Path, name: &str) -> Result<()> {
    let source = bpf_dir.join(format!("{name}.c"));
    let object = out_dir.join(format!("{name}.o"));
    let output = Command::new(clang)
        .args(["-O2", "-g", "-target", "bpf", "-mcpu=v3"])
        .args(["-Wall", "-Wextra", "-Werror"])
        .arg("-I/usr/include/x86_64-linux-gnu")
        .arg(format!("-I{}", bpf_dir.join("include").display()))
        .arg(format!("-I{}", bpf_dir.join("lib").display()))
        .arg("-c")
        .arg(&source)
        .arg("-o")
        .arg(&object)
        .output();
    let output = match output {
        Ok(output) => output,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => bail!(
            "`{clang}` was not found: building cilium-datapath needs clang with the BPF target \
             (Debian: apt-get install clang llvm libbpf-dev), or set CLANG to its path"
        ),
        Err(err) => return Err(err).with_context(|| format!("running {clang}")),
    };
    if !output.status.success() {
        bail!(
            "{clang} failed to compile {}:\n{}{}",
            source.display(),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}
