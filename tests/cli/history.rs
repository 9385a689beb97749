//! The history walk of `hitl verify` against hand-made git objects: trees written with
//! `git mktree` and a scratch index (`update-index --cacheinfo`, symlinks as mode 120000,
//! submodule entries as 160000), commits with `git commit-tree` (signed with real
//! `ssh-keygen` keys through git), branches moved with `git update-ref`. One test per
//! attack, each asserting the exact set of problem codes `verify` reports, so that a
//! false alarm fails it as surely as a miss.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Output;

use super::audit::{AuditWs, ok};
use super::support::{stderr, stdout};

const AGENT: &str = "support-copilot@agents.example.com";
const LEA: &str = "lea@example.com";
const RAVI: &str = "ravi@example.com";
const MALLORY: &str = "mallory@example.com";
/// The matrix's `governance.admins`: who signs changes of the configuration.
const ALEX: &str = "alex@example.com";

fn rev(w: &AuditWs, what: &str) -> String {
    w.git(&["rev-parse", what]).trim().to_owned()
}

/// The commit without parents that main started from.
fn first_commit(w: &AuditWs) -> String {
    w.git(&["rev-list", "--max-parents=0", "HEAD"])
        .trim()
        .to_owned()
}

/// Writes `bytes` as a blob (`git hash-object -w`); returns its id.
fn blob(w: &AuditWs, bytes: &[u8]) -> String {
    w.git_with(&[], &["hash-object", "-w", "--stdin"], Some(bytes))
        .trim()
        .to_owned()
}

/// An edit of a tree: an entry (mode, object id, path) put in, or a path taken out.
enum Edit<'a> {
    Put(&'a str, String, &'a str),
    Remove(&'a str),
}

/// The tree of `base` with `edits`, made in a scratch index: `read-tree`, `update-index
/// --cacheinfo` (`--replace`: an entry may replace a folder, as a symlink at `audit`
/// does), `write-tree`. The repository's own index is left alone.
fn tree_with(w: &AuditWs, base: &str, edits: &[Edit<'_>]) -> String {
    let index = w.dir.path().join("scratch-index");
    let _ = std::fs::remove_file(&index);
    let env = [("GIT_INDEX_FILE", index.to_str().unwrap())];
    w.git_with(&env, &["read-tree", base], None);
    for e in edits {
        match e {
            Edit::Put(mode, id, path) => {
                w.git_with(
                    &env,
                    &[
                        "update-index",
                        "--add",
                        "--replace",
                        "--cacheinfo",
                        &format!("{mode},{id},{path}"),
                    ],
                    None,
                );
            }
            Edit::Remove(path) => {
                w.git_with(&env, &["update-index", "--force-remove", path], None);
            }
        }
    }
    w.git_with(&env, &["write-tree"], None).trim().to_owned()
}

/// `git commit-tree TREE -p PARENT...`, authored and committed by `who`, signed with
/// `who`'s key (git's SSH signing, as `git commit -S` does) or unsigned (as mallory).
fn commit_tree(
    w: &AuditWs,
    env: &[(&str, &str)],
    tree: &str,
    parents: &[&str],
    who: Option<&str>,
    message: &str,
) -> String {
    let email = format!("user.email={}", who.unwrap_or(MALLORY));
    let key = who.map(|who| format!("user.signingkey={}", w.key(who).display()));
    let mut args = vec!["-c", "user.name=Someone", "-c", &email];
    if let Some(k) = &key {
        args.extend(["-c", k]);
    }
    args.extend(["commit-tree", tree]);
    for p in parents {
        args.extend(["-p", p]);
    }
    if key.is_some() {
        args.push("-S");
    }
    args.extend(["-m", message]);
    w.git_with(env, &args, None).trim().to_owned()
}

fn commit(w: &AuditWs, tree: &str, parents: &[&str], who: Option<&str>, message: &str) -> String {
    commit_tree(w, &[], tree, parents, who, message)
}

/// Moves the branch to `commit` (the working tree stays as it was: `verify` reads
/// commits only).
fn move_main(w: &AuditWs, commit: &str) {
    w.git(&["update-ref", "refs/heads/main", commit]);
}

fn tree_of(w: &AuditWs, commit: &str) -> String {
    rev(w, &format!("{commit}^{{tree}}"))
}

/// The workspace-relative path of event `seq` and of its signature.
fn event_rel(seq: u64) -> String {
    format!("audit/events/{:09}/{seq:012}.json", seq / 1000)
}

fn sig_rel(seq: u64) -> String {
    format!("{}.sig", event_rel(seq))
}

/// The one request index under `audit/requests/`.
fn index_rel(w: &AuditWs) -> String {
    let listed = w.git(&["ls-tree", "-r", "--name-only", "HEAD", "audit/requests"]);
    let all: Vec<&str> = listed.lines().collect();
    assert_eq!(all.len(), 1, "{listed}");
    all[0].to_owned()
}

/// `hitl verify --format json ARGS...`: its exit code and report.
fn verify(w: &AuditWs, args: &[&str]) -> (Option<i32>, serde_json::Value) {
    let mut all = vec!["verify", "--format", "json"];
    all.extend(args);
    let o = w.read(&all);
    let report = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}{}", stdout(&o), stderr(&o)));
    (o.status.code(), report)
}

fn code_set(report: &serde_json::Value) -> BTreeSet<String> {
    report["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["code"].as_str().unwrap().to_owned())
        .collect()
}

/// Verifies with `args` and asserts exactly the problem codes `expected` (exit 1), or
/// none (exit 0); returns the report.
fn expect_codes(w: &AuditWs, args: &[&str], expected: &[&str]) -> serde_json::Value {
    let (code, report) = verify(w, args);
    let want: BTreeSet<String> = expected.iter().map(|s| (*s).to_owned()).collect();
    assert_eq!(code_set(&report), want, "{report:#}");
    assert_eq!(
        code,
        Some(i32::from(!expected.is_empty())),
        "exit code: {report:#}"
    );
    report
}

/// The problems with `code`, as (file, commit).
fn located(report: &serde_json::Value, code: &str) -> BTreeSet<(String, String)> {
    report["problems"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["code"] == code)
        .map(|p| {
            (
                p["file"].as_str().unwrap_or_default().to_owned(),
                p["commit"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

/// refund-4711 proposed by the agent, then rejected by lea: returns the commits of
/// the proposal and of the rejection.
fn proposed_and_rejected(w: &AuditWs) -> (String, String) {
    ok(&w.hitl(AGENT, &["propose", "refund-4711"]));
    let proposed = rev(w, "HEAD");
    ok(&w.hitl(
        LEA,
        &["reject", "refund-4711", "--reason-code", "too-risky"],
    ));
    expect_codes(w, &[], &[]);
    (proposed, rev(w, "HEAD"))
}

/// One trusted key (ravi's) erases lea's signed rejection through `audit` turned into
/// a symlink and back into a folder in two signed commits: git sees one change of type
/// of the path `audit` in each, and the events inside the folder that comes back were
/// never compared with anything. Both retypings are rewrites; nothing else is wrong
/// (the chain at HEAD is consistent, its index fixed by the attacker), and `hitl
/// checkpoint` refuses to vouch for it.
#[test]
fn audit_turned_into_a_symlink_and_back_is_a_rewrite() {
    let w = AuditWs::new();
    let (_, rejected) = proposed_and_rejected(&w);
    let index = index_rel(&w);
    let link = blob(&w, b"../elsewhere");
    let as_link = tree_with(&w, &rejected, &[Edit::Put("120000", link, "audit")]);
    let c1 = commit(&w, &as_link, &[&rejected], Some(RAVI), "tidy");
    let listed = w.git(&["cat-file", "blob", &format!("{rejected}:{index}")]);
    assert_eq!(listed, "1\n2\n3\n4\n5\n6\n", "{listed}");
    let fewer = blob(&w, b"1\n2\n3\n4\n5\n");
    let erased = tree_with(
        &w,
        &rejected,
        &[
            Edit::Remove(&event_rel(6)),
            Edit::Remove(&sig_rel(6)),
            Edit::Put("100644", fewer, &index),
        ],
    );
    let c2 = commit(&w, &erased, &[&c1], Some(RAVI), "restore");
    move_main(&w, &c2);
    let report = expect_codes(&w, &[], &["history-rewrite"]);
    assert_eq!(
        located(&report, "history-rewrite"),
        BTreeSet::from([("audit".to_owned(), c1), ("audit".to_owned(), c2)]),
        "{report:#}"
    );
    assert_eq!(report["events"], 5, "{report:#}");

    let o = w.hitl(LEA, &["checkpoint"]);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    assert!(
        stderr(&o).contains("the audit does not verify (2 problems: history-rewrite)"),
        "{}",
        stderr(&o)
    );
    assert!(stdout(&o).is_empty(), "{}", stdout(&o));
}

/// A merge whose tree is its first parent's (the proposal, before the rejection) and
/// whose second parent is the real history: compared with its first parent only, it
/// changed nothing, and the signed rejection behind the second parent was gone without a
/// word. Against the second parent it deletes the decision and its signature.
#[test]
fn a_merge_whose_tree_is_its_first_parent_cannot_hide_the_second() {
    let w = AuditWs::new();
    let (proposed, rejected) = proposed_and_rejected(&w);
    let tree = tree_of(&w, &proposed);
    let merge = commit(&w, &tree, &[&proposed, &rejected], Some(RAVI), "merge");
    move_main(&w, &merge);
    let report = expect_codes(&w, &[], &["history-merge", "history-rewrite"]);
    assert_eq!(
        located(&report, "history-rewrite"),
        BTreeSet::from([(event_rel(6), merge.clone()), (sig_rel(6), merge.clone())]),
        "{report:#}"
    );
    assert_eq!(
        located(&report, "history-merge"),
        BTreeSet::from([(event_rel(6), merge.clone())]),
        "{report:#}"
    );
    let reason = report["problems"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["code"] == "history-merge")
        .unwrap()["reason"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(reason.contains(&rejected), "{reason}");
    // At decision time too (found by the attack review: the request was `pending` again
    // and ravi's approval was accepted): this clone, which decided on the rejection, and
    // a fresh one both see a merge whose audit is not its second parent's.
    // This clone decided on the rejection, which HEAD's first-parent line never meets.
    for (fresh, needle) in [
        (false, "was rewound"),
        (true, "a merge's audit differs from its parent"),
    ] {
        if fresh {
            w.as_other_clone();
        }
        let o = w.hitl(RAVI, &["approve", "refund-4711"]);
        assert_eq!(o.status.code(), Some(6), "{}", stderr(&o));
        assert!(stderr(&o).contains(needle), "{}", stderr(&o));
        assert_eq!(rev(&w, "HEAD"), merge, "nothing recorded");
        let o = w.read(&["status", "refund-4711"]);
        assert_eq!(o.status.code(), Some(6), "status: {}", stdout(&o));
    }
}

/// The final approval's commit brought in through a merge's second parent, the merge
/// signed by the approver and its tree the approval's: against its first parent (the
/// proposal) the merge adds the decision and the approval file, so it is a merge whose
/// audit differs from a parent's. `check` with the audit at hand refuses it (exit 6: here
/// as a rewind, in a fresh clone as that merge), and `verify` names the merge alone.
#[test]
fn an_approval_file_brought_in_by_a_merge() {
    let w = AuditWs::new();
    ok(&w.hitl(AGENT, &["propose", "refund-4711"]));
    let proposed = rev(&w, "HEAD");
    ok(&w.hitl(LEA, &["approve", "refund-4711"]));
    let approved = rev(&w, "HEAD");
    let file = w.dir.path().join("refund.approval.json");
    std::fs::write(
        &file,
        w.git(&[
            "show",
            &format!("{approved}:audit/approvals/refund-4711.json"),
        ]),
    )
    .unwrap();
    let tree = tree_of(&w, &approved);
    let merge = commit(&w, &tree, &[&proposed, &approved], Some(LEA), "merge");
    move_main(&w, &merge);
    let report = expect_codes(&w, &[], &["history-merge"]);
    assert!(
        located(&report, "history-merge")
            .iter()
            .all(|(_, commit)| *commit == merge),
        "{report:#}"
    );
    let check = super::audit::refund_check(file.to_str().unwrap(), "180");
    // This clone decided on the approval, which HEAD's first-parent line never meets.
    for (fresh, needle) in [
        (false, "was rewound"),
        (true, "a merge's audit differs from its parent"),
    ] {
        if fresh {
            w.as_other_clone();
        }
        let o = w.read(&check);
        assert_eq!(o.status.code(), Some(6), "{}{}", stdout(&o), stderr(&o));
        assert!(stderr(&o).contains(needle), "{}", stderr(&o));
    }
}

/// From the second attack review: an outsider with no key deletes lea's rejection in an
/// unsigned commit on top of it, then merges that back under the proposal's commit, so
/// the merge's audit equals both of its parents' and main moves forward. The deleting
/// commit is reachable only through the merge's second parent; a decision judges it
/// anyway, in this clone and in a fresh one.
#[test]
fn a_rejection_deleted_behind_a_merges_second_parent_is_judged_at_decision_time() {
    let w = AuditWs::new();
    let (proposed, rejected) = proposed_and_rejected(&w);
    // Back to the proposal's tree (the event, its signature and the index line gone).
    let erase = commit(&w, &tree_of(&w, &proposed), &[&rejected], None, "tidy");
    let merge = commit(
        &w,
        &tree_of(&w, &proposed),
        &[&proposed, &erase],
        None,
        "merge",
    );
    move_main(&w, &merge);
    for fresh in [false, true] {
        if fresh {
            w.as_other_clone();
        }
        let o = w.hitl(LEA, &["approve", "refund-4711"]);
        assert_eq!(o.status.code(), Some(6), "fresh {fresh}: {}", stderr(&o));
        assert_eq!(rev(&w, "HEAD"), merge, "nothing recorded");
    }
    expect_codes(&w, &[], &["commit-unsigned", "history-rewrite"]);
}

/// The same shape the other way round: the merge keeps the honest tree of its first
/// parent, and its second parent is a signed commit that edited an event. The edit is a
/// rewrite where it was made, the merge that takes it back is one against that parent.
#[test]
fn a_merge_hiding_a_second_parent_that_edits_an_event() {
    let w = AuditWs::new();
    w.propose_and_approve();
    let head = rev(&w, "HEAD");
    let text = w.git(&["cat-file", "blob", &format!("HEAD:{}", event_rel(5))]);
    let edited = blob(&w, text.replacen(LEA, MALLORY, 1).as_bytes());
    assert_ne!(text, w.git(&["cat-file", "blob", &edited]));
    let edit_tree = tree_with(&w, &head, &[Edit::Put("100644", edited, &event_rel(5))]);
    let edit = commit(&w, &edit_tree, &[&head], Some(RAVI), "edit");
    let merge = commit(&w, &tree_of(&w, &head), &[&head, &edit], Some(LEA), "merge");
    move_main(&w, &merge);
    let report = expect_codes(&w, &[], &["history-merge", "history-rewrite"]);
    assert_eq!(
        located(&report, "history-rewrite"),
        BTreeSet::from([(event_rel(5), edit), (event_rel(5), merge.clone())]),
        "{report:#}"
    );
    assert_eq!(
        located(&report, "history-merge"),
        BTreeSet::from([(event_rel(5), merge)]),
        "{report:#}"
    );
}

/// A second root of trust brought in by a merge, this time with every commit signed by
/// a trusted key (lea's): an orphan commit whose `allowed_signers` adds mallory, merged
/// keeping our tree. The orphan is a second root (it signs for itself), the merge
/// changes the trust files and the audit against it. `--trust-root` names which root
/// the auditor holds: the other one is then the second.
#[test]
fn a_second_root_signed_by_a_trusted_key_merged_in() {
    let w = AuditWs::new();
    w.propose_and_approve();
    let head = rev(&w, "HEAD");
    let first = first_commit(&w);
    let mut signers = std::fs::read_to_string(w.ws().join("allowed_signers")).unwrap();
    let mallory = std::fs::read_to_string(w.key(MALLORY).with_extension("com.pub")).unwrap();
    signers.push_str(&format!(
        "{MALLORY} namespaces=\"git,hitl,hitl-approval\" {mallory}"
    ));
    let listing = format!(
        "100644 blob {}\tallowed_signers\n",
        blob(&w, signers.as_bytes())
    );
    let orphan_tree = w
        .git_with(&[], &["mktree"], Some(listing.as_bytes()))
        .trim()
        .to_owned();
    let orphan = commit(&w, &orphan_tree, &[], Some(LEA), "another root");
    let merge = commit(
        &w,
        &tree_of(&w, &head),
        &[&head, &orphan],
        Some(LEA),
        "merge",
    );
    move_main(&w, &merge);

    for args in [vec![], vec!["--trust-root", first.as_str()]] {
        let report = expect_codes(&w, &args, &["history-merge", "trust-root"]);
        assert_eq!(report["trust_root"]["commit"], first.as_str(), "{report:#}");
        assert_eq!(
            located(&report, "trust-root"),
            BTreeSet::from([("allowed_signers".to_owned(), orphan.clone())]),
            "{report:#}"
        );
        let merges: Vec<String> = located(&report, "history-merge")
            .into_iter()
            .map(|(_, c)| c)
            .collect();
        assert_eq!(merges, std::slice::from_ref(&merge), "{report:#}");
    }
    // Pinned on the orphan, the orphan is the root and ours is the second one.
    let report = expect_codes(
        &w,
        &["--trust-root", &orphan],
        &["history-merge", "trust-root"],
    );
    assert_eq!(
        report["trust_root"]["commit"],
        orphan.as_str(),
        "{report:#}"
    );
    assert_eq!(
        located(&report, "trust-root"),
        BTreeSet::from([("allowed_signers".to_owned(), first)]),
        "{report:#}"
    );
}

/// A submodule entry (a gitlink, mode 160000) where an event belongs, in a commit lea
/// signs: the audit holds plain files only (`history-rewrite` where it was added), and
/// at HEAD the event name sits on something that is not a file (`unexpected-file`).
#[test]
fn a_submodule_entry_under_audit() {
    let w = AuditWs::new();
    w.propose_and_approve();
    let head = rev(&w, "HEAD");
    let rel = event_rel(7);
    let tree = tree_with(&w, &head, &[Edit::Put("160000", head.clone(), &rel)]);
    let c = commit(&w, &tree, &[&head], Some(LEA), "vendor");
    move_main(&w, &c);
    let report = expect_codes(&w, &[], &["history-rewrite", "unexpected-file"]);
    assert_eq!(
        located(&report, "history-rewrite"),
        BTreeSet::from([(rel.clone(), c)]),
        "{report:#}"
    );
    let reason = report["problems"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["code"] == "history-rewrite")
        .unwrap()["reason"]
        .to_string();
    assert!(reason.contains("submodule entry"), "{reason}");
}

/// `approval-matrix.yaml` replaced by a symlink in a commit the admin signs: the
/// configuration is read from plain files only (`config-link`), whoever signs.
#[test]
fn a_symlink_at_the_matrix() {
    let w = AuditWs::new();
    ok(&w.hitl(AGENT, &["propose", "refund-4711"]));
    let head = rev(&w, "HEAD");
    let link = blob(&w, b"../elsewhere/approval-matrix.yaml");
    let tree = tree_with(
        &w,
        &head,
        &[Edit::Put("120000", link, "approval-matrix.yaml")],
    );
    let c = commit(&w, &tree, &[&head], Some(ALEX), "share the matrix");
    move_main(&w, &c);
    let report = expect_codes(&w, &[], &["config-link"]);
    assert_eq!(
        located(&report, "config-link"),
        BTreeSet::from([("approval-matrix.yaml".to_owned(), c)]),
        "{report:#}"
    );
}

/// A merge that changes the configuration only (the matrix, from a branch): a problem,
/// as a merge that changes the audit is. A merge of a branch that touched neither is
/// none.
#[test]
fn a_merge_that_changes_the_matrix_and_one_that_changes_nothing_watched() {
    let w = AuditWs::new();
    ok(&w.hitl(AGENT, &["propose", "refund-4711"]));
    let head = rev(&w, "HEAD");
    let readme = blob(&w, b"notes\n");
    let docs_tree = tree_with(&w, &head, &[Edit::Put("100644", readme, "NOTES.md")]);
    let docs = commit(&w, &docs_tree, &[&head], None, "notes");
    let merged_docs = commit(&w, &docs_tree, &[&head, &docs], None, "merge notes");
    move_main(&w, &merged_docs);
    expect_codes(&w, &[], &[]);

    let mut matrix = w.git(&["cat-file", "blob", "HEAD:approval-matrix.yaml"]);
    matrix.push_str("# tuned on a branch\n");
    let tuned = blob(&w, matrix.as_bytes());
    let tuned_tree = tree_with(
        &w,
        &merged_docs,
        &[Edit::Put("100644", tuned, "approval-matrix.yaml")],
    );
    let branch = commit(&w, &tuned_tree, &[&merged_docs], Some(ALEX), "tune");
    let merge = commit(
        &w,
        &tuned_tree,
        &[&merged_docs, &branch],
        Some(ALEX),
        "merge",
    );
    move_main(&w, &merge);
    let report = expect_codes(&w, &[], &["history-merge"]);
    assert_eq!(
        located(&report, "history-merge"),
        BTreeSet::from([("approval-matrix.yaml".to_owned(), merge)]),
        "{report:#}"
    );
}

/// `--trust-root COMMIT` pins the root of trust: the right commit verifies (and the
/// summary says it was pinned), another commit is `trust-root-mismatch` (the history's
/// root named), and an abbreviation is refused as a bad command line: a prefix is one
/// the repository's writers could make ambiguous.
#[test]
fn trust_root_pins_the_root_of_trust() {
    let w = AuditWs::new();
    w.propose_and_approve();
    let first = first_commit(&w);
    let head = rev(&w, "HEAD");
    let report = expect_codes(&w, &["--trust-root", &first], &[]);
    assert_eq!(report["trust_root"]["commit"], first.as_str());
    let table = ok(&w.read(&["verify", "--trust-root", &first]));
    assert!(
        table.contains(&format!(
            "trust root: commit {first}, allowed_signers sha256:"
        )) && table.contains("(pinned by --trust-root)"),
        "{table}"
    );

    let report = expect_codes(&w, &["--trust-root", &head], &["trust-root-mismatch"]);
    let p = &report["problems"][0];
    assert_eq!(p["commit"], first.as_str(), "{report:#}");
    let reason = p["reason"].as_str().unwrap();
    assert!(
        reason.contains(&format!("root of trust is commit {first}"))
            && reason.contains(&format!("not commit {head}")),
        "{reason}"
    );
    let upper = first.to_ascii_uppercase();
    expect_codes(&w, &["--trust-root", &upper], &[]);
    expect_codes(
        &w,
        &["--trust-root", &"0".repeat(40)],
        &["trust-root-mismatch"],
    );

    let o = w.read(&["verify", "--trust-root", &first[..12]]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("full commit id"), "{}", stderr(&o));
    let o = w.read(&["verify", "--trust-root", "main"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
}

/// `hitl checkpoint` records the root of trust (commit and `allowed_signers` digest) in
/// its signed statement. The whole history then replaced by one re-signed by the same
/// people from a new root (the same files, so every event is byte for byte the same):
/// consistent in itself, so `verify` alone is clean, but `--checkpoint` names the
/// rewrite and the other root. A v1 checkpoint (before the root was recorded) is still
/// read, and says it pins the head only.
#[test]
fn a_checkpoint_records_the_root_of_trust() {
    let w = AuditWs::new();
    ok(&w.hitl(AGENT, &["propose", "refund-4711"]));
    let proposed = rev(&w, "HEAD");
    ok(&w.hitl(LEA, &["approve", "refund-4711"]));
    let head = rev(&w, "HEAD");
    let first = first_commit(&w);
    let o = w.hitl(LEA, &["checkpoint"]);
    let text = ok(&o);
    assert!(text.starts_with("hitl checkpoint v2\n"), "{text}");
    let line: serde_json::Value = serde_json::from_str(text.lines().nth(1).unwrap()).unwrap();
    assert_eq!(line["seq"], 6, "{line}");
    assert_eq!(line["commit"], head.as_str(), "{line}");
    assert_eq!(line["trust_root"]["commit"], first.as_str(), "{line}");
    let signers = std::fs::read(w.ws().join("allowed_signers")).unwrap();
    assert_eq!(
        line["trust_root"]["allowed_signers"],
        hitl_lib::audit::sha256_hex(&signers).as_str(),
        "{line}"
    );
    let cp: PathBuf = w.dir.path().join("checkpoint.txt");
    std::fs::write(&cp, &text).unwrap();
    let cp_arg = cp.to_str().unwrap();
    let report = expect_codes(&w, &["--checkpoint", cp_arg], &[]);
    assert_eq!(report["checkpoint"]["trust_root"]["commit"], first.as_str());
    let table = ok(&w.read(&["verify", "--checkpoint", cp_arg]));
    assert!(table.contains("(as the checkpoint records)"), "{table}");

    // The same history again from a new root, every commit re-signed by its author.
    let root2 = commit(&w, &tree_of(&w, &first), &[], Some(LEA), "workspace");
    let proposed2 = commit(
        &w,
        &tree_of(&w, &proposed),
        &[&root2],
        Some(AGENT),
        "propose",
    );
    let approved2 = commit(&w, &tree_of(&w, &head), &[&proposed2], Some(LEA), "approve");
    move_main(&w, &approved2);
    let report = expect_codes(&w, &[], &[]);
    assert_eq!(report["trust_root"]["commit"], root2.as_str());
    let report = expect_codes(
        &w,
        &["--checkpoint", cp_arg],
        &["checkpoint-rewritten", "trust-root-mismatch"],
    );
    let mismatch = report["problems"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["code"] == "trust-root-mismatch")
        .unwrap();
    assert_eq!(mismatch["commit"], root2.as_str(), "{report:#}");
    assert!(
        mismatch["reason"]
            .as_str()
            .unwrap()
            .contains(&format!("not commit {first}")),
        "{report:#}"
    );
    expect_codes(&w, &["--trust-root", &first], &["trust-root-mismatch"]);

    // A v1 checkpoint of the new head, signed by hand as hitl used to: read, head only.
    let event = hitl_lib::audit::sha256_hex(&std::fs::read(w.event_file(6)).unwrap());
    let v1 = format!(r#"{{"seq":6,"event":"{event}","commit":"{approved2}"}}"#);
    let msg = w.dir.path().join("v1.json");
    std::fs::write(&msg, &v1).unwrap();
    let signed: Output =
        super::audit::sign_file(w.dir.path(), &w.key(LEA), "hitl-checkpoint", &msg);
    ok(&signed);
    let sig = std::fs::read_to_string(w.dir.path().join("v1.json.sig")).unwrap();
    let old = w.dir.path().join("v1-checkpoint.txt");
    std::fs::write(&old, format!("hitl checkpoint v1\n{v1}\n{sig}")).unwrap();
    let old_arg = old.to_str().unwrap();
    let report = expect_codes(&w, &["--checkpoint", old_arg], &[]);
    assert!(report["checkpoint"]["trust_root"].is_null(), "{report:#}");
    let table = ok(&w.read(&["verify", "--checkpoint", old_arg]));
    assert!(
        table.starts_with("checkpoint: seq 6, signed by lea@example.com (SHA256:")
            && table.contains("records no root of trust (a v1 checkpoint)"),
        "{table}"
    );
}

/// A commit time outside what chrono can represent used to become 1970 (and pass any
/// `valid-before`): now it is `commit-time`, and the signature is judged at no instant.
/// The commit adds a well-formed blob to the audit, signed by a trusted key.
#[test]
fn a_commit_time_out_of_range_fails_closed() {
    let w = AuditWs::new();
    ok(&w.hitl(AGENT, &["propose", "refund-4711"]));
    let head = rev(&w, "HEAD");
    let bytes = b"a note\n";
    let digest = hitl_lib::audit::sha256_hex(bytes);
    let path = format!("audit/blobs/{}/{digest}", &digest[..2]);
    let tree = tree_with(&w, &head, &[Edit::Put("100644", blob(&w, bytes), &path)]);
    let far = "@99999999999999 +0000";
    let env = [("GIT_COMMITTER_DATE", far), ("GIT_AUTHOR_DATE", far)];
    let c = commit_tree(&w, &env, &tree, &[&head], Some(LEA), "note");
    assert!(
        w.git(&["cat-file", "commit", &c])
            .contains(" 99999999999999 +0000"),
        "the commit holds the far time"
    );
    move_main(&w, &c);
    let report = expect_codes(&w, &[], &["commit-time"]);
    assert_eq!(report["problems"][0]["commit"], c.as_str(), "{report:#}");
}

/// The signer file kept with a checkpoint outside the repository: lea may sign
/// checkpoints (`hitl-checkpoint`).
fn anchor(w: &AuditWs) -> String {
    let public = std::fs::read_to_string(w.key(LEA).with_extension("com.pub")).unwrap();
    let file = w.dir.path().join("checkpoint_signers");
    std::fs::write(
        &file,
        format!("{LEA} namespaces=\"hitl-checkpoint\" {public}"),
    )
    .unwrap();
    file.display().to_string()
}

/// `hitl checkpoint --adopt CP --allowed-signers ANCHOR`.
fn adopt(w: &AuditWs, cp: &std::path::Path) -> Output {
    w.read(&[
        "checkpoint",
        "--adopt",
        cp.to_str().unwrap(),
        "--allowed-signers",
        &anchor(w),
    ])
}

/// `hitl checkpoint` of the history after a proposal, kept outside the repository.
fn kept_checkpoint(w: &AuditWs) -> std::path::PathBuf {
    let out = ok(&w.hitl(LEA, &["checkpoint"]));
    let file = w.dir.path().join("kept.checkpoint");
    std::fs::write(&file, out).unwrap();
    file
}

/// A fresh clone adopts a kept checkpoint: HEAD extends its commit, its signer is
/// trusted there, and the commits since are governed; the clone's checked head is then
/// HEAD, so its first decision walks nothing. A commit since the checkpoint that breaks
/// the governance rule (the matrix changed by a non-admin) is still refused; a
/// checkpoint edited in any byte, or of another history, is refused.
#[test]
fn a_fresh_clone_adopts_a_checkpoint_and_governs_the_commits_since() {
    let w = AuditWs::new();
    ok(&w.hitl(AGENT, &["propose", "refund-4711"]));
    let cp = kept_checkpoint(&w);
    ok(&w.hitl(LEA, &["approve", "refund-4711"]));
    w.as_other_clone();
    let out = ok(&adopt(&w, &cp));
    assert!(out.starts_with("adopted the checkpoint of event "), "{out}");
    assert!(out.contains(" by lea@example.com: HEAD "), "{out}");
    let checked = std::fs::read_to_string(w.ws().join(".git/hitl-config-checked")).unwrap();
    assert_eq!(checked.trim(), rev(&w, "HEAD"));
    assert!(ok(&w.read(&["status", "refund-4711"])).contains("approved"));
    // Edited in one byte of its statement.
    let text = std::fs::read_to_string(&cp).unwrap();
    let edited = w.dir.path().join("edited.checkpoint");
    std::fs::write(&edited, text.replacen("\"seq\":", "\"seq\": ", 1)).unwrap();
    let o = adopt(&w, &edited);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    // Of another history.
    let other = AuditWs::new();
    ok(&other.hitl(AGENT, &["propose", "refund-4711"]));
    let foreign = kept_checkpoint(&other);
    let o = adopt(&w, &foreign);
    assert_eq!(o.status.code(), Some(6), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("which this clone does not have"),
        "{}",
        stderr(&o)
    );
    // A commit since the checkpoint that breaks the governance rule.
    let m = w.ws().join("approval-matrix.yaml");
    let matrix = std::fs::read_to_string(&m).unwrap();
    std::fs::write(&m, format!("{matrix}\n# ravi was here\n")).unwrap();
    w.commit_all(Some(RAVI), "matrix by a non-admin");
    w.as_other_clone();
    let o = adopt(&w, &cp);
    assert_eq!(o.status.code(), Some(6), "{}", stderr(&o));
    assert!(
        !w.ws().join(".git/hitl-config-checked").exists(),
        "nothing remembered"
    );
}

/// A HEAD that does not extend the checkpoint's commit along its first parents (the
/// branch reset to before it) is refused: not the history the checkpoint vouches for.
#[test]
fn a_checkpoint_head_does_not_extend_is_refused() {
    let w = AuditWs::new();
    ok(&w.hitl(AGENT, &["propose", "refund-4711"]));
    let before = rev(&w, "HEAD");
    ok(&w.hitl(LEA, &["approve", "refund-4711"]));
    let cp = kept_checkpoint(&w);
    move_main(&w, &before);
    w.as_other_clone();
    let o = adopt(&w, &cp);
    assert_eq!(o.status.code(), Some(6), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("does not extend the checkpoint's commit"),
        "{}",
        stderr(&o)
    );
}

/// No checked head, seq index or folds: a fresh clone (whatever exists).
fn fresh(w: &AuditWs) {
    let _ = std::fs::remove_file(w.ws().join(".git/hitl-config-checked"));
    let _ = std::fs::remove_file(w.ws().join(".git/hitl-seq-index"));
    let _ = std::fs::remove_dir_all(w.ws().join(".git/hitl-fold"));
}

/// A checkpoint signed by hand with `key` under `hitl-checkpoint`, naming `commit` and
/// the real last event `seq` of `w` there.
fn hand_checkpoint(w: &AuditWs, key: &std::path::Path, commit: &str, seq: u64) -> PathBuf {
    let event = hitl_lib::audit::sha256_hex(&std::fs::read(w.event_file(seq)).unwrap());
    let zero = "0".repeat(64);
    let line = format!(
        r#"{{"seq":{seq},"event":"{event}","commit":"{commit}","trust_root":{{"commit":"{commit}","allowed_signers":"{zero}"}}}}"#
    );
    let dir = w.dir.path();
    let msg = dir.join("hand.json");
    std::fs::write(&msg, &line).unwrap();
    let _ = std::fs::remove_file(dir.join("hand.json.sig"));
    let o = super::audit::sh(
        dir,
        "ssh-keygen",
        &[
            "-q",
            "-Y",
            "sign",
            "-n",
            "hitl-checkpoint",
            "-f",
            key.to_str().unwrap(),
            msg.to_str().unwrap(),
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let sig = std::fs::read_to_string(dir.join("hand.json.sig")).unwrap();
    let file = dir.join("hand.checkpoint");
    std::fs::write(&file, format!("hitl checkpoint v2\n{line}\n{sig}")).unwrap();
    file
}

/// From the attack review of `--adopt`: someone with push access and no trusted key
/// adds their key as lea's in an unsigned commit and signs a checkpoint of it; an
/// agent's key signs one too. The signer is judged by the signer file kept with the
/// checkpoint, never by the history it vouches for: both refused, nothing remembered,
/// and the walk from the root refuses mallory's commit as before.
#[test]
fn adopt_never_trusts_a_signer_the_history_names() {
    let w = AuditWs::new();
    ok(&w.hitl(AGENT, &["propose", "refund-4711"]));
    let public = std::fs::read_to_string(w.key(MALLORY).with_extension("com.pub")).unwrap();
    let f = w.ws().join("allowed_signers");
    let before = std::fs::read_to_string(&f).unwrap();
    std::fs::write(
        &f,
        format!("{before}{LEA} namespaces=\"git,hitl,hitl-approval,hitl-checkpoint\" {public}"),
    )
    .unwrap();
    w.commit_all(None, "mallory adds her key as lea");
    for who in [MALLORY, AGENT] {
        fresh(&w);
        let cp = hand_checkpoint(&w, &w.key(who), &rev(&w, "HEAD"), 1);
        let o = adopt(&w, &cp);
        assert_eq!(o.status.code(), Some(6), "{who}: {}", stderr(&o));
        assert!(
            stderr(&o).contains("its signer is not trusted by the signer file given"),
            "{}",
            stderr(&o)
        );
        assert!(!w.ws().join(".git/hitl-config-checked").exists());
    }
    let o = w.hitl(MALLORY, &["approve", "refund-4711"]);
    assert_eq!(o.status.code(), Some(6), "{}", stderr(&o));
}

/// A checkpoint of another head (its event not the last at its commit, as a sibling
/// workspace's or an edited one would be) is refused; so is one whose signer was
/// revoked since, at HEAD.
#[test]
fn adopt_refuses_another_workspaces_checkpoint_and_a_signer_revoked_since() {
    let w = AuditWs::new();
    ok(&w.hitl(AGENT, &["propose", "refund-4711"]));
    ok(&w.hitl(LEA, &["approve", "refund-4711"]));
    let head = rev(&w, "HEAD");
    let cp = hand_checkpoint(&w, &w.key(LEA), &head, 1);
    fresh(&w);
    let o = adopt(&w, &cp);
    assert_eq!(o.status.code(), Some(6), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("is not this workspace's last event at commit"),
        "{}",
        stderr(&o)
    );
    let cp = kept_checkpoint(&w);
    let public = std::fs::read_to_string(w.key(LEA).with_extension("com.pub")).unwrap();
    std::fs::write(w.ws().join("revoked_signers"), public).unwrap();
    w.commit_all(Some(ALEX), "revoke lea");
    fresh(&w);
    let o = adopt(&w, &cp);
    assert_eq!(o.status.code(), Some(6), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("its signer is not trusted by the signer file given"),
        "{}",
        stderr(&o)
    );
}
