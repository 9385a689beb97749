//! `change.precondition` (docs/approvals.md): where a proposal names the command that
//! reads the target's state, `hitl exec` runs it before the approval is spent and the
//! world must still be the `change.before` the approvers approved. The command and the
//! state come from the recorded proposal of the request's current version (the bytes
//! the engine folds, never `requests/` in the working tree); the CLI runs it, this
//! module compares what it printed.

use serde_json::Value;

use crate::approval::check::Refusal;

/// The recorded proposal's precondition: the command and the state it must find.
#[derive(Debug, Clone, PartialEq)]
pub struct Precondition {
    pub request: String,
    /// The program and its arguments (no shell).
    pub command: Vec<String>,
    /// `change.before`, as approved.
    pub before: Value,
}

/// How the precondition's command ended: its exit code (`None` when a signal ended
/// it) and its standard output.
#[derive(Debug, Clone)]
pub struct Ran {
    pub exit_code: Option<i32>,
    pub stdout: Vec<u8>,
}

impl Precondition {
    /// The precondition of a proposal, when it has both `change.before` and
    /// `change.precondition`.
    #[must_use]
    pub fn of(r: &crate::request::Request) -> Option<Self> {
        let c = r.change.as_ref()?;
        (!c.precondition.is_empty()).then(|| Self {
            request: r.id.clone(),
            command: c.precondition.clone(),
            before: c.before.clone(),
        })
    }

    /// Whether the command found the approved state: it ran (`ran` is `Err` with why
    /// it could not be started), exited 0, printed JSON, and that JSON equals
    /// `change.before` as a value (numbers by value: `60` is `60.0`).
    ///
    /// # Errors
    /// [`Refusal::Precondition`], naming the first differing JSON path.
    pub fn judge(&self, ran: Result<Ran, String>) -> Result<(), Refusal> {
        let refused = |why: String| Refusal::Precondition {
            request: self.request.clone(),
            why,
        };
        let program = self.command.first().map_or("", String::as_str);
        let ran = ran.map_err(|e| refused(format!("`{program}`: {e}")))?;
        match ran.exit_code {
            Some(0) => {}
            Some(code) => return Err(refused(format!("`{program}` exited with {code}"))),
            None => return Err(refused(format!("`{program}` was ended by a signal"))),
        }
        let found: Value = serde_json::from_slice(&ran.stdout).map_err(|e| {
            refused(format!(
                "the output of `{program}` is not JSON (line {}, column {}: {e})",
                e.line(),
                e.column()
            ))
        })?;
        match first_difference(&self.before, &found, "$") {
            None => Ok(()),
            Some(d) => Err(refused(format!("`change.before` differs at {d}"))),
        }
    }
}

/// A value as a message shows it: its JSON, cut at 60 characters.
fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 60 {
        format!("{}...", s.chars().take(60).collect::<String>())
    } else {
        s
    }
}

/// The first difference at `at` between a member (of an object or an array) of the
/// approved state and the found one, either of which may be missing.
fn member_difference(expected: Option<&Value>, found: Option<&Value>, at: &str) -> Option<String> {
    match (expected, found) {
        (Some(x), Some(y)) => first_difference(x, y, at),
        (Some(x), None) => Some(format!(
            "`{at}`: the approved state has {}, the precondition found nothing",
            short(x)
        )),
        (None, Some(y)) => Some(format!(
            "`{at}`: the approved state has nothing, the precondition found {}",
            short(y)
        )),
        (None, None) => None,
    }
}

/// The first place where `found` is not `expected`, as `PATH: expected X, found Y`
/// (object keys in sorted order, then array items in order); `None` when equal as
/// JSON values.
#[must_use]
pub fn first_difference(expected: &Value, found: &Value, path: &str) -> Option<String> {
    let differs = || {
        Some(format!(
            "`{path}`: the approved state has {}, the precondition found {}",
            short(expected),
            short(found)
        ))
    };
    match (expected, found) {
        (Value::Number(a), Value::Number(b)) => {
            let same = match (a.as_i64(), b.as_i64(), a.as_u64(), b.as_u64()) {
                (Some(x), Some(y), _, _) => x == y,
                (_, _, Some(x), Some(y)) => x == y,
                _ => a.as_f64() == b.as_f64(),
            };
            if same { None } else { differs() }
        }
        (Value::Object(a), Value::Object(b)) => {
            let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
            keys.sort_unstable();
            keys.dedup();
            keys.into_iter()
                .find_map(|k| member_difference(a.get(k), b.get(k), &key_path(path, k)))
        }
        (Value::Array(a), Value::Array(b)) => (0..a.len().max(b.len()))
            .find_map(|i| member_difference(a.get(i), b.get(i), &format!("{path}[{i}]"))),
        (a, b) if a == b => None,
        _ => differs(),
    }
}

/// `PATH.key` for a plain name, `PATH["key"]` otherwise (so a key with a dot or a
/// bracket cannot pass for a path).
fn key_path(path: &str, key: &str) -> String {
    let plain = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if plain {
        format!("{path}.{key}")
    } else {
        format!("{path}[{}]", Value::String(key.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pre() -> Precondition {
        Precondition {
            request: "r".to_owned(),
            command: vec!["state".to_owned()],
            before: json!({"charge": "ch_1", "refunded": 0, "limits": {"max": 60}, "tags": ["a"]}),
        }
    }

    fn ran(out: &str) -> Result<Ran, String> {
        Ok(Ran {
            exit_code: Some(0),
            stdout: out.as_bytes().to_vec(),
        })
    }

    #[test]
    fn equal_values_hold_and_numbers_compare_by_value() {
        let p = pre();
        assert_eq!(
            p.judge(ran(
                r#"{"tags":["a"],"limits":{"max":60.0},"refunded":0.0,"charge":"ch_1"}"#
            )),
            Ok(())
        );
    }

    #[test]
    fn the_first_differing_path_is_named() {
        let p = pre();
        let why = |out: &str| match p.judge(ran(out)) {
            Err(Refusal::Precondition { why, .. }) => why,
            other => panic!("{other:?}"),
        };
        assert!(
            why(r#"{"charge":"ch_1","refunded":180,"limits":{"max":61},"tags":["a"]}"#)
                .contains("`$.limits.max`: the approved state has 60, the precondition found 61")
        );
        assert!(
            why(r#"{"charge":"ch_1","refunded":0,"limits":{"max":60},"tags":[]}"#)
                .contains("`$.tags[0]`")
        );
        assert!(
            why(r#"{"charge":"ch_1","refunded":0,"limits":{"max":60},"tags":["a"],"a.b":1}"#)
                .contains(r#"`$["a.b"]`: the approved state has nothing"#)
        );
        assert!(why("not json").contains("is not JSON"));
        assert!(why(r#"{"charge":"ch_1"} trailing"#).contains("is not JSON"));
        assert!(why(r#""60""#).contains("`$`"));
    }

    #[test]
    fn a_failing_or_missing_command_is_refused() {
        let p = pre();
        let failed = p.judge(Ok(Ran {
            exit_code: Some(3),
            stdout: b"{}".to_vec(),
        }));
        assert!(
            matches!(failed, Err(Refusal::Precondition { why, .. }) if why.contains("exited with 3"))
        );
        let missing = p.judge(Err(
            "it could not be run: No such file or directory".to_owned()
        ));
        assert!(
            matches!(missing, Err(Refusal::Precondition { why, .. }) if why.contains("could not be run"))
        );
    }
}
