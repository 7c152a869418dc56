//! JSON Schema validation by ajv (npm, JSON Schema 2020-12, strict mode, formats checked): a
//! validator nobody here wrote, the one most editors and CI linters embed. One `node` process
//! checks a batch of documents.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const SCRIPT: &str = r#"
const Ajv2020 = require("ajv/dist/2020");
const addFormats = require("ajv-formats");
const fs = require("fs");
const ajv = new Ajv2020({ strict: true, allErrors: true });
addFormats(ajv);
const validate = ajv.compile(JSON.parse(fs.readFileSync(process.argv[1], "utf8")));
const documents = JSON.parse(fs.readFileSync(0, "utf8"));
console.log(JSON.stringify(documents.map((d) => validate(d) ? [] :
  validate.errors.map((e) => (e.instancePath || "/") + " " + e.message))));
"#;

/// A JSON Schema, checked by ajv.
pub struct Schema {
    path: PathBuf,
    _dir: Option<tempfile::TempDir>,
}

impl Schema {
    /// A committed schema: `schemas/<name>.schema.json`.
    pub fn committed(name: &str) -> Self {
        let path =
            Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("schemas/{name}.schema.json"));
        assert!(path.exists(), "{}", path.display());
        Self { path, _dir: None }
    }

    /// A schema given as text (for example what `portico schema` prints).
    pub fn from_text(text: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("schema.json");
        std::fs::write(&path, text).unwrap();
        Self {
            path,
            _dir: Some(dir),
        }
    }

    /// Each document's errors (empty: valid), in order.
    pub fn errors_each(&self, documents: &[serde_json::Value]) -> Vec<Vec<String>> {
        let modules = std::env::var("PORTICO_TEST_NODE_MODULES")
            .expect("PORTICO_TEST_NODE_MODULES: bash .ci/test installs ajv with npm");
        let mut child = Command::new("node")
            .arg("-e")
            .arg(SCRIPT)
            .arg(&self.path)
            .env("NODE_PATH", &modules)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("node: bash .ci/test installs it");
        let input = serde_json::to_vec(documents).unwrap();
        child.stdin.take().unwrap().write_all(&input).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "ajv on {}: {}",
            self.path.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        let errors: Vec<Vec<String>> = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(errors.len(), documents.len());
        errors
    }

    /// One document's errors (empty: valid).
    pub fn errors(&self, document: &serde_json::Value) -> Vec<String> {
        self.errors_each(std::slice::from_ref(document)).remove(0)
    }

    /// Parses `json`, asserts it is valid, and returns it.
    pub fn assert_valid(&self, json: &str) -> serde_json::Value {
        let value: serde_json::Value =
            serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}: {json}"));
        let errors = self.errors(&value);
        assert!(errors.is_empty(), "{errors:?}\n{json}");
        value
    }
}

/// ajv refuses what the schema forbids and names where: the checker itself can fail.
#[test]
fn ajv_names_the_place_a_document_breaks_the_schema() {
    let schema = Schema::from_text(
        r#"{"$schema": "https://json-schema.org/draft/2020-12/schema", "type": "object",
            "properties": {"n": {"type": "integer", "minimum": 1}}, "additionalProperties": false}"#,
    );
    let errors = schema.errors_each(&[
        serde_json::json!({"n": 1}),
        serde_json::json!({"n": 0}),
        serde_json::json!({"m": 1}),
    ]);
    assert!(errors[0].is_empty(), "{errors:?}");
    assert!(errors[1][0].starts_with("/n "), "{errors:?}");
    assert!(errors[2][0].contains("additional"), "{errors:?}");
}
