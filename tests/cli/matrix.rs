//! Broken matrices (`tests/fixtures/invalid/matrix/*.yaml`) and the article's approval
//! anti-patterns (`tests/fixtures/lint/<code>.yaml`), each run in a temporary workspace.

use serde_json::Value;

use crate::support::{
    example_workspace, hitl_now, root, run, snapshot, stderr, stdout, tree, workspace_with,
    yaml_stems,
};

struct MatrixCase {
    name: &'static str,
    /// `line:column` and the field path of each finding, in order.
    findings: &'static [(&'static str, &'static str)],
    needle: &'static str,
}

#[rustfmt::skip]
const MATRIX_CASES: &[MatrixCase] = &[
    MatrixCase { name: "bad-hours", findings: &[("199:12", "change_windows.robot-shift.hours")], needle: "the window must end after it starts" },
    MatrixCase { name: "bad-hours-format", findings: &[("195:12", "change_windows.production.hours")], needle: "`9am to 4pm` is not a time range" },
    MatrixCase { name: "bad-time-zone", findings: &[("193:15", "change_windows.production.timezone")], needle: "unknown time zone `Europe/Berln`" },
    MatrixCase { name: "default-tier-zero", findings: &[("12:15", "default_tier")], needle: "the default tier must not be 0" },
    // Both are reported at tier entries: the missing tier 5 at the list, the second tier 4
    // at the entry that repeats it.
    MatrixCase { name: "duplicate-tier", findings: &[("18:3", "tiers"), ("75:5", "tiers")], needle: "tier 4 is defined 2 times" },
    MatrixCase { name: "missing-tier", findings: &[("18:3", "tiers")], needle: "tier 1 is not defined" },
    MatrixCase { name: "owner-of-an-unknown-agent", findings: &[("211:5", "governance.agent_owners.ci-bot@agents.example.com")], needle: "`ci-bot@agents.example.com` is not listed in `governance.agents`" },
    MatrixCase { name: "rollback-approval-not-a-bool", findings: &[("51:24", "tiers[2].rollback_approval")], needle: "`true` or `false`" },
    MatrixCase { name: "unknown-evidence-field", findings: &[("45:33", "tiers[2].evidence[2]")], needle: "unknown evidence field `rollbak`\n  = hint: did you mean `rollback`?" },
];

#[test]
fn every_matrix_fixture_has_a_case() {
    let files = yaml_stems(&root().join("tests/fixtures/invalid/matrix"));
    let cases: Vec<&str> = MATRIX_CASES.iter().map(|c| c.name).collect();
    assert_eq!(files, cases);
}

#[test]
fn invalid_matrices_fail_lint_with_invalid_findings_and_show_with_exit_3() {
    for case in MATRIX_CASES {
        let name = case.name;
        let fixture = root().join(format!("tests/fixtures/invalid/matrix/{name}.yaml"));
        let ws = workspace_with(&fixture, &["refund-4711"]);
        let before = tree(ws.path());

        let lint = hitl_now()
            .current_dir(ws.path())
            .arg("lint")
            .assert()
            .code(1)
            .stderr_eq("")
            .stdout_eq(snapshot(format!("fixtures/invalid/matrix/{name}.lint.txt")));
        let out = stdout(lint.get_output());
        let findings: Vec<&str> = out
            .lines()
            .filter(|l| l.starts_with("error[") || l.starts_with("warning["))
            .collect();
        let want: Vec<String> = case
            .findings
            .iter()
            .map(|(at, field)| format!("error[invalid]: approval-matrix.yaml:{at}: `{field}`: "))
            .collect();
        assert_eq!(findings.len(), want.len(), "{name}:\n{out}");
        for (f, w) in findings.iter().zip(&want) {
            assert!(
                f.starts_with(w.as_str()),
                "{name}: `{f}` does not start with `{w}`"
            );
        }
        assert!(
            out.contains(case.needle),
            "{name}: `{}` not in\n{out}",
            case.needle
        );
        assert!(
            out.ends_with(&format!(
                "lint: {} error(s), 0 warning(s) in `approval-matrix.yaml` (requests not checked: the matrix is invalid)\n",
                want.len()
            )),
            "{name}:\n{out}"
        );

        hitl_now()
            .current_dir(ws.path())
            .args(["show", "refund-4711"])
            .assert()
            .code(3)
            .stdout_eq("")
            .stderr_eq(snapshot(format!("fixtures/invalid/matrix/{name}.stderr")));
        let explain = run(hitl_now()
            .current_dir(ws.path())
            .args(["explain", "refund-4711"]));
        assert_eq!(explain.status.code(), Some(3), "{name}: explain");

        assert_eq!(tree(ws.path()), before, "{name}: the workspace changed");
    }
}

/// The codes of the anti-pattern fixtures, one per file.
const LINT_CODES: [&str; 12] = [
    "agent-approver",
    "authority-gap",
    "empty-role",
    "no-change-window",
    "no-pending-timeout",
    "one-principal-quorum",
    "quorum-unreachable",
    "rollback-not-required",
    "sample-unreviewed",
    "self-approval",
    "unknown-role",
    "zero-approvals",
];

#[test]
fn every_lint_fixture_is_a_known_code() {
    let files = yaml_stems(&root().join("tests/fixtures/lint"));
    assert_eq!(files, LINT_CODES);
}

#[test]
fn the_example_matrix_alone_lints_clean() {
    let ws = example_workspace(&[]);
    hitl_now()
        .current_dir(ws.path())
        .arg("lint")
        .assert()
        .code(0)
        .stderr_eq("")
        .stdout_eq("lint: 0 error(s), 0 warning(s) in `approval-matrix.yaml` and 0 request(s)\n");
}

#[test]
fn each_anti_pattern_is_an_error_with_its_code() {
    for code in LINT_CODES {
        let fixture = root().join(format!("tests/fixtures/lint/{code}.yaml"));
        let ws = workspace_with(&fixture, &[]);
        let before = tree(ws.path());
        let assert = hitl_now()
            .current_dir(ws.path())
            .arg("lint")
            .assert()
            .code(1)
            .stderr_eq("")
            .stdout_eq(snapshot(format!("fixtures/lint/{code}.stdout")));
        let out = stdout(assert.get_output());
        assert!(
            out.contains(&format!("error[{code}]: approval-matrix.yaml:")),
            "{code}:\n{out}"
        );
        // Exactly one anti-pattern was injected.
        assert!(
            out.ends_with(
                "lint: 1 error(s), 0 warning(s) in `approval-matrix.yaml` and 0 request(s)\n"
            ),
            "{code}:\n{out}"
        );

        let json = run(hitl_now()
            .current_dir(ws.path())
            .args(["lint", "--format", "json"]));
        assert_eq!(json.status.code(), Some(1), "{code}: {}", stderr(&json));
        let report: Value = serde_json::from_str(&stdout(&json)).expect("JSON");
        assert_eq!(report["errors"], 1, "{code}");
        assert_eq!(report["findings"][0]["code"], code);
        assert_eq!(report["findings"][0]["severity"], "error");
        assert_eq!(tree(ws.path()), before, "{code}: the workspace changed");
    }
}

#[test]
fn anti_patterns_do_not_stop_show() {
    // A matrix with an anti-pattern still loads: `show` works, lint is what flags it.
    let fixture = root().join("tests/fixtures/lint/unknown-role.yaml");
    let ws = workspace_with(&fixture, &["hr-update-emp-204"]);
    let out = run(hitl_now().current_dir(ws.path()).args([
        "explain",
        "hr-update-emp-204",
        "--format",
        "json",
    ]));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let j: Value = serde_json::from_str(&stdout(&out)).expect("JSON");
    // Fail closed: the unknown role cannot approve, and the request says why.
    assert_eq!(j["eligible_roles"], serde_json::json!([]));
    let codes: Vec<&str> = j["warnings"]
        .as_array()
        .expect("warnings")
        .iter()
        .filter_map(|w| w["code"].as_str())
        .collect();
    assert!(codes.contains(&"unknown-role"), "{codes:?}");
    assert!(codes.contains(&"no-approver"), "{codes:?}");
}

/// A matrix the proofs of `hitl lint` fail on: the example matrix with `edits` (each
/// `(old, new)` replacing text found exactly once), and the findings lint must report,
/// all of them, in order, as `(code, line:column)`.
struct ProofCase {
    name: &'static str,
    edits: &'static [(&'static str, &'static str)],
    findings: &'static [(&'static str, &'static str)],
}

#[rustfmt::skip]
const PROOF_CASES: &[ProofCase] = &[
    // Two roles escalating to each other never reach finance-approver's 50,000 EUR: each
    // loops (escalation-cycle), and each chain stops short (authority-gap at the role that
    // closes the loop, one per chain a route or tier starts).
    ProofCase {
        name: "escalation cycle",
        edits: &[("    limits: {EUR: 10000}\n    escalates_to: finance-approver\n", "    limits: {EUR: 10000}\n    escalates_to: support-lead\n")],
        findings: &[("escalation-cycle", "165:5"), ("escalation-cycle", "169:5"), ("authority-gap", "165:5"), ("authority-gap", "169:5")],
    },
    // An escalation to a role that does not exist: unknown-role, and the chain stops there.
    ProofCase {
        name: "escalation to an unknown role",
        edits: &[("escalates_to: finance-approver", "escalates_to: finance-approvr")],
        findings: &[("unknown-role", "169:5"), ("authority-gap", "169:5")],
    },
    // The on_timeout escalation role must exist and have members.
    ProofCase {
        name: "timeout escalation to an unknown role",
        edits: &[("on_timeout: {escalate: revenue-ops}", "on_timeout: {escalate: revenue-opz}")],
        findings: &[("unknown-role", "54:5")],
    },
    ProofCase {
        name: "timeout escalation to an empty role",
        edits: &[("    members: [bianca@example.com]", "    members: []")],
        // Break-glass's role too: nobody could override.
        findings: &[("empty-role", "192:5"), ("empty-role", "224:3")],
    },
    // An agent in an escalation target, in the timeout role, and as the only member of a
    // route's role: agent-approver each time, and the route has nobody (no agent decides).
    ProofCase {
        name: "agents in escalation, timeout and route roles",
        edits: &[
            ("    members: [felix@example.com]", "    members: [felix@example.com, deploy-bot@agents.example.com]"),
            ("    members: [bianca@example.com]", "    members: [bianca@example.com, deploy-bot@agents.example.com]"),
            ("    members: [olga@example.com]", "    members: [support-copilot@agents.example.com]"),
        ],
        findings: &[("agent-approver", "173:5"), ("agent-approver", "185:5"), ("agent-approver", "192:5"), ("quorum-unreachable", "142:5")],
    },
    // The owner of an agent counts as the requester of what it submits: when the only
    // member of `legal` owns every agent, nobody may approve a contract clause...
    ProofCase {
        name: "the owner of every agent is the only member of a role",
        edits: &[
            ("    members: [olga@example.com]", "    members: [maria@example.com]"),
            ("deploy-bot@agents.example.com: dev@example.com", "deploy-bot@agents.example.com: maria@example.com"),
        ],
        findings: &[("quorum-unreachable", "142:5")],
    },
    // ...but when another agent, owned by someone else, may submit it, somebody can.
    ProofCase {
        name: "the owner of one agent is the only member of a role",
        edits: &[("    members: [olga@example.com]", "    members: [maria@example.com]")],
        findings: &[],
    },
    // Break-glass: an unknown role, and a review more people must give than its roles
    // have.
    ProofCase {
        name: "break-glass role unknown",
        edits: &[("  role: break-glass\n", "  role: break-glas\n")],
        findings: &[("unknown-role", "224:3")],
    },
    ProofCase {
        name: "break-glass review nobody can complete",
        edits: &[("    approvals: 2\n    roles: [security-approver, change-manager]\n", "    approvals: 3\n    roles: [security-approver, change-manager]\n")],
        findings: &[("quorum-unreachable", "224:3")],
    },
    // A tier with approvals but no approver roles: what no route owns falls to nobody.
    ProofCase {
        name: "tier without approver roles",
        edits: &[("    approver_roles: [support-lead]\n", "    approver_roles: []\n")],
        findings: &[("quorum-unreachable", "54:5")],
    },
];

#[test]
fn each_failed_proof_is_an_error_with_its_code_and_place() {
    let example = std::fs::read_to_string(root().join("approval-matrix.yaml")).expect("matrix");
    for case in PROOF_CASES {
        let name = case.name;
        let mut text = example.clone();
        for (old, new) in case.edits {
            assert_eq!(text.matches(old).count(), 1, "{name}: `{old}`");
            text = text.replacen(old, new, 1);
        }
        let ws = tempfile::TempDir::new().expect("a temporary folder");
        std::fs::write(ws.path().join("approval-matrix.yaml"), &text).expect("write the matrix");
        let before = tree(ws.path());
        let out = run(hitl_now()
            .current_dir(ws.path())
            .args(["lint", "--format", "json"]));
        let exit = if case.findings.is_empty() { 0 } else { 1 };
        assert_eq!(out.status.code(), Some(exit), "{name}: {}", stderr(&out));
        assert_eq!(stderr(&out), "", "{name}");
        let report: Value = serde_json::from_str(&stdout(&out)).expect("JSON");
        let findings = report["findings"].as_array().expect("findings");
        let got: Vec<(String, String)> = findings
            .iter()
            .map(|f| {
                assert_eq!(f["file"], "approval-matrix.yaml", "{name}: {f}");
                assert_eq!(f["severity"], "error", "{name}: {f}");
                (
                    f["code"].as_str().expect("code").to_owned(),
                    format!("{}:{}", f["line"], f["column"]),
                )
            })
            .collect();
        let want: Vec<(String, String)> = case
            .findings
            .iter()
            .map(|(c, at)| ((*c).to_owned(), (*at).to_owned()))
            .collect();
        assert_eq!(got, want, "{name}:\n{}", stdout(&out));
        assert_eq!(tree(ws.path()), before, "{name}: the workspace changed");
    }
}

#[test]
fn a_matrix_too_large_to_prove_is_a_warning_not_a_hang() {
    // 150 systems with a rule each and 10 name patterns: 7 action types x 160 systems
    // x 13 names x 10 amounts, more requests than lint classifies.
    let mut text = std::fs::read_to_string(root().join("approval-matrix.yaml")).expect("matrix");
    let systems: Vec<String> = (0..150).map(|i| format!("sys{i}")).collect();
    let mut rules = String::from("rules:\n");
    for s in &systems {
        rules.push_str(&format!(
            "  - id: rule-{s}\n    when: {{target_system: [{s}]}}\n    tier: 3\n"
        ));
    }
    for i in 0..10 {
        rules.push_str(&format!(
            "  - id: name-{i}\n    when: {{action_name: [\"tool{i}.*\"]}}\n    tier: 3\n"
        ));
    }
    let list = "systems: [docs, support, email, crm, payments, contracts, iam, prod-config, hr, erp, robot";
    assert_eq!(text.matches(list).count(), 1);
    text = text.replacen(list, &format!("{list}, {}", systems.join(", ")), 1);
    text = text.replacen("rules:\n", &rules, 1);
    let ws = tempfile::TempDir::new().expect("a temporary folder");
    std::fs::write(ws.path().join("approval-matrix.yaml"), &text).expect("write the matrix");
    let out = run(hitl_now()
        .current_dir(ws.path())
        .args(["lint", "--format", "json"]));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report: Value = serde_json::from_str(&stdout(&out)).expect("JSON");
    let findings = report["findings"].as_array().expect("findings");
    let got: Vec<(&str, &str, String)> = findings
        .iter()
        .map(|f| {
            (
                f["code"].as_str().expect("code"),
                f["severity"].as_str().expect("severity"),
                format!(
                    "{}:{}:{}",
                    f["file"].as_str().expect("file"),
                    f["line"],
                    f["column"]
                ),
            )
        })
        .collect();
    assert_eq!(
        got,
        [(
            "quorum-not-proved",
            "warning",
            "approval-matrix.yaml:1:1".to_owned()
        )],
        "{}",
        stdout(&out)
    );
}
