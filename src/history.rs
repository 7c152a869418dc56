//! The record every apply leaves: who, when, from which commit and manifests, and what
//! changed.

use std::path::Path;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::plan::{Action, FieldChange, Origin, Plan, Summary};

/// Who applies and from which commit; filled in at the edge from flags and the environment.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Provenance {
    /// `--actor`, else the CI's actor variable, else the OS user.
    pub actor: String,
    /// The CI's commit variable, else `git rev-parse HEAD` of the manifests' repository.
    pub git_commit: Option<String>,
    /// The time given with `apply --now`, when the apply did not run on the system clock.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clock: Option<String>,
}

/// One change as recorded in history (no full objects, just what changed).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RecordedChange {
    /// Resource address.
    pub address: String,
    /// create / update / revoke / delete.
    pub action: Action,
    /// manifests / outside.
    pub origin: Origin,
    /// Fields, old → new.
    pub fields: Vec<FieldChange>,
}

/// One apply, as stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ApplyRecord {
    /// Sequential id (1, 2, …).
    pub id: i64,
    /// `apply`, or a day-2 operation on one login: `unlock`, `resend`.
    pub kind: String,
    /// UTC time of the commit, RFC 3339.
    pub applied_at: String,
    /// Who applied.
    pub actor: String,
    /// Git commit of the manifests, when known.
    pub git_commit: Option<String>,
    /// The clock the apply ran at when `--now` moved it (absent: the system clock).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clock: Option<String>,
    /// Digest of the manifest files.
    pub manifests_digest: String,
    /// The plan digest (as printed by plan).
    pub plan_digest: String,
    /// Counts per action.
    pub summary: Summary,
    /// Every change, in apply order.
    pub changes: Vec<RecordedChange>,
}

/// The change list of a plan as recorded.
pub fn recorded_changes(plan: &Plan) -> Vec<RecordedChange> {
    plan.changes.iter().map(recorded).collect()
}

fn recorded(c: &crate::plan::Change) -> RecordedChange {
    RecordedChange {
        address: c.address.to_string(),
        action: c.action,
        origin: c.origin,
        fields: c.fields().into_owned(),
    }
}

/// The JSON of [`recorded_changes`], written change by change (a big apply's list is never
/// held whole).
///
/// # Errors
/// What `out` returns.
pub fn write_recorded_changes(plan: &Plan, out: &mut impl std::io::Write) -> std::io::Result<()> {
    out.write_all(b"[")?;
    for (i, change) in plan.changes.iter().enumerate() {
        if i > 0 {
            out.write_all(b",")?;
        }
        serde_json::to_writer(&mut *out, &recorded(change))?;
    }
    out.write_all(b"]")
}

/// Who is applying: `--actor`, else a CI's actor variable, else the OS user.
pub fn actor(flag: Option<&str>) -> String {
    let ci = [
        "GITHUB_ACTOR",
        "GITLAB_USER_LOGIN",
        "BUILDKITE_BUILD_CREATOR",
        "CIRCLE_USERNAME",
        "USER",
        "USERNAME",
    ];
    flag.map(str::to_string)
        .or_else(|| {
            ci.iter()
                .find_map(|name| std::env::var(name).ok().filter(|v| !v.is_empty()))
        })
        .or_else(git_author)
        .unwrap_or_else(|| "unknown".to_string())
}

/// git's author here (`Name <email>`), for a container where no user variable is set.
fn git_author() -> Option<String> {
    let out = std::process::Command::new("git")
        .args(["var", "GIT_AUTHOR_IDENT"])
        .output()
        .ok()
        .filter(|o| o.status.success())?;
    let ident = String::from_utf8_lossy(&out.stdout);
    // `Name <email> 1700000000 +0100`: the name and address.
    let end = ident.find('>')?;
    Some(ident[..=end].trim().to_string()).filter(|a| !a.is_empty())
}

/// The commit being applied: a CI's commit variable, else `git rev-parse HEAD` in the
/// manifests' folder (with `-dirty` when the folder differs from it, as `git status` would
/// say: from `worktree`, what the plan found comparing the files with git's index, when it
/// knows; else from `git status`), else unknown.
pub fn git_commit(manifests: Option<&Path>, worktree: crate::gitindex::Worktree) -> Option<String> {
    let ci = [
        "GITHUB_SHA",
        "CI_COMMIT_SHA",
        "BUILDKITE_COMMIT",
        "CIRCLE_SHA1",
        "GIT_COMMIT",
    ];
    if let Some(sha) = ci
        .iter()
        .find_map(|name| std::env::var(name).ok().filter(|v| !v.is_empty()))
    {
        return Some(sha);
    }
    let path = manifests?;
    let dir = if path.is_dir() { path } else { path.parent()? };
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let head = git(&["rev-parse", "HEAD"])?;
    // Manifests that differ from the commit (edited, or not committed yet) are not that
    // commit: say so, as `git describe --dirty` does.
    let dirty = match worktree {
        crate::gitindex::Worktree::Indexed(untracked) => differs_from_head(dir, &untracked),
        crate::gitindex::Worktree::Unknown => None,
    }
    .unwrap_or_else(|| {
        crate::progress::phase("git status", || {
            git(&["status", "--porcelain", "--", "."]).is_some_and(|s| !s.is_empty())
        })
    });
    Some(if dirty { format!("{head}-dirty") } else { head })
}

/// Whether the folder `dir`, whose files have the bytes git's index lists for them but for
/// the `untracked` ones, differs from its commit: an untracked file git does not ignore, or
/// an index that differs from the commit (a change staged). Two quick questions to git
/// where `git status` would read every file's `stat` data again (0.14 s for 100,000
/// files). `None` when git does not answer.
fn differs_from_head(dir: &Path, untracked: &[std::path::PathBuf]) -> Option<bool> {
    let git = || {
        let mut git = std::process::Command::new("git");
        // Paths are paths, not patterns.
        git.arg("-C").arg(dir).env("GIT_LITERAL_PATHSPECS", "1");
        git
    };
    if !untracked.is_empty() {
        let out = git()
            .args(["ls-files", "-z", "--others", "--exclude-standard", "--"])
            .args(untracked)
            .output()
            .ok()
            .filter(|o| o.status.success())?;
        if !out.stdout.is_empty() {
            return Some(true);
        }
    }
    let status = git()
        .args(["diff-index", "--cached", "--quiet", "HEAD", "--", "."])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .ok()?;
    match status.code() {
        Some(0) => Some(false),
        Some(1) => Some(true),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{Action, Address, Change, Origin, Plan};

    #[test]
    fn streamed_change_list_is_the_json_of_the_list() {
        let change = |id: &str, action| Change {
            address: Address::Customer(id.into()),
            action,
            origin: Origin::Outside,
            fields: crate::plan::Fields::Listed(vec![crate::plan::FieldChange {
                field: "name".into(),
                old: None,
                new: Some("Ann \u{e9}".into()),
            }]),
            before: None,
            after: None,
            password: None,
            reason: None,
        };
        for changes in [
            vec![],
            vec![change("A", Action::Create)],
            vec![change("A", Action::Create), change("B\"", Action::Delete)],
        ] {
            let plan = Plan {
                changes,
                ..Plan::default()
            };
            let mut streamed = Vec::new();
            write_recorded_changes(&plan, &mut streamed).unwrap();
            assert_eq!(
                String::from_utf8(streamed).unwrap(),
                serde_json::to_string(&recorded_changes(&plan)).unwrap()
            );
        }
    }
}
