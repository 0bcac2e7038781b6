//! Embeds every spec under infra/pipelines/ so the function ships with its datasets.
//!
//! Checkouts may share one target dir (CI clones next to a developer's tree), and cargo
//! reuses a build script's output across them. So the specs' text is written into the
//! generated file (no include_str! of an absolute path into one checkout), and the
//! rerun-if-changed path is relative, which cargo resolves against the current package.
use std::fmt::Write as _;
use std::path::Path;

const SPECS_DIR: &str = "../../infra/pipelines";

fn main() {
    println!("cargo:rerun-if-changed={SPECS_DIR}");
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR");
    let dir = Path::new(&manifest_dir).join(SPECS_DIR);
    let mut specs: Vec<_> = std::fs::read_dir(&dir)
        .expect("infra/pipelines")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .collect();
    specs.sort();
    let mut code = String::from(
        "/// (file name, YAML) of every spec in infra/pipelines.\npub const EMBEDDED_SPECS: &[(&str, &str)] = &[\n",
    );
    for p in &specs {
        let name = p.file_name().and_then(|n| n.to_str()).expect("utf-8 name");
        let text = std::fs::read_to_string(p).expect("spec is UTF-8 text");
        writeln!(code, "    ({name:?}, {text:?}),").expect("write");
    }
    code.push_str("];\n");
    let out = Path::new(&std::env::var("OUT_DIR").expect("OUT_DIR")).join("specs.rs");
    std::fs::write(out, code).expect("write specs.rs");
}
