//! keel-core stays sans-IO: no forbidden crate in its dependency graph, no clock, thread,
//! socket, file or OS randomness in its sources.

use std::path::PathBuf;
use std::process::Command;

const FORBIDDEN_CRATES: [&str; 10] = [
    "tokio",
    "mio",
    "hyper",
    "reqwest",
    "tungstenite",
    "tokio-tungstenite",
    "turmoil",
    "async-std",
    "rand",
    "getrandom",
];

const FORBIDDEN_CALLS: [&str; 12] = [
    "Instant::now",
    "SystemTime",
    "thread::spawn",
    "thread::sleep",
    "std::net",
    "std::fs",
    "std::process",
    "std::env",
    "thread_rng",
    "OsRng",
    "tokio::",
    "File::",
];

fn core_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("core")
}

/// The names of the packages `package` depends on for its normal (non-dev) build.
fn normal_dependencies(package: &str) -> Vec<String> {
    let out = Command::new(env!("CARGO"))
        .args(["tree", "-p", package, "-e", "normal", "--prefix", "none"])
        .args(["--format", "{p}", "--offline"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo tree runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tree = String::from_utf8(out.stdout).unwrap();
    let names: Vec<String> = tree
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .collect();
    assert!(
        names.iter().any(|n| n == package),
        "unexpected cargo tree output: {tree}"
    );
    names
}

#[test]
fn core_dependency_graph_has_no_io_crates() {
    let names = normal_dependencies("keel-core");
    for bad in FORBIDDEN_CRATES {
        assert!(
            !names.iter().any(|n| n == bad),
            "keel-core depends on {bad}: {names:?}"
        );
    }
}

#[test]
fn core_sources_make_no_io_calls() {
    let mut stack = vec![core_dir().join("src")];
    let mut files = 0;
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
                continue;
            }
            files += 1;
            let text = std::fs::read_to_string(&p).unwrap();
            for (n, line) in text.lines().enumerate() {
                let code = line.split("//").next().unwrap_or("");
                for bad in FORBIDDEN_CALLS {
                    assert!(
                        !code.contains(bad),
                        "{}:{}: `{bad}` in keel-core",
                        p.display(),
                        n + 1
                    );
                }
            }
        }
    }
    assert!(files > 5);
}

#[test]
fn production_binary_pulls_in_no_simulator() {
    let names = normal_dependencies("keel-runtime");
    assert!(
        names.iter().any(|n| n == "keel-venue"),
        "keel-venue is a normal dependency (the embedded default)"
    );
    assert!(
        !names.iter().any(|n| n == "keel-sim"),
        "the turmoil harness reached the binary: {names:?}"
    );
    assert!(
        !names.iter().any(|n| n == "turmoil"),
        "turmoil reached the binary: {names:?}"
    );
}

/// The core's layers, lowest first: a module may import its own layer and the ones below it.
const CORE_LAYERS: [&str; 4] = ["wire", "market", "trading", "engine"];

#[test]
fn core_layers_import_only_downwards() {
    let src = core_dir().join("src");
    let mut checked = 0;
    for (level, layer) in CORE_LAYERS.iter().enumerate() {
        let mut stack = vec![src.join(layer)];
        while let Some(dir) = stack.pop() {
            for e in std::fs::read_dir(dir).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    stack.push(p);
                    continue;
                }
                checked += 1;
                let text = std::fs::read_to_string(&p).unwrap();
                for (n, line) in text.lines().enumerate() {
                    let code = line.split("//").next().unwrap_or("");
                    for higher in &CORE_LAYERS[level + 1..] {
                        assert!(
                            !code.contains(&format!("crate::{higher}")),
                            "{}:{}: the {layer} layer imports from {higher}, above it",
                            p.display(),
                            n + 1
                        );
                    }
                }
            }
        }
        // The values below every layer never import a layer.
        for file in ["decimal.rs", "rng.rs", "time.rs"] {
            let text = std::fs::read_to_string(src.join(file)).unwrap();
            for l in CORE_LAYERS {
                assert!(
                    !text
                        .lines()
                        .any(|x| x.trim_start().starts_with("use")
                            && x.contains(&format!("crate::{l}"))),
                    "{file} imports crate::{l}"
                );
            }
        }
    }
    assert!(checked > 20, "only {checked} files checked");
}
