//! The parse floor of `benches/scale.sh`: reads every manifest file under a folder and parses
//! it into a generic YAML value with the same library portico uses, on one thread. Prints
//! the seconds it took. Not a test.

use std::path::{Path, PathBuf};
use std::time::Instant;

/// The allocator portico uses, so the floor is not slower for a reason portico avoids.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("a readable folder") {
        let path = entry.expect("an entry").path();
        if path.is_dir() {
            files(&path, out);
        } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            out.push(path);
        }
    }
}

fn main() {
    let dir = std::env::args().nth(1).expect("usage: parse_floor DIR");
    let mut paths = Vec::new();
    files(Path::new(&dir), &mut paths);
    paths.sort();
    let started = Instant::now();
    let mut documents = 0usize;
    for path in &paths {
        let text = std::fs::read_to_string(path).expect("a readable file");
        for document in serde_yaml::Deserializer::from_str(&text) {
            let value: serde_yaml::Value =
                serde::Deserialize::deserialize(document).expect("valid YAML");
            documents += usize::from(!value.is_null());
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    eprintln!("parsed {documents} documents in {} files", paths.len());
    println!("{seconds:.3}");
}
