//! Free text from people and agents (an approver's `--comment`, a `--reason-code`) is
//! inert: it gets the refusal proposals get ([`crate::decode::is_forbidden_char`]:
//! terminal control characters, zero-width and other invisible format characters, the
//! BOM, bidirectional marks and overrides, line and paragraph separators), before
//! anything is recorded. A plain newline (`\n`) and a tab are allowed, as in proposals:
//! renderers indent or escape them.

/// The first character of `text` that must never reach a terminal: its position
/// (1-based, counted in characters) and the character.
#[must_use]
pub fn first_forbidden(text: &str) -> Option<(usize, char)> {
    text.chars()
        .enumerate()
        .find(|(_, c)| crate::decode::is_forbidden_char(*c))
        .map(|(i, c)| (i + 1, c))
}

/// Free text that was refused: the field it came in, and where its first bad character
/// sits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{field}` contains the control character U+{code:04X} at character {position}; terminal control and invisible characters (zero-width, BOM, bidirectional marks, line separators) are refused in recorded text",
    code = u32::from(*.character)
)]
pub struct TextError {
    /// How the text was given: `--comment`, `--reason-code`.
    pub field: String,
    /// 1-based, in characters.
    pub position: usize,
    pub character: char,
}

/// Checks one free-text field; `None` (not given) is fine.
///
/// # Errors
/// The field and the position of its first forbidden character.
pub fn check(field: &str, text: Option<&str>) -> Result<(), TextError> {
    match text.and_then(first_forbidden) {
        Some((position, character)) => Err(TextError {
            field: field.to_owned(),
            position,
            character,
        }),
        None => Ok(()),
    }
}

/// The free text of a decision: its reason code and comment.
///
/// # Errors
/// As [`check`], for the first field that holds a forbidden character.
pub fn check_decision(reason_code: Option<&str>, comment: Option<&str>) -> Result<(), TextError> {
    check("--reason-code", reason_code)?;
    check("--comment", comment)
}

/// Untrusted text for a terminal: every character [`crate::decode::is_forbidden_char`]
/// refuses is shown as a `\u{..}` escape, so nothing recorded (even by hand-made git
/// objects that no check saw) can steer the terminal. Newlines and tabs are kept.
#[must_use]
pub fn escape(s: &str) -> String {
    if !s.chars().any(crate::decode::is_forbidden_char) {
        return s.to_owned();
    }
    s.chars()
        .map(|c| {
            if crate::decode::is_forbidden_char(c) {
                format!("\\u{{{:04x}}}", u32::from(c))
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// [`escape`] for a one-line field (a principal, a seq's type, a reason code): newlines
/// and tabs are escaped too, so a recorded value cannot forge the next line.
#[must_use]
pub fn escape_line(s: &str) -> String {
    escape(s).replace('\n', "\\n").replace('\t', "\\t")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_bad_character_is_named_with_its_position() {
        assert_eq!(check("--comment", None), Ok(()));
        assert_eq!(check("--comment", Some("fine\n\tmultiline")), Ok(()));
        for (text, position, character) in [
            ("ok \u{1b}[2J", 4, '\u{1b}'),
            ("\u{1b}]8;;http://x\u{7}", 1, '\u{1b}'),
            ("zero\u{200b}width", 5, '\u{200b}'),
            ("\u{feff}bom", 1, '\u{feff}'),
            ("é\u{202e}txt", 2, '\u{202e}'),
            ("line\u{2028}sep", 5, '\u{2028}'),
            ("cr\r\n", 3, '\r'),
        ] {
            let e = check("--comment", Some(text)).unwrap_err();
            assert_eq!((e.position, e.character), (position, character), "{text:?}");
            let msg = e.to_string();
            assert!(msg.starts_with("`--comment` contains"), "{msg}");
            assert!(msg.contains(&format!("at character {position}")), "{msg}");
            assert!(!msg.contains(character), "{msg}");
        }
        let e = check_decision(Some("x\u{1b}"), Some("\u{1b}")).unwrap_err();
        assert_eq!(e.field, "--reason-code");
    }

    #[test]
    fn escaping_leaves_nothing_a_terminal_obeys() {
        assert_eq!(escape("plain\nline"), "plain\nline");
        assert_eq!(escape("a\u{1b}[2Jb"), "a\\u{001b}[2Jb");
        assert_eq!(escape_line("a\nb\tc\u{202e}"), "a\\nb\\tc\\u{202e}");
    }
}
