//! Rebuild when a migration changes (they are embedded by `sqlx::migrate!`),
//! and link release binaries on Linux for a small resident footprint
//! (BENCHMARKS.md, "Idle RSS"): most of an idle valor's memory is its own
//! executable's pages, so what start-up makes the kernel map in is what counts.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
    println!("cargo:rerun-if-changed=link/startup-order.txt");
    let release = std::env::var("PROFILE").is_ok_and(|profile| profile == "release");
    let linux = std::env::var("CARGO_CFG_TARGET_OS").is_ok_and(|os| os == "linux");
    if !(release && linux) {
        return;
    }
    // Relative relocations as a compact bitmap (DT_RELR, glibc ≥ 2.36): the
    // loader reads a few KiB instead of a 1.2 MiB `.rela.dyn` at every start.
    println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    // The functions an idle `valor serve` runs, placed next to each other
    // (lld's --symbol-ordering-file; `scripts/startup-order.sh` regenerates
    // the list). Names the code no longer has are ignored, without warnings.
    let manifest = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default();
    let order = std::path::Path::new(&manifest).join("link/startup-order.txt");
    if order.is_file() {
        println!("cargo:rustc-link-arg-bins=-Wl,--symbol-ordering-file={}", order.display());
        println!("cargo:rustc-link-arg-bins=-Wl,--no-warn-symbol-ordering");
    }
}
