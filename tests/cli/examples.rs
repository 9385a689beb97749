//! `show`, `explain` and `lint` on the example workspace at the repository root, the
//! check that the test clock really reaches the binary, and docs/matrix.md's table of
//! the examples checked against `show --at`.

use serde_json::Value;

use crate::support::{
    NOW, ROOT, hitl, hitl_at, hitl_now, request_ids, root, run, snapshot, stderr, stdout,
};

/// What the article says each example request must get.
struct Expected {
    id: &'static str,
    tier: u64,
    approvals: u64,
    /// Eligible roles, in order.
    roles: &'static [&'static str],
    /// The role a limit moved the approval away from.
    escalated_from: Option<&'static str>,
    self_approval: bool,
    change_window: Option<&'static str>,
}

const fn row(
    id: &'static str,
    tier: u64,
    approvals: u64,
    roles: &'static [&'static str],
) -> Expected {
    Expected {
        id,
        tier,
        approvals,
        roles,
        escalated_from: None,
        self_approval: false,
        change_window: None,
    }
}

#[rustfmt::skip]
const EXPECTED: [Expected; 13] = [
    row("summarize-runbook", 0, 0, &[]),
    Expected { self_approval: true, ..row("draft-reply-5531", 1, 1, &[]) },
    row("crm-stage-acme", 2, 1, &["revenue-ops"]),
    row("refund-4711", 3, 1, &["support-lead"]),
    Expected { escalated_from: Some("support-lead"), ..row("refund-4712", 3, 1, &["revenue-ops"]) },
    row("email-customer-5531", 3, 1, &["support-lead"]),
    // Classified like any customer email; the policies deny it (confidential source).
    row("email-contract-terms", 3, 1, &["support-lead"]),
    row("contract-clause-acme", 3, 1, &["legal"]),
    row("hr-update-emp-204", 3, 1, &["hr-data-owner"]),
    row("vendor-payment-acme-logistics", 3, 1, &["finance-approver"]),
    // Tier 4's own change window applies: the IAM route names none of its own.
    Expected { change_window: Some("production"), ..row("iam-grant-ci-deployer", 4, 2, &["iam-owner", "security-approver"]) },
    Expected { change_window: Some("production"), ..row("prod-config-checkout", 4, 2, &["service-owner", "change-manager"]) },
    Expected { change_window: Some("robot-shift"), ..row("robot-pick-cell7", 5, 2, &["operator", "safety-supervisor"]) },
];

fn explain_json(id: &str) -> Value {
    let out = run(hitl_now().args(["-C", ROOT, "explain", id, "--format", "json"]));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    serde_json::from_str(&stdout(&out)).expect("explain prints JSON")
}

#[test]
fn the_tier_table_covers_every_example_request() {
    let mut table: Vec<&str> = EXPECTED.iter().map(|e| e.id).collect();
    table.sort_unstable();
    assert_eq!(table, request_ids());
}

#[test]
fn explain_json_gives_each_example_the_tier_and_roles_of_the_article() {
    for e in &EXPECTED {
        let j = explain_json(e.id);
        let ctx = e.id;
        for key in [
            "request",
            "tier",
            "rules",
            "approvals_required",
            "eligible_roles",
            "missing_evidence",
            "warnings",
        ] {
            assert!(j.get(key).is_some(), "{ctx}: no `{key}` in {j:#}");
        }
        assert_eq!(j["request"], e.id, "{ctx}");
        assert_eq!(j["tier"], e.tier, "{ctx}: tier");
        assert_eq!(j["approvals_required"], e.approvals, "{ctx}: approvals");
        let roles: Vec<&str> = j["eligible_roles"]
            .as_array()
            .expect("eligible_roles is a list")
            .iter()
            .map(|r| r.as_str().expect("a role name"))
            .collect();
        assert_eq!(roles, e.roles, "{ctx}: eligible roles");
        let escalated: Vec<Option<&str>> = j["approvers"]
            .as_array()
            .expect("approvers is a list")
            .iter()
            .map(|a| a.get("escalated_from").and_then(Value::as_str))
            .collect();
        let want: Vec<Option<&str>> = e
            .roles
            .iter()
            .enumerate()
            .map(|(i, _)| if i == 0 { e.escalated_from } else { None })
            .collect();
        assert_eq!(escalated, want, "{ctx}: escalation");
        assert_eq!(j["self_approval"], e.self_approval, "{ctx}: self-approval");
        assert_eq!(
            j["change_window"].as_str(),
            e.change_window,
            "{ctx}: change window"
        );
        assert_eq!(
            j["missing_evidence"],
            Value::Array(vec![]),
            "{ctx}: the examples carry all the evidence their tier requires"
        );
        let rules = j["rules"].as_array().expect("rules is a list");
        assert!(
            rules.iter().any(|r| r["tier"] == e.tier),
            "{ctx}: a matching rule gives tier {}: {rules:?}",
            e.tier
        );
        assert_eq!(j["default_applied"], false, "{ctx}");
    }
}

#[test]
fn show_every_example_request_as_table_json_and_markdown() {
    for id in request_ids() {
        for (format, ext) in [("table", "txt"), ("json", "json"), ("markdown", "md")] {
            let assert = hitl_now()
                .args(["-C", ROOT, "show", &id, "--format", format])
                .assert()
                .code(0)
                .stderr_eq("")
                .stdout_eq(snapshot(format!("snapshots/show_{id}.{ext}")));
            if format == "json" {
                let pack: Value =
                    serde_json::from_slice(&assert.get_output().stdout).expect("JSON");
                let explained = explain_json(&id);
                assert_eq!(pack["request"], id.as_str());
                assert_eq!(pack["risk_tier"], explained["tier"], "{id}");
                assert_eq!(pack["assembled_at"], "2026-11-27T16:00:00Z", "{id}");
            }
        }
    }
}

#[test]
fn show_defaults_to_the_table() {
    hitl_now()
        .args(["-C", ROOT, "show", "refund-4711"])
        .assert()
        .code(0)
        .stdout_eq(snapbox::file!["../snapshots/show_refund-4711.txt"].raw());
}

#[test]
fn explain_every_example_request_as_text_and_json() {
    for id in request_ids() {
        for (format, ext) in [("table", "txt"), ("json", "json")] {
            hitl_now()
                .args(["-C", ROOT, "explain", &id, "--format", format])
                .assert()
                .code(0)
                .stderr_eq("")
                .stdout_eq(snapshot(format!("snapshots/explain_{id}.{ext}")));
        }
    }
}

#[test]
fn lint_passes_on_the_example_workspace() {
    hitl_now()
        .args(["-C", ROOT, "lint"])
        .assert()
        .code(0)
        .stderr_eq("")
        .stdout_eq(snapbox::file!["../snapshots/lint_example.txt"].raw());
    let out = run(hitl_now().args(["-C", ROOT, "lint", "--format", "json"]));
    assert_eq!(out.status.code(), Some(0));
    let report: Value = serde_json::from_str(&stdout(&out)).expect("JSON");
    assert_eq!(report["errors"], 0);
    assert_eq!(report["requests"], request_ids().len());
}

/// The clock the test build reads must be the one the test set, in both directions: a
/// snapshot taken on the real clock would pass today and fail tomorrow.
#[test]
fn the_test_clock_sets_the_clock_the_binary_reads() {
    // refund-4711: requested 2026-11-27T09:00Z, expires 2026-11-28T09:00Z.
    let expiration_row = |time: &str| {
        let out = run(hitl_at(time).args(["-C", ROOT, "show", "refund-4711"]));
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        stdout(&out)
            .lines()
            .find(|l| l.contains("Expiration"))
            .expect("an Expiration row")
            .to_owned()
    };
    let before = expiration_row(NOW);
    assert!(before.contains("2026-11-28T09:00:00+00:00"), "{before}");
    assert!(
        !before.contains("(EXPIRED)"),
        "not expired at {NOW}: {before}"
    );
    let after = expiration_row("2026-11-28 09:30:00");
    assert!(after.contains("(EXPIRED)"), "expired a day later: {after}");

    let assembled_at = |time: &str| {
        let out = run(hitl_at(time).args(["-C", ROOT, "show", "refund-4711", "--format", "json"]));
        let pack: Value = serde_json::from_str(&stdout(&out)).expect("JSON");
        (
            pack["assembled_at"].clone(),
            pack["expired"].clone(),
            pack["warnings"].clone(),
        )
    };
    let (at, expired, warnings) = assembled_at("2026-11-27 08:00:00");
    assert_eq!(at, "2026-11-27T08:00:00Z");
    assert_eq!(expired, false);
    assert_eq!(
        warnings,
        serde_json::json!([
            {"code": "future-request", "message": "requested_at 2026-11-27T09:00:00+00:00 is in the future"},
            {"code": "future-source", "message": "source `ticket-5531` claims to be retrieved in the future"},
            {"code": "future-source", "message": "source `charge-ch_981` claims to be retrieved in the future"},
        ])
    );
    let (at, expired, _) = assembled_at("2027-03-01 12:00:00");
    assert_eq!(at, "2027-03-01T12:00:00Z");
    assert_eq!(expired, true);
}

#[test]
fn lint_warns_about_every_expired_request_once_all_have_expired() {
    let out = run(hitl_at("2026-12-01 00:00:00").args(["-C", ROOT, "lint"]));
    assert_eq!(
        out.status.code(),
        Some(0),
        "expiry is a warning, not an error"
    );
    let text = stdout(&out);
    let expired = text
        .lines()
        .filter(|l| l.starts_with("warning[expired]: "))
        .count();
    assert_eq!(expired, request_ids().len(), "{text}");
    assert!(
        text.ends_with(&format!(
            "lint: 0 error(s), {expired} warning(s) in `approval-matrix.yaml` and {expired} request(s)\n"
        )),
        "{text}"
    );
}

/// The instant docs/matrix.md describes the examples at, from its heading.
fn documented_instant(doc: &str) -> String {
    let heading = doc
        .lines()
        .find_map(|l| l.strip_prefix("## The examples, as of "))
        .expect("docs/matrix.md has a section `## The examples, as of TIME`");
    heading.trim().to_owned()
}

/// One row of docs/matrix.md's examples table as `show --at` computes it: tier,
/// workflow, eligible roles, the policy outcome and the warning codes.
fn row_from_pack(id: &str, pack: &Value) -> String {
    let c = &pack["classification"];
    let d = &pack["policy_decision"];
    let joined = |items: Vec<String>| {
        if items.is_empty() {
            None
        } else {
            Some(items.join(", "))
        }
    };
    let roles = joined(
        c["eligible_roles"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["role"].as_str().unwrap().to_owned())
            .collect(),
    )
    .unwrap_or_else(|| "nobody".to_owned());
    let policy = if d["status"] != "evaluated" {
        d["status"].as_str().unwrap().to_owned()
    } else if d["allowed"] == false {
        "denied".to_owned()
    } else {
        let mut p = "allowed".to_owned();
        for e in d["escalate"].as_array().unwrap() {
            p.push_str(&format!(", escalates to {}", e["role"].as_str().unwrap()));
        }
        if !d["warn"].as_array().unwrap().is_empty() {
            p.push_str(", warns");
        }
        p
    };
    let mut codes: Vec<String> = pack["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["code"].as_str().unwrap().to_owned())
        .collect();
    codes.sort();
    codes.dedup();
    format!(
        "| `{id}` | {} | {} | {roles} | {policy} | {} |",
        c["tier"],
        c["workflow"].as_str().unwrap_or("none"),
        joined(codes).unwrap_or_else(|| "none".to_owned())
    )
}

/// docs/matrix.md promises what every example shows at one instant; `show --at` that
/// instant, with the real clock in the binary (no test clock), must show exactly that,
/// and the table must name every example and nothing else.
#[test]
fn docs_matrix_describes_every_example_as_show_at_the_documented_instant_shows_it() {
    let doc = std::fs::read_to_string(root().join("docs/matrix.md")).unwrap();
    let at = documented_instant(&doc);
    let section = &doc[doc.find("## The examples, as of ").unwrap()..];
    let documented: Vec<&str> = section.lines().filter(|l| l.starts_with("| `")).collect();
    let mut computed = Vec::new();
    for id in request_ids() {
        let out = run(hitl()
            .env_remove("HITL_TEST_NOW")
            .args(["-C", ROOT, "show", &id, "--at", &at, "--format", "json"]));
        assert_eq!(out.status.code(), Some(0), "{id}: {}", stderr(&out));
        let pack: Value = serde_json::from_str(&stdout(&out)).unwrap();
        assert_eq!(pack["assembled_at"], at, "{id}: evaluated at `--at`");
        computed.push(row_from_pack(&id, &pack));
    }
    assert_eq!(documented, computed, "docs/matrix.md's examples table");
}

/// `--at` is for looking, not for recording: the commands that record refuse it, and
/// a table output under `--at` says which instant it shows.
#[test]
fn at_is_accepted_by_read_only_commands_only_and_named_in_the_output() {
    for cmd in [
        &["show", "refund-4711"][..],
        &["explain", "refund-4711"],
        &["lint"],
        &["policy", "eval", "refund-4711"],
    ] {
        let out = run(hitl()
            .args(["-C", ROOT])
            .args(cmd)
            .args(["--at", "2026-11-27 16:00"]));
        assert_eq!(out.status.code(), Some(0), "{cmd:?}: {}", stderr(&out));
        if cmd[0] != "policy" {
            assert!(
                stdout(&out).starts_with("as of 2026-11-27T16:00:00Z (`--at`), not now\n"),
                "{cmd:?}: {}",
                stdout(&out)
            );
        }
    }
    for cmd in [
        &["propose", "refund-4711"][..],
        &["approve", "refund-4711"],
        &["reject", "refund-4711", "--reason-code", "x"],
        &["verify"],
        &["checkpoint"],
    ] {
        let out = run(hitl()
            .args(["-C", ROOT])
            .args(cmd)
            .args(["--at", "2026-11-27 16:00"]));
        assert_eq!(out.status.code(), Some(2), "{cmd:?} takes no `--at`");
        assert!(
            stderr(&out).contains("unexpected argument '--at'"),
            "{cmd:?}: {}",
            stderr(&out)
        );
    }
    let out = run(hitl().args(["-C", ROOT, "show", "refund-4711", "--at", "yesterday"]));
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("`yesterday` is not a time"),
        "{}",
        stderr(&out)
    );
}
