//! `hitl stats` through the real binary: requests proposed, approved, rejected with
//! reason codes, sent back for changes and amended, blocked, left to expire, escalated
//! by their timeout and by hand, and overridden, across four tiers, with real keys and
//! real git; the exact figures of `--format json`, the `--since` window, and the refusal
//! of a tampered history.

use serde_json::{Value, json};

use super::audit::{AGENT, AuditWs, LEA, RAVI, ok};
use super::support::{stderr, stdout};
use super::workflow::{IAM, INES, SAM, hand_made_approval, iam_ws};

const OLGA: &str = "olga@example.com";
const HANA: &str = "hana@example.com";
const FELIX: &str = "felix@example.com";
const BIANCA: &str = "bianca@example.com";
const DEPLOY_BOT: &str = "deploy-bot@agents.example.com";
const VENDOR: &str = "vendor-payment-acme-logistics";

fn stats(w: &AuditWs, time: &str, extra: &[&str]) -> Value {
    let mut args = vec!["stats", "--format", "json"];
    args.extend(extra);
    serde_json::from_str(&ok(&w.read_at(time, &args))).unwrap()
}

fn tier(s: &Value, n: u64) -> &Value {
    s["tiers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["tier"] == n)
        .unwrap_or_else(|| panic!("no tier {n} in {s:#}"))
}

/// The rows (as cells) of the table whose header contains `header`.
fn rows<'t>(table: &'t str, header: &str) -> Vec<Vec<&'t str>> {
    table
        .lines()
        .skip_while(|l| !l.contains(header))
        .skip(2)
        .take_while(|l| !l.starts_with('└'))
        .map(|l| l.trim_matches('│').split('┆').map(str::trim).collect())
        .collect()
}

/// Events in the order of their clock (the audit refuses a clock behind its last event):
///
/// - 16:00 proposed: refund-4711, refund-4712, email-customer-5531, hr-update-emp-204,
///   the vendor payment and email-contract-terms (a policy denies it: blocked), all
///   tier 3 (pending timeout 8 h, then escalated to revenue-ops); crm-stage-acme
///   (tier 2); draft-reply-5531 (tier 1, expires 2026-11-28 09:02); the IAM change
///   (tier 4, by deploy-bot);
/// - 16:05 lea sends refund-4711 back, `lower-amount`; 16:08 the agent proposes its
///   version 2; 16:10 lea approves it (2 min after version 2's proposal, 10 after the
///   first);
/// - 16:20 ravi approves crm-stage-acme (20 min); 16:30 lea rejects email-customer-5531,
///   `too-risky` (30 min);
/// - 16:40 bianca (break-glass) overrides the IAM change: it owes two reviews by
///   2026-11-28 16:40;
/// - 16:45 contract-clause-acme proposed (tier 3); 16:50 hana escalates
///   hr-update-emp-204 by hand (it stays open); 17:00 olga rejects contract-clause-acme,
///   `too-risky` (15 min);
/// - 17:10 felix sends the vendor payment back, `add-evidence` (70 min): no new version;
/// - 01:00 the next day, after the pending timeout, ravi (revenue-ops, the escalation
///   role) rejects refund-4712, `insufficient-evidence` (9 h): escalated when it closed.
fn workspace() -> AuditWs {
    let w = AuditWs::with_people(&[OLGA, HANA, FELIX, BIANCA, DEPLOY_BOT]);
    let at = |time: &str, who: &str, args: &[&str]| w.hitl_at(time, who, args);
    for id in [
        "refund-4711",
        "refund-4712",
        "email-customer-5531",
        "hr-update-emp-204",
        "crm-stage-acme",
        "draft-reply-5531",
    ] {
        ok(&at("2026-11-27 16:00:00", AGENT, &["propose", id]));
    }
    for id in [VENDOR, IAM] {
        ok(&at("2026-11-27 16:00:00", DEPLOY_BOT, &["propose", id]));
    }
    let o = at(
        "2026-11-27 16:00:00",
        AGENT,
        &["propose", "email-contract-terms"],
    );
    assert_eq!(o.status.code(), Some(1), "blocked: {}", stderr(&o));
    ok(&at(
        "2026-11-27 16:05:00",
        LEA,
        &[
            "request-changes",
            "refund-4711",
            "--reason-code",
            "lower-amount",
        ],
    ));
    let file = w.ws().join("requests/refund-4711.yaml");
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, format!("{text}# version 2\n")).unwrap();
    ok(&at(
        "2026-11-27 16:08:00",
        AGENT,
        &["propose", "refund-4711"],
    ));
    ok(&at("2026-11-27 16:10:00", LEA, &["approve", "refund-4711"]));
    ok(&at(
        "2026-11-27 16:20:00",
        RAVI,
        &["approve", "crm-stage-acme"],
    ));
    ok(&at(
        "2026-11-27 16:30:00",
        LEA,
        &[
            "reject",
            "email-customer-5531",
            "--reason-code",
            "too-risky",
        ],
    ));
    ok(&at(
        "2026-11-27 16:40:00",
        BIANCA,
        &["override", IAM, "--reason", "ci-deployer is down"],
    ));
    ok(&at(
        "2026-11-27 16:45:00",
        AGENT,
        &["propose", "contract-clause-acme"],
    ));
    ok(&at(
        "2026-11-27 16:50:00",
        HANA,
        &["escalate", "hr-update-emp-204"],
    ));
    ok(&at(
        "2026-11-27 17:00:00",
        OLGA,
        &[
            "reject",
            "contract-clause-acme",
            "--reason-code",
            "too-risky",
        ],
    ));
    ok(&at(
        "2026-11-27 17:10:00",
        FELIX,
        &["request-changes", VENDOR, "--reason-code", "add-evidence"],
    ));
    ok(&at(
        "2026-11-28 01:00:00",
        RAVI,
        &[
            "reject",
            "refund-4712",
            "--reason-code",
            "insufficient-evidence",
        ],
    ));
    w
}

#[test]
#[allow(clippy::too_many_lines, reason = "one scenario, its figures checked")]
fn stats_per_tier_come_from_the_engine() {
    let w = workspace();
    assert_eq!(
        w.problem_codes_at("2026-11-28 02:00:00"),
        Vec::<String>::new()
    );

    let s = stats(&w, "2026-11-28 10:00:00", &[]);
    assert_eq!(s["as_of"], "2026-11-28T10:00:00Z");
    assert_eq!(s["since"], Value::Null);
    assert_eq!(s["inconsistent"], json!([]));
    let tiers: Vec<&Value> = s["tiers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| &t["tier"])
        .collect();
    assert_eq!(tiers, [1, 2, 3, 4]);
    assert_eq!(
        *tier(&s, 3),
        json!({
            "tier": 3,
            // refund-4711 once, under its version 2.
            "requests": 7,
            "approved": 1,
            "rejected": 3,
            "changes_requested": 1,
            "overridden": 0,
            "pending": 1,
            "expired": 0,
            "blocked": 1,
            "proceeds": 0,
            "approval_rate": 0.25,
            // 2 min (refund-4711 from version 2), 15 min, 30 min, 70 min (sent back),
            // 9 h: nearest rank 3 of 5, and 5 of 5.
            "time_to_decision": {"decided": 5, "median_seconds": 1800, "p90_seconds": 32400},
            // refund-4712 when rejected; hr-update-emp-204 by hand.
            "escalated": 2,
            "overdue_reviews": 0,
            // refund-4711's version 1 and the vendor payment.
            "changes_requested_versions": 2,
            "top_rejection_reasons": [
                {"code": "too-risky", "count": 2},
                {"code": "insufficient-evidence", "count": 1}
            ],
            "top_change_reasons": [
                {"code": "add-evidence", "count": 1},
                {"code": "lower-amount", "count": 1}
            ]
        })
    );
    assert_eq!(
        *tier(&s, 4),
        json!({
            "tier": 4,
            "requests": 1,
            "approved": 0,
            "rejected": 0,
            "changes_requested": 0,
            "overridden": 1,
            "pending": 0,
            "expired": 0,
            "blocked": 0,
            "proceeds": 0,
            "approval_rate": null,
            "time_to_decision": {"decided": 0, "median_seconds": null, "p90_seconds": null},
            // Overridden at 16:40, before its pending timeout (20:00).
            "escalated": 0,
            "overdue_reviews": 0,
            "changes_requested_versions": 0,
            "top_rejection_reasons": [],
            "top_change_reasons": []
        })
    );
    let two = tier(&s, 2);
    assert_eq!(
        (two["requests"].clone(), two["approval_rate"].clone()),
        (json!(1), json!(1.0))
    );
    assert_eq!(
        two["time_to_decision"],
        json!({"decided": 1, "median_seconds": 1200, "p90_seconds": 1200})
    );
    // draft-reply-5531 expired at 09:02 with no decision: no rate, no time.
    let one = tier(&s, 1);
    assert_eq!(
        (
            one["requests"].clone(),
            one["expired"].clone(),
            one["pending"].clone()
        ),
        (json!(1), json!(1), json!(0))
    );
    assert_eq!(one["approval_rate"], Value::Null);
    assert_eq!(
        one["time_to_decision"],
        json!({"decided": 0, "median_seconds": null, "p90_seconds": null})
    );

    // The outcome is judged at the clock: earlier, the draft was pending.
    let before = stats(&w, "2026-11-28 01:00:00", &[]);
    assert_eq!(
        (
            tier(&before, 1)["expired"].clone(),
            tier(&before, 1)["pending"].clone()
        ),
        (json!(0), json!(1))
    );
    // (Stats before the last event are not asked for: an event dated after the clock
    // makes its request take no decision, as at decision time.)
    // Past its due time (16:40) with no review, the override's debt is overdue.
    let late = stats(&w, "2026-11-28 17:00:00", &[]);
    assert_eq!(tier(&late, 4)["overdue_reviews"], 1);

    // The table: one row per tier, the same figures.
    let table = stdout(&w.read_at("2026-11-28 10:00:00", &["stats"]));
    assert!(table.starts_with("as of 2026-11-28T10:00:00Z\n"), "{table}");
    assert_eq!(
        rows(&table, "Requests"),
        [
            ["1", "1", "-", "-", "-", "0", "1", "0", "0", "0"],
            ["2", "1", "100% of 1", "20m", "20m", "0", "0", "0", "0", "0"],
            ["3", "7", "25% of 4", "30m", "9h", "1", "0", "2", "1", "0"],
            ["4", "1", "-", "-", "-", "0", "0", "0", "0", "1"]
        ],
        "{table}"
    );
    assert!(
        table.contains("\ntier 3: 1 blocked; 2 versions sent back for changes in all\n")
            && !table.contains("tier 4:"),
        "{table}"
    );
    let late = stdout(&w.read_at("2026-11-28 17:00:00", &["stats"]));
    assert!(
        late.contains("\ntier 4: 1 override review overdue\n"),
        "{late}"
    );
    assert_eq!(
        rows(&table, "Top reason codes"),
        [
            ["3", "rejected", "too-risky", "2"],
            ["3", "rejected", "insufficient-evidence", "1"],
            ["3", "changes requested", "add-evidence", "1"],
            ["3", "changes requested", "lower-amount", "1"]
        ],
        "{table}"
    );
}

#[test]
fn since_keeps_the_requests_whose_latest_version_is_in_the_window() {
    let w = workspace();
    let s = stats(
        &w,
        "2026-11-28 10:00:00",
        &["--since", "2026-11-27T16:30:00Z"],
    );
    assert_eq!(s["since"], "2026-11-27T16:30:00Z");
    assert_eq!(s["tiers"].as_array().unwrap().len(), 1, "{s:#}");
    let three = tier(&s, 3);
    assert_eq!(three["requests"], 1);
    assert_eq!(three["approval_rate"], 0.0);
    assert_eq!(
        three["time_to_decision"],
        json!({"decided": 1, "median_seconds": 900, "p90_seconds": 900})
    );
    assert_eq!(
        three["top_rejection_reasons"],
        json!([{"code": "too-risky", "count": 1}])
    );
    // refund-4711's version 2 (16:08) is in from 16:05, with its whole history: the
    // request for changes of version 1 counts too.
    let s = stats(
        &w,
        "2026-11-28 10:00:00",
        &["--since", "2026-11-27T16:05:00Z"],
    );
    let three = tier(&s, 3);
    assert_eq!(
        (
            three["requests"].clone(),
            three["approved"].clone(),
            three["rejected"].clone()
        ),
        (json!(2), json!(1), json!(1))
    );
    assert_eq!(
        three["time_to_decision"],
        json!({"decided": 2, "median_seconds": 120, "p90_seconds": 900})
    );
    assert_eq!(three["changes_requested_versions"], 1);
    assert_eq!(
        three["top_change_reasons"],
        json!([{"code": "lower-amount", "count": 1}])
    );
    // A date is midnight UTC: nothing was proposed on the 28th.
    let s = stats(&w, "2026-11-28 10:00:00", &["--since", "2026-11-28"]);
    assert_eq!(s["tiers"], json!([]));
    assert_eq!(s["since"], "2026-11-28T00:00:00Z");

    let o = w.read(&["stats", "--since", "last tuesday"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("--since") && stderr(&o).contains("neither RFC 3339 nor YYYY-MM-DD"),
        "{}",
        stderr(&o)
    );
    assert!(stdout(&o).is_empty());
}

#[test]
fn an_empty_audit_has_no_rows() {
    let w = AuditWs::new();
    let s = stats(&w, "2026-11-27 16:00:00", &[]);
    assert_eq!(s["tiers"], json!([]));
    assert_eq!(s["inconsistent"], json!([]));
    let o = w.read(&["stats"]);
    let table = ok(&o);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(
        lines.len(),
        5,
        "a line, the header between two rules: {table}"
    );
    assert!(
        lines[2].starts_with("│ Tier ┆ Requests ┆ Approved ┆"),
        "{table}"
    );
}

/// Lea's rejection edited into an approval and committed unsigned: `stats` shows no
/// figures read from the edited file and refuses as `status` does (exit 6).
#[test]
fn stats_refuses_an_audit_edited_in_place() {
    let w = AuditWs::new();
    w.rejection_edited_into_an_approval();
    for format in ["json", "table"] {
        let o = w.read(&["stats", "--format", format]);
        assert_eq!(o.status.code(), Some(6), "{}", stdout(&o));
        assert!(
            stderr(&o).contains("changed the audit as no hitl append does"),
            "{}",
            stderr(&o)
        );
        assert!(stdout(&o).is_empty(), "{}", stdout(&o));
    }
}

/// A forged second approval (in sam's name, signed by ravi) makes the IAM change
/// inconsistent: it is listed apart, with the engine's reason, and counted in no tier.
#[test]
fn an_inconsistent_request_is_counted_apart() {
    let w = iam_ws();
    ok(&w.hitl(INES, &["approve", IAM]));
    hand_made_approval(&w, SAM, Some(RAVI), RAVI);
    let s = stats(&w, "2026-11-27 16:00:00", &[]);
    assert_eq!(s["tiers"], json!([]), "{s:#}");
    let listed = s["inconsistent"].as_array().unwrap();
    assert_eq!(listed.len(), 1, "{s:#}");
    assert_eq!(listed[0]["request"], IAM);
    assert!(
        listed[0]["reason"]
            .as_str()
            .unwrap()
            .contains("its commit is signed by ravi@example.com"),
        "{s:#}"
    );
    let table = ok(&w.read(&["stats"]));
    assert!(
        table.contains("inconsistent, not counted above") && table.contains(&format!("  {IAM}: ")),
        "{table}"
    );
}
