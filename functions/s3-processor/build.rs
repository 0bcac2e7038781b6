//! Embeds every spec under infra/pipelines/ so the function ships with its datasets.
use std::fmt::Write as _;
use std::path::Path;

fn main() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../infra/pipelines");
    println!("cargo:rerun-if-changed={}", dir.display());
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
        println!("cargo:rerun-if-changed={}", p.display());
        let name = p.file_name().and_then(|n| n.to_str()).expect("utf-8 name");
        let path = p.canonicalize().expect("spec path");
        writeln!(
            code,
            "    ({name:?}, include_str!({:?})),",
            path.display().to_string()
        )
        .expect("write");
    }
    code.push_str("];\n");
    let out = Path::new(&std::env::var("OUT_DIR").expect("OUT_DIR")).join("specs.rs");
    std::fs::write(out, code).expect("write specs.rs");
}
