//! `hitl init` and `hitl demo`: a new workspace with the example matrix, policies and
//! requests. The examples under `requests/` are a snapshot of one day
//! ([`EXAMPLES_AT`]); a new workspace gets them moved to the time it is made
//! ([`live`]), so its first proposal has not expired.

use std::path::{Path, PathBuf};

use chrono::{DateTime, TimeDelta, Utc};

use crate::error::{Error, Result};
use crate::workspace::{ALLOWED_SIGNERS, MATRIX_FILE, SETTINGS_FILE};

/// The instant the static examples under `requests/` describe (docs/matrix.md): after
/// the last of them was made, the day they were written.
pub const EXAMPLES_AT: &str = "2026-11-27T16:00:00Z";

/// Every example request of the repository root, by file name: the demo's workspace
/// holds all of them.
pub const EXAMPLE_REQUESTS: [(&str, &str); 13] = [
    (
        "contract-clause-acme",
        include_str!("../../requests/contract-clause-acme.yaml"),
    ),
    (
        "crm-stage-acme",
        include_str!("../../requests/crm-stage-acme.yaml"),
    ),
    (
        "draft-reply-5531",
        include_str!("../../requests/draft-reply-5531.yaml"),
    ),
    (
        "email-contract-terms",
        include_str!("../../requests/email-contract-terms.yaml"),
    ),
    (
        "email-customer-5531",
        include_str!("../../requests/email-customer-5531.yaml"),
    ),
    (
        "hr-update-emp-204",
        include_str!("../../requests/hr-update-emp-204.yaml"),
    ),
    (
        "iam-grant-ci-deployer",
        include_str!("../../requests/iam-grant-ci-deployer.yaml"),
    ),
    (
        "prod-config-checkout",
        include_str!("../../requests/prod-config-checkout.yaml"),
    ),
    (
        "refund-4711",
        include_str!("../../requests/refund-4711.yaml"),
    ),
    (
        "refund-4712",
        include_str!("../../requests/refund-4712.yaml"),
    ),
    (
        "robot-pick-cell7",
        include_str!("../../requests/robot-pick-cell7.yaml"),
    ),
    (
        "summarize-runbook",
        include_str!("../../requests/summarize-runbook.yaml"),
    ),
    (
        "vendor-payment-acme-logistics",
        include_str!("../../requests/vendor-payment-acme-logistics.yaml"),
    ),
];

/// The example `text` moved in time so that [`EXAMPLES_AT`] becomes `now`: every
/// timestamp in it (`YYYY-MM-DDTHH:MM:SSZ`, the form the examples use) shifts by the
/// same amount, so ages, expiries and their order stay as the examples describe.
#[must_use]
pub fn live(text: &str, now: DateTime<Utc>) -> String {
    let at = DateTime::parse_from_rfc3339(EXAMPLES_AT).map_or(now, |t| t.with_timezone(&Utc));
    let now = chrono::SubsecRound::trunc_subsecs(now, 0);
    shift_times(text, now - at)
}

/// Shifts every `YYYY-MM-DDTHH:MM:SSZ` timestamp in `text` by `by`.
#[must_use]
pub fn shift_times(text: &str, by: TimeDelta) -> String {
    const LEN: usize = "2026-11-27T16:00:00Z".len();
    let bytes = text.as_bytes();
    let shape = |w: &[u8]| {
        w.iter().enumerate().all(|(i, b)| match i {
            4 | 7 => *b == b'-',
            10 => *b == b'T',
            13 | 16 => *b == b':',
            19 => *b == b'Z',
            _ => b.is_ascii_digit(),
        })
    };
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < bytes.len() {
        if let Some(window) = bytes.get(i..i + LEN)
            && shape(window)
            && let Some(t) = text
                .get(i..i + LEN)
                .and_then(|w| DateTime::parse_from_rfc3339(w).ok())
                .and_then(|t| t.with_timezone(&Utc).checked_add_signed(by))
        {
            out.push_str(&t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
            i += LEN;
            continue;
        }
        let Some(c) = text.get(i..).and_then(|rest| rest.chars().next()) else {
            break;
        };
        out.push(c);
        i += c.len_utf8();
    }
    out
}

pub const FILES: [(&str, &str); 17] = [
    (MATRIX_FILE, include_str!("../../approval-matrix.yaml")),
    (
        "requests/refund-4711.yaml",
        include_str!("../../requests/refund-4711.yaml"),
    ),
    (ALLOWED_SIGNERS, ALLOWED_SIGNERS_STUB),
    (SETTINGS_FILE, SETTINGS_STUB),
    ("README.md", README_STUB),
    (
        "policies/change_window.rego",
        include_str!("../../policies/change_window.rego"),
    ),
    (
        "policies/change_window_test.rego",
        include_str!("../../policies/change_window_test.rego"),
    ),
    (
        "policies/data_classification.rego",
        include_str!("../../policies/data_classification.rego"),
    ),
    (
        "policies/data_classification_test.rego",
        include_str!("../../policies/data_classification_test.rego"),
    ),
    (
        "policies/fixtures_test.rego",
        include_str!("../../policies/fixtures_test.rego"),
    ),
    (
        "policies/limits.rego",
        include_str!("../../policies/limits.rego"),
    ),
    (
        "policies/limits_test.rego",
        include_str!("../../policies/limits_test.rego"),
    ),
    (
        "policies/rbac.rego",
        include_str!("../../policies/rbac.rego"),
    ),
    (
        "policies/rbac_test.rego",
        include_str!("../../policies/rbac_test.rego"),
    ),
    (
        "policies/sources.rego",
        include_str!("../../policies/sources.rego"),
    ),
    (
        "policies/sources_test.rego",
        include_str!("../../policies/sources_test.rego"),
    ),
    (
        "policies/data/rbac.json",
        include_str!("../../policies/data/rbac.json"),
    ),
];

const ALLOWED_SIGNERS_STUB: &str = "\
# Who may sign hitl proposals, decisions and audit commits: one line per key, in
# OpenSSH's allowed-signers format. Agents sign their proposals, approvers their
# decisions; commit this file before the first proposal.
#   <principal> namespaces=\"git,hitl,hitl-approval\" <key type> <public key>
# (an agent gets \"git,hitl\" only: `hitl-approval` signs approval files, which
# only approvers sign). Example:
#   lea@example.com namespaces=\"git,hitl,hitl-approval\" ssh-ed25519 AAAAC3Nza... lea@laptop
#   bot@agents.example.com namespaces=\"git,hitl\" ssh-ed25519 AAAAC3Nza... bot
";

const SETTINGS_STUB: &str = "\
# hitl settings; every key is optional.
[limits]
# The byte cap for one proposal file.
max_request_bytes = 262144
";

const README_STUB: &str = "\
# Approval workspace

This folder is a `hitl` workspace: AI agents write action proposals to `requests/`,
`approval-matrix.yaml` says which tier each action falls into and who must approve it.

    hitl lint                        # check the matrix, every request and the policies
    hitl policy test                 # run the policies' tests
    hitl show refund-4711            # the evidence pack a reviewer sees
    hitl explain refund-4711         # why this tier, who may approve
    hitl propose refund-4711         # record the proposal (signed by the agent's key)
    hitl approve refund-4711         # a signed decision by an eligible approver
    hitl verify                      # check the whole audit

Signers (agents and approvers) are listed in `allowed_signers`; commit the workspace
before the first proposal.
";

/// Creates the workspace in `dir` (created if needed) and runs `git init` unless `dir`
/// is already inside a git repository. Writes nothing if any file already exists. The
/// example request is made [`live`] at `now`; `signer`, an `allowed_signers` line, is
/// added below the file's comments (the CLI finds it in git's configuration).
///
/// # Errors
/// When a file exists, or a write or `git init` fails.
pub fn init(dir: &Path, now: DateTime<Utc>, signer: Option<&str>) -> Result<Vec<PathBuf>> {
    let existing: Vec<PathBuf> = FILES
        .iter()
        .map(|(rel, _)| dir.join(rel))
        .filter(|p| p.exists())
        .collect();
    if !existing.is_empty() {
        return Err(Error::AlreadyExists { paths: existing });
    }
    let mut created = Vec::new();
    for (rel, contents) in FILES {
        let contents = match rel {
            r if r.starts_with("requests/") => live(contents, now),
            ALLOWED_SIGNERS => signer.map_or_else(
                || contents.to_owned(),
                |line| format!("{contents}{}\n", line.trim_end()),
            ),
            _ => contents.to_owned(),
        };
        let path = dir.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|source| Error::Write {
                path: parent.to_path_buf(),
                source,
            })?;
        }
        std::fs::write(&path, contents).map_err(|source| Error::Write {
            path: path.clone(),
            source,
        })?;
        created.push(PathBuf::from(rel));
    }
    if git2::Repository::discover(dir).is_err() {
        git2::Repository::init(dir)?;
        created.push(PathBuf::from(".git/"));
    }
    Ok(created)
}

/// Makes `dir` a git repository of its own (`git init`), even inside another
/// repository: what `hitl demo` writes and commits stays in it.
///
/// # Errors
/// When `git init` fails.
pub fn init_repository(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|source| Error::Write {
        path: dir.to_path_buf(),
        source,
    })?;
    git2::Repository::init(dir)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::FILES;

    fn walk(dir: &std::path::Path, base: &std::path::Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let p = entry.unwrap().path();
            if p.is_dir() {
                walk(&p, base, out);
            } else {
                out.push(
                    p.strip_prefix(base)
                        .unwrap()
                        .to_string_lossy()
                        .replace('\\', "/"),
                );
            }
        }
    }

    #[test]
    fn the_demo_ships_every_example_request() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let mut on_disk = Vec::new();
        walk(&root.join("requests"), &root, &mut on_disk);
        on_disk.sort();
        let shipped: Vec<String> = super::EXAMPLE_REQUESTS
            .iter()
            .map(|(id, _)| format!("requests/{id}.yaml"))
            .collect();
        assert_eq!(shipped, on_disk, "add new examples to EXAMPLE_REQUESTS");
    }

    #[test]
    fn live_moves_every_timestamp_so_the_documented_instant_is_now() {
        use chrono::TimeZone as _;
        let now = chrono::Utc
            .with_ymd_and_hms(2027, 3, 1, 12, 30, 5)
            .unwrap()
            .checked_add_signed(chrono::TimeDelta::milliseconds(250))
            .unwrap();
        let text = "requested_at: 2026-11-27T09:00:00Z\n\
                    sources: [{retrieved_at: 2026-11-27T08:58:00Z}]\n\
                    note: 2026-11-27 (not a timestamp), 2026-11-27T09:00:00+01:00 (not the form)\n\
                    expires_at: 2026-11-28T09:00:00Z # ü\n";
        assert_eq!(
            super::live(text, now),
            "requested_at: 2027-03-01T05:30:05Z\n\
             sources: [{retrieved_at: 2027-03-01T05:28:05Z}]\n\
             note: 2026-11-27 (not a timestamp), 2026-11-27T09:00:00+01:00 (not the form)\n\
             expires_at: 2027-03-02T05:30:05Z # ü\n"
        );
    }

    #[test]
    fn init_ships_every_example_policy() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let mut on_disk = Vec::new();
        walk(&root.join("policies"), &root, &mut on_disk);
        on_disk.sort();
        let mut shipped: Vec<String> = FILES
            .iter()
            .map(|(p, _)| (*p).to_owned())
            .filter(|p| p.starts_with("policies/"))
            .collect();
        shipped.sort();
        assert_eq!(
            shipped, on_disk,
            "add new example policies to scaffold::FILES"
        );
    }
}
