//! `hitl policy`: the example policy set's outcomes on every example request, the test
//! runner, and the fail-closed cases.

use serde_json::Value;

use crate::support::{
    ROOT, example_workspace, hitl, hitl_now, request_ids, run, stderr, stdout, tree,
};

type Outcome = (
    &'static str,
    bool,
    &'static [&'static str],
    &'static [&'static str],
    &'static [&'static str],
);

/// What the article's policy checks must say about each example request:
/// (id, allowed, deny rules, warn rules, escalated roles).
#[rustfmt::skip]
const OUTCOMES: [Outcome; 13] = [
    ("contract-clause-acme", true, &[], &[], &[]),
    ("crm-stage-acme", true, &[], &["sources.stale"], &[]),
    ("draft-reply-5531", true, &[], &[], &[]),
    ("email-contract-terms", false, &["classification.external-send"], &[], &[]),
    ("email-customer-5531", true, &[], &[], &[]),
    ("hr-update-emp-204", true, &[], &[], &[]),
    ("iam-grant-ci-deployer", true, &[], &[], &[]),
    // 16:00 UTC on a Friday: outside Tue-Thu 09:00-16:00 Berlin.
    ("prod-config-checkout", true, &[], &["change-window.closed"], &[]),
    ("refund-4711", true, &[], &[], &[]),
    ("refund-4712", true, &[], &[], &["revenue-ops"]),
    ("robot-pick-cell7", true, &[], &[], &[]),
    ("summarize-runbook", true, &[], &[], &[]),
    ("vendor-payment-acme-logistics", true, &[], &[], &[]),
];

fn rules(v: &Value, key: &str, field: &str) -> Vec<String> {
    v[key]
        .as_array()
        .expect("an array")
        .iter()
        .map(|e| e[field].as_str().expect("a string").to_owned())
        .collect()
}

#[test]
fn every_example_gets_the_outcome_the_article_calls_for() {
    let ids: Vec<&str> = OUTCOMES.iter().map(|o| o.0).collect();
    assert_eq!(
        request_ids(),
        ids,
        "every example request has an expected outcome"
    );
    for (id, allowed, deny, warn, escalate) in OUTCOMES {
        let out = run(hitl_now().args(["-C", ROOT, "policy", "eval", id]));
        assert_eq!(out.status.code(), Some(0), "{id}: {}", stderr(&out));
        let d: Value = serde_json::from_str(&stdout(&out)).expect("JSON");
        assert_eq!(d["allowed"], Value::Bool(allowed), "{id}");
        assert_eq!(rules(&d, "deny", "rule"), deny, "{id}: deny");
        assert_eq!(rules(&d, "warn", "rule"), warn, "{id}: warn");
        assert_eq!(rules(&d, "escalate", "role"), escalate, "{id}: escalate");
        assert_eq!(
            d["evaluated_at"], "2026-11-27T16:00:00Z",
            "{id}: policies see the injected now"
        );
        assert!(
            d["policy_digest"]
                .as_str()
                .expect("digest")
                .starts_with("sha256:")
        );
    }
}

#[test]
fn show_fills_the_policy_row_and_never_shows_a_denial_as_allowed() {
    let out = run(hitl_now().args([
        "-C",
        ROOT,
        "show",
        "email-contract-terms",
        "--format",
        "json",
    ]));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let pack: Value = serde_json::from_str(&stdout(&out)).expect("JSON");
    assert_eq!(pack["policy_decision"]["status"], "evaluated");
    assert_eq!(pack["policy_decision"]["allowed"], false);
    let table = stdout(&run(hitl_now().args([
        "-C",
        ROOT,
        "show",
        "email-contract-terms",
    ])));
    assert!(
        table.contains("DENIED: source sla-acme is confidential"),
        "{table}"
    );
    let md = stdout(&run(hitl_now().args([
        "-C",
        ROOT,
        "show",
        "refund-4712",
        "--format",
        "markdown",
    ])));
    assert!(md.contains("escalates to revenue-ops"), "{md}");
    let ex: Value = serde_json::from_str(&stdout(&run(hitl_now().args([
        "-C",
        ROOT,
        "explain",
        "refund-4712",
        "--format",
        "json",
    ]))))
    .expect("JSON");
    assert_eq!(ex["policy_decision"]["escalate"][0]["role"], "revenue-ops");
    assert_eq!(
        ex["approvers"][0]["required_by_policy"]
            .as_str()
            .map(|s| s.contains("above the support lead's limit")),
        Some(true)
    );
}

#[test]
fn policy_test_passes_on_the_example_and_lists_every_test() {
    let out = run(hitl_now().args(["-C", ROOT, "policy", "test"]));
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    let text = stdout(&out);
    assert!(
        text.lines()
            .all(|l| l.starts_with("PASS ") || l.starts_with("policy test: ")),
        "{text}"
    );
    assert!(text.contains("PASS policies/limits_test.rego:11: test_refund_over_the_support_leads_limit_escalates_to_revenue_ops"));
    let summary = text.lines().last().expect("a summary");
    assert!(summary.ends_with(" passed, 0 failed"), "{summary}");
}

/// `policy test` takes `--format` like every other command that prints data (no
/// `--json` of its own); `policy eval` and `policy input` print JSON and accept
/// `--format json` too.
#[test]
fn policy_commands_take_format_json_like_the_others() {
    let out = run(hitl_now().args(["-C", ROOT, "policy", "test", "--format", "json"]));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let tests = report["tests"].as_array().expect("tests");
    assert!(!tests.is_empty(), "{report}");
    assert_eq!(report["passed"].as_u64(), Some(tests.len() as u64));
    assert_eq!(report["failed"], 0);
    assert!(
        report["policy_digest"]
            .as_str()
            .is_some_and(|d| d.starts_with("sha256:")),
        "{report}"
    );
    // `table` and `markdown` print the text form.
    let table = stdout(&run(hitl_now().args(["-C", ROOT, "policy", "test"])));
    for format in ["table", "markdown"] {
        let out = run(hitl_now().args(["-C", ROOT, "policy", "test", "--format", format]));
        assert_eq!(stdout(&out), table, "--format {format}");
    }
    let out = run(hitl_now().args(["-C", ROOT, "policy", "test", "--json"]));
    assert_eq!(out.status.code(), Some(2), "`--json` is gone");

    for sub in ["eval", "input"] {
        let plain = run(hitl_now().args(["-C", ROOT, "policy", sub, "refund-4712"]));
        let json =
            run(hitl_now().args(["-C", ROOT, "policy", sub, "refund-4712", "--format", "json"]));
        assert_eq!(json.status.code(), Some(0), "{sub}: {}", stderr(&json));
        assert_eq!(json.stdout, plain.stdout, "{sub}");
        serde_json::from_slice::<Value>(&json.stdout).expect("JSON");
        let table = run(hitl_now().args([
            "-C",
            ROOT,
            "policy",
            sub,
            "refund-4712",
            "--format",
            "table",
        ]));
        assert_eq!(table.status.code(), Some(2), "{sub} prints JSON only");
    }
}

/// A temporary copy of the example workspace with its policies, plus `extra` files.
fn with_policies(extra: &[(&str, &str)]) -> tempfile::TempDir {
    let ws = example_workspace(&["refund-4711", "email-contract-terms"]);
    let src = std::path::Path::new(ROOT).join("policies");
    std::fs::create_dir_all(ws.path().join("policies/data")).expect("mkdir");
    for entry in std::fs::read_dir(&src).expect("policies/") {
        let p = entry.expect("entry").path();
        if p.is_file() {
            std::fs::copy(
                &p,
                ws.path()
                    .join("policies")
                    .join(p.file_name().expect("name")),
            )
            .expect("copy");
        }
    }
    std::fs::copy(
        src.join("data/rbac.json"),
        ws.path().join("policies/data/rbac.json"),
    )
    .expect("copy");
    for (rel, text) in extra {
        std::fs::write(ws.path().join(rel), text).expect("write");
    }
    ws
}

#[test]
fn a_failing_policy_test_fails_the_run() {
    let ws = with_policies(&[(
        "policies/broken_test.rego",
        "package hitl_test\n\ntest_wrong if {\n\t1 == 2\n}\n",
    )]);
    let out = run(hitl_now().arg("-C").arg(ws.path()).args(["policy", "test"]));
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("FAIL policies/broken_test.rego:3: test_wrong"),
        "{}",
        stdout(&out)
    );
}

/// Each broken policy set: (file, contents, where the error must point, what it says).
#[rustfmt::skip]
const BROKEN: [(&str, &str, &str, &str); 7] = [
    ("policies/syntax.rego", "package hitl\n\ndeny contains msg if {\n\tmsg := \n}\n", "policies/syntax.rego:4:", "expecting"),
    ("policies/unsafe.rego", "package hitl\n\ndeny contains \"x\" if {\n  y > 1\n}\n", "policies/unsafe.rego:4:3", "unsafe"),
    ("policies/unknown_fn.rego", "package hitl\n\nwarn contains \"x\" if {\n  input.never\n  no.such_builtin(1)\n}\n", "policies/unknown_fn.rego:5:3", "unknown function `no.such_builtin`"),
    ("policies/number_in_deny.rego", "package hitl\n\ndeny contains 42 if true\n", "", "rule `hitl.deny` returned 42"),
    ("policies/escalate_no_role.rego", "package hitl\n\nescalate contains {\"reason\": \"x\"} if true\n", "", "without a `role` string"),
    ("policies/bad_min_tier.rego", "package hitl\n\nmin_tier := 9\n", "", "where a tier from 0 to 5 was expected"),
    ("policies/data/rbac.json", "[1, 2]", "policies/data/rbac.json:1:1", "must hold a mapping"),
];

#[test]
fn broken_policies_fail_closed_with_a_located_error() {
    for (file, text, at, says) in BROKEN {
        let ws = with_policies(&[(file, text)]);
        let before = tree(ws.path());
        // `policy eval` refuses with the error...
        let out = run(hitl_now()
            .arg("-C")
            .arg(ws.path())
            .args(["policy", "eval", "refund-4711"]));
        assert_eq!(out.status.code(), Some(3), "{file}: {}", stdout(&out));
        let err = stderr(&out);
        assert!(err.contains(at), "{file}: expected `{at}` in\n{err}");
        assert!(err.contains(says), "{file}: expected `{says}` in\n{err}");
        // ...`show` still shows the evidence, and the decision is a denial, never "allowed".
        let out = run(hitl_now().arg("-C").arg(ws.path()).args([
            "show",
            "refund-4711",
            "--format",
            "json",
        ]));
        assert_eq!(out.status.code(), Some(0), "{file}: {}", stderr(&out));
        let pack: Value = serde_json::from_str(&stdout(&out)).expect("JSON");
        assert_eq!(pack["policy_decision"]["status"], "failed", "{file}");
        assert!(
            pack["warnings"]
                .as_array()
                .expect("warnings")
                .iter()
                .any(|w| w["code"] == "policy-error"),
            "{file}"
        );
        // ...and `lint` reports it.
        let out = run(hitl_now().arg("-C").arg(ws.path()).arg("lint"));
        assert_eq!(out.status.code(), Some(1), "{file}: lint\n{}", stdout(&out));
        assert_eq!(tree(ws.path()), before, "{file}: nothing written");
    }
}

#[test]
fn a_policy_that_runs_too_long_is_an_error_not_a_hang() {
    let slow = "package hitl\n\nwarn contains \"slow\" if {\n\tcount([x | some x in numbers.range(1, 50000000)]) < 0\n}\n";
    let ws = with_policies(&[("policies/slow.rego", slow)]);
    let started = std::time::Instant::now();
    // On the real clock: the interpreter's time limit runs on a monotonic timer.
    let out = run(hitl()
        .arg("-C")
        .arg(ws.path())
        .args(["policy", "eval", "refund-4711"]));
    assert_eq!(out.status.code(), Some(3), "{}", stdout(&out));
    assert!(stderr(&out).contains("time limit"), "{}", stderr(&out));
    // Not a timing target: only proof that the limit, not the loop, ended the run.
    assert!(started.elapsed() < std::time::Duration::from_secs(60));
}

#[test]
fn the_policy_input_contract_is_stable() {
    let out = run(hitl_now().args(["-C", ROOT, "policy", "input", "refund-4712"]));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    snapbox::assert_data_eq!(
        stdout(&out),
        snapbox::file!["../snapshots/policy_input_refund-4712.json"]
    );
    // Every key of the input is described by the JSON Schema in docs/, and back.
    let input: Value = serde_json::from_str(&stdout(&out)).expect("JSON");
    let schema: Value = serde_json::from_str(
        &std::fs::read_to_string(std::path::Path::new(ROOT).join("docs/policy-input.schema.json"))
            .expect("schema"),
    )
    .expect("schema JSON");
    check_schema_keys(&input, &schema, "input");
}

/// Walks the input beside its schema: where the schema closes an object
/// (`additionalProperties: false`), every key must be described and every required key
/// present; `additionalProperties` schemas apply to each value of a map.
fn check_schema_keys(value: &Value, schema: &Value, path: &str) {
    let Some(obj) = value.as_object() else { return };
    let props = schema["properties"].as_object();
    if schema["additionalProperties"] == Value::Bool(false) {
        for k in obj.keys() {
            assert!(
                props.is_some_and(|p| p.contains_key(k)),
                "{path}.{k} is not in the schema"
            );
        }
    }
    for req in schema["required"].as_array().into_iter().flatten() {
        let req = req.as_str().expect("required names are strings");
        assert!(
            obj.contains_key(req),
            "{path}.{req} is required by the schema but missing"
        );
    }
    for (k, v) in obj {
        let sub = props
            .and_then(|p| p.get(k))
            .or_else(|| schema.get("additionalProperties").filter(|a| a.is_object()));
        if let Some(sub) = sub {
            check_schema_keys(v, sub, &format!("{path}.{k}"));
            if let (Some(items), Some(list)) = (sub.get("items"), v.as_array()) {
                for (i, item) in list.iter().enumerate() {
                    check_schema_keys(item, items, &format!("{path}.{k}[{i}]"));
                }
            }
        }
    }
}
