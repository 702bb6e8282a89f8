//! Compiles bpf/*.bpf.c into libbpf-rs skeletons, and bpf/fathom.h's layout table (sizes and
//! offsets as the C compiler sees them) for the ABI mirror test.

use libbpf_cargo::SkeletonBuilder;
use std::env;
use std::path::PathBuf;

const PROGRAMS: &[&str] = &[
    "flow", "sock", "proc", "drop", "probe", "policy", "shield", "l7",
];

fn main() {
    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let bpf_dir = manifest
        .join("../../bpf")
        .canonicalize()
        .expect("bpf/ directory");
    let out = PathBuf::from(env::var("OUT_DIR").expect("OUT_DIR"));
    let arch = match env::var("CARGO_CFG_TARGET_ARCH").as_deref() {
        Ok("x86_64") => "x86",
        Ok("aarch64") => "arm64",
        Ok("riscv64") => "riscv",
        Ok("s390x") => "s390",
        Ok("powerpc64") => "powerpc",
        _ => "x86",
    };

    for name in PROGRAMS {
        let src = bpf_dir.join(format!("{name}.bpf.c"));
        let skel = out.join(format!("{name}.skel.rs"));
        SkeletonBuilder::new()
            .source(&src)
            .clang_args([
                "-I".to_string(),
                bpf_dir.display().to_string(),
                // v3: atomic fetch-and-or / fetch-and-add with results (kernel ≥ 5.12).
                "-mcpu=v3".to_string(),
                format!("-D__TARGET_ARCH_{arch}"),
                "-Wall".to_string(),
                "-Wno-unused-function".to_string(),
            ])
            .build_and_generate(&skel)
            .unwrap_or_else(|e| panic!("building {}: {e:#}", src.display()));
        println!("cargo:rerun-if-changed={}", src.display());
    }
    for hdr in [
        "fathom.h",
        "common.h",
        "vmlinux.h",
        "policy.h",
        "shield.h",
        "l7.h",
        "tls.bpf.c",
    ] {
        println!("cargo:rerun-if-changed={}", bpf_dir.join(hdr).display());
    }

    cc::Build::new()
        .file(manifest.join("csrc/abi_layout.c"))
        .file(manifest.join("csrc/policy_abi_layout.c"))
        .file(manifest.join("csrc/abi_l7_layout.c"))
        .include(&bpf_dir)
        .warnings(true)
        .compile("fathom_abi_layout");
    println!("cargo:rerun-if-changed=csrc/abi_layout.c");
    println!("cargo:rerun-if-changed=csrc/policy_abi_layout.c");
    println!("cargo:rerun-if-changed=csrc/abi_l7_layout.c");
}
