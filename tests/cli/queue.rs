//! `hitl queue` through the real binary: what the signing key's principal may approve
//! now (the engine's judgement), every pending request with `--all`, soonest deadline
//! first, and the list of open requests this clone keeps in `.git` only choosing which
//! requests to fold.

use serde_json::Value;

use super::audit::{AGENT, AuditWs, LEA, RAVI, ok};
use super::support::{stderr, stdout};

const DEPLOY_BOT: &str = "deploy-bot@agents.example.com";
const INES: &str = "ines@example.com";
const SAM: &str = "sam@example.com";
const IAM: &str = "iam-grant-ci-deployer";

fn queue(w: &AuditWs, time: &str, who: Option<&str>, all: bool) -> Value {
    let mut args = vec!["queue", "--format", "json"];
    if all {
        args.push("--all");
    }
    let o = match who {
        Some(who) => w.hitl_at(time, who, &args),
        None => w.read_at(time, &args),
    };
    serde_json::from_str(&ok(&o)).unwrap()
}

/// (request, may I approve) of a queue, in its order.
fn ids(q: &Value) -> Vec<(String, Option<bool>)> {
    q["requests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["request"].as_str().unwrap().to_owned(),
                r["you"]["may_approve"].as_bool(),
            )
        })
        .collect()
}

fn own(v: &[(&str, Option<bool>)]) -> Vec<(String, Option<bool>)> {
    v.iter().map(|(r, m)| ((*r).to_owned(), *m)).collect()
}

#[test]
fn the_queue_shows_what_the_identity_may_approve_soonest_deadline_first() {
    let w = AuditWs::with_people(&[DEPLOY_BOT, INES, SAM]);
    ok(&w.hitl(AGENT, &["propose", "refund-4711"]));
    ok(&w.hitl(AGENT, &["propose", "refund-4712"]));
    ok(&w.hitl(DEPLOY_BOT, &["propose", IAM]));
    ok(&w.hitl(AGENT, &["propose", "email-customer-5531"]));
    ok(&w.hitl(LEA, &["approve", "email-customer-5531"]));
    let now = "2026-11-27 16:00:00";

    // Everything pending, soonest deadline first (the IAM change escalates at 20:00 but
    // expires only at 22:00; the refunds at 09:00 and 09:10 the next day); the approved
    // email is gone.
    let all = queue(&w, now, None, true);
    assert_eq!(
        ids(&all),
        own(&[(IAM, None), ("refund-4711", None), ("refund-4712", None)])
    );
    let iam = &all["requests"][0];
    assert_eq!(iam["tier"], 4);
    assert_eq!(iam["target"], "iam/role/ci-deployer");
    assert_eq!(iam["approvals"], 0);
    assert_eq!(iam["approvals_required"], 2);
    assert_eq!(iam["deadline"], "2026-11-27T22:00:00Z");
    assert_eq!(iam["seconds_left"], 6 * 3600);
    let refund = &all["requests"][2];
    assert_eq!(
        refund["amount"],
        serde_json::json!({"value": 2400.0, "currency": "EUR"})
    );

    // Lea may approve the small refund only: the large one is above her role's limit.
    assert_eq!(
        ids(&queue(&w, now, Some(LEA), false)),
        own(&[("refund-4711", Some(true))])
    );
    let lea_all = queue(&w, now, Some(LEA), true);
    assert_eq!(lea_all["principal"], LEA);
    let why = lea_all["requests"][2]["you"]["reason"].as_str().unwrap();
    assert!(why.contains("`revenue-ops` may approve it"), "{why}");
    assert_eq!(
        ids(&queue(&w, now, Some(RAVI), false)),
        own(&[("refund-4712", Some(true))])
    );

    // After ines's approval, sam sees the IAM change still needing his role; ines no
    // longer does.
    ok(&w.hitl(INES, &["approve", IAM]));
    let sam = queue(&w, now, Some(SAM), false);
    assert_eq!(ids(&sam), own(&[(IAM, Some(true))]));
    assert_eq!(sam["requests"][0]["approvals"], 1);
    assert_eq!(
        sam["requests"][0]["still_needed"],
        serde_json::json!(["security-approver"])
    );
    assert_eq!(ids(&queue(&w, now, Some(INES), false)), own(&[]));

    // Time moves on: past 20:00 the IAM change is escalated (nobody routed may approve
    // it), past 22:00 it is gone, and the next morning only the larger refund is left.
    assert_eq!(
        ids(&queue(&w, "2026-11-27 21:00:00", Some(SAM), false)),
        own(&[])
    );
    let later = queue(&w, "2026-11-27 21:00:00", None, true);
    assert_eq!(later["requests"][0]["escalated"], true);
    assert_eq!(
        ids(&queue(&w, "2026-11-28 09:05:00", None, true)),
        own(&[("refund-4712", None)])
    );
    // The table says the same.
    let table = stdout(&w.hitl_at(now, LEA, &["queue"]));
    assert!(
        table.starts_with("1 pending request(s) you may approve for lea@example.com\n"),
        "{table}"
    );
    assert!(
        table.contains("refund-4711") && !table.contains("refund-4712"),
        "{table}"
    );
}

/// The list of open requests is only a choice of what to fold: a request proposed
/// later, or amended, appears; a list planted with a closed request shows nothing of
/// it; a clock set back (a request expired at the later instant) is looked at again.
#[test]
fn the_open_list_only_chooses_which_requests_are_folded() {
    let w = AuditWs::new();
    ok(&w.hitl(AGENT, &["propose", "refund-4711"]));
    ok(&w.hitl(AGENT, &["propose", "email-customer-5531"]));
    ok(&w.hitl(LEA, &["approve", "email-customer-5531"]));
    let now = "2026-11-27 16:00:00";
    assert_eq!(
        ids(&queue(&w, now, None, true)),
        own(&[("refund-4711", None)])
    );
    // A planted list naming the approved request and omitting the pending one.
    let list = w.ws().join(".git/hitl-open");
    let text = std::fs::read_to_string(&list).unwrap();
    let head = text.lines().next().unwrap().to_owned();
    std::fs::write(&list, format!("{head}\nemail-customer-5531\nno-such-id\n")).unwrap();
    assert_eq!(
        ids(&queue(&w, now, None, true)),
        own(&[]),
        "the list chooses, the engine decides"
    );
    // A new proposal after the listed head appears.
    ok(&w.hitl(AGENT, &["propose", "refund-4712"]));
    assert_eq!(
        ids(&queue(&w, now, None, true)),
        own(&[("refund-4712", None)])
    );
    // Expired at a later instant, pending at an earlier one: the list of the later
    // instant is not used for the earlier.
    assert_eq!(ids(&queue(&w, "2026-11-28 10:00:00", None, true)), own(&[]));
    std::fs::remove_file(&list).unwrap();
    assert_eq!(ids(&queue(&w, "2026-11-28 10:00:00", None, true)), own(&[]));
    assert_eq!(
        ids(&queue(&w, now, None, true)),
        own(&[("refund-4711", None), ("refund-4712", None)])
    );
}

#[test]
fn the_queue_without_a_key_asks_for_one_or_all() {
    let w = AuditWs::new();
    ok(&w.hitl(AGENT, &["propose", "refund-4711"]));
    let o = w.read(&["queue"]);
    assert_eq!(o.status.code(), Some(6), "{}", stderr(&o));
    assert!(stderr(&o).contains("hitl queue --all"), "{}", stderr(&o));
    assert!(stdout(&o).is_empty());
}

/// Enough pending requests to fold them on more than one thread: every one is listed
/// once, soonest deadline first, as folded by the engine.
#[test]
fn many_pending_requests_are_folded_on_all_cores_and_listed_once() {
    let w = AuditWs::new();
    let text = std::fs::read_to_string(w.ws().join("requests/refund-4711.yaml")).unwrap();
    let n = 30;
    for i in 0..n {
        let id = format!("refund-{i:02}");
        // Later ids expire earlier.
        let expires = format!("expires_at: 2026-11-28T{:02}:00:00Z", 23 - i % 24);
        let body = text
            .replace("id: refund-4711", &format!("id: {id}"))
            .replace("expires_at: 2026-11-28T09:00:00Z", &expires);
        assert_ne!(body, text);
        std::fs::write(w.ws().join(format!("requests/{id}.yaml")), body).unwrap();
        ok(&w.hitl(AGENT, &["propose", &id]));
    }
    let q = queue(&w, "2026-11-27 16:00:00", Some(LEA), false);
    let got: Vec<String> = ids(&q).into_iter().map(|(r, _)| r).collect();
    let mut want: Vec<(String, String)> = (0..n)
        .map(|i| {
            (
                format!("2026-11-28T{:02}:00:00Z", 23 - i % 24),
                format!("refund-{i:02}"),
            )
        })
        .collect();
    want.sort();
    assert_eq!(got, want.into_iter().map(|(_, r)| r).collect::<Vec<_>>());
}
