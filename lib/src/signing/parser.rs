//! The line parser of `allowed_signers` and `revoked_signers`, as OpenSSH reads them:
//! principals, options (`namespaces=`, `valid-after=`, `valid-before=`), times and keys.

use std::path::Path;

use chrono::{DateTime, NaiveDate, Utc};
use ssh_key::{Algorithm, PublicKey};

use super::{SignerEntry, SigningError};

const CERT_SUFFIX: &str = "-cert-v01@openssh.com";

#[derive(Default)]
struct SigOptions {
    namespaces: Option<Vec<String>>,
    valid_after: Option<DateTime<Utc>>,
    valid_before: Option<DateTime<Utc>>,
}

pub(super) struct LineParser<'a> {
    file: &'a Path,
    line: usize,
    text: &'a str,
    pos: usize,
}

fn is_ws(c: char) -> bool {
    c == ' ' || c == '\t'
}

impl<'a> LineParser<'a> {
    pub(super) fn new(file: &'a Path, line: usize, raw: &'a str) -> Self {
        Self {
            file,
            line,
            text: raw.strip_suffix('\r').unwrap_or(raw),
            pos: 0,
        }
    }

    fn err(&self, at: usize, message: impl Into<String>) -> SigningError {
        let column = self.text.get(..at).map_or(1, |s| s.chars().count() + 1);
        SigningError::Parse {
            file: self.file.to_path_buf(),
            line: self.line,
            column,
            message: message.into(),
        }
    }

    fn rest(&self) -> &'a str {
        self.text.get(self.pos..).unwrap_or("")
    }

    pub(super) fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    pub(super) fn at_end(&self) -> bool {
        self.rest().is_empty()
    }

    pub(super) fn skip_ws(&mut self) {
        let rest = self.rest();
        self.pos += rest.len() - rest.trim_start_matches(is_ws).len();
    }

    /// The next run of non-blank characters, without consuming it.
    fn peek_word(&self) -> &'a str {
        let rest = self.rest();
        rest.find(is_ws).map_or(rest, |end| &rest[..end])
    }

    /// Takes the next run of non-blank characters; returns its start and text.
    fn word(&mut self) -> (usize, &'a str) {
        let start = self.pos;
        let word = self.peek_word();
        self.pos += word.len();
        (start, word)
    }

    /// Takes a `"..."` string (`\"` stands for `"`), as OpenSSH's `opt_dequote`.
    fn quoted(&mut self, what: &str) -> Result<String, SigningError> {
        let start = self.pos;
        if self.peek() != Some('"') {
            return Err(self.err(start, format!("{what} must be quoted: `\"...\"`")));
        }
        let mut out = String::new();
        let mut chars = self.rest().char_indices().skip(1).peekable();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' if chars.peek().map(|&(_, n)| n) == Some('"') => {
                    out.push('"');
                    chars.next();
                }
                '"' => {
                    self.pos += i + 1;
                    return Ok(out);
                }
                c => out.push(c),
            }
        }
        Err(self.err(start, format!("{what} has no closing `\"`")))
    }

    /// Parses one `allowed_signers` line; `None` for blank and comment lines.
    pub(super) fn signer_entry(&mut self) -> Result<Option<SignerEntry>, SigningError> {
        self.skip_ws();
        if self.at_end() || self.peek() == Some('#') {
            return Ok(None);
        }
        let principals_at = self.pos;
        let principals_text = if self.peek() == Some('"') {
            self.quoted("the principals")?
        } else {
            self.word().1.to_owned()
        };
        let principals: Vec<String> = principals_text.split(',').map(str::to_owned).collect();
        if principals.iter().any(String::is_empty) {
            return Err(self.err(
                principals_at,
                format!(
                    "empty principal in `{principals_text}`; separate principals with single commas"
                ),
            ));
        }
        if self.peek().is_some_and(|c| !is_ws(c)) {
            return Err(self.err(self.pos, "expected a blank after the principals"));
        }
        self.skip_ws();
        if self.at_end() {
            return Err(self.err(
                self.pos,
                "missing key after the principals; expected `PRINCIPALS [OPTIONS] KEYTYPE BASE64KEY`",
            ));
        }
        let options = if is_key_type(self.peek_word()) {
            SigOptions::default()
        } else {
            let options = self.options()?;
            self.skip_ws();
            if self.at_end() {
                return Err(self.err(
                    self.pos,
                    "missing key after the options; expected `KEYTYPE BASE64KEY`",
                ));
            }
            options
        };
        let key = self.public_key()?;
        Ok(Some(SignerEntry {
            principals,
            namespaces: options.namespaces,
            valid_after: options.valid_after,
            valid_before: options.valid_before,
            key,
            line: self.line,
        }))
    }

    /// Parses the options field, as OpenSSH's `sshsigopt_parse`.
    fn options(&mut self) -> Result<SigOptions, SigningError> {
        let field_at = self.pos;
        let mut opts = SigOptions::default();
        loop {
            let start = self.pos;
            let rest = self.rest();
            let name_len = rest
                .find(|c: char| c == '=' || c == ',' || is_ws(c))
                .unwrap_or(rest.len());
            let name = &rest[..name_len];
            let lower = name.to_ascii_lowercase();
            if lower == "cert-authority" {
                return Err(self.err(
                    start,
                    "`cert-authority` is not supported: hitl does not verify ssh certificates; list each signer's own key instead",
                ));
            }
            if !matches!(
                lower.as_str(),
                "namespaces" | "valid-after" | "valid-before"
            ) {
                let shown = if name.is_empty() { rest } else { name };
                return Err(self.err(
                    start,
                    format!(
                        "unknown option or key type `{shown}`; options are `namespaces=\"...\"`, `valid-after=\"...\"` and `valid-before=\"...\"`, followed by `KEYTYPE BASE64KEY`"
                    ),
                ));
            }
            if !rest[name_len..].starts_with('=') {
                return Err(self.err(
                    start,
                    format!("option `{name}` needs a value: `{lower}=\"...\"`"),
                ));
            }
            self.pos += name_len + 1;
            let value_at = self.pos;
            let value = self.quoted(&format!("the value of `{lower}`"))?;
            let duplicate = || self.err(start, format!("option `{lower}` is given twice"));
            match lower.as_str() {
                "namespaces" => {
                    if opts.namespaces.is_some() {
                        return Err(duplicate());
                    }
                    let list: Vec<String> = value.split(',').map(str::to_owned).collect();
                    if list
                        .iter()
                        .any(|n| n.is_empty() || n.contains(char::is_whitespace))
                    {
                        return Err(self.err(
                            value_at,
                            format!(
                                "bad namespace list `{value}`; write names separated by commas, without blanks: `namespaces=\"hitl,git\"`"
                            ),
                        ));
                    }
                    opts.namespaces = Some(list);
                }
                "valid-after" => {
                    if opts.valid_after.is_some() {
                        return Err(duplicate());
                    }
                    opts.valid_after = Some(self.time(value_at, &lower, &value)?);
                }
                _ => {
                    if opts.valid_before.is_some() {
                        return Err(duplicate());
                    }
                    opts.valid_before = Some(self.time(value_at, &lower, &value)?);
                }
            }
            match self.peek() {
                None => break,
                Some(c) if is_ws(c) => break,
                Some(',') => {
                    self.pos += 1;
                    if self.peek().is_none_or(is_ws) {
                        return Err(self.err(self.pos, "expected another option after `,`"));
                    }
                }
                Some(c) => {
                    return Err(self.err(
                        self.pos,
                        format!("unexpected `{c}` after an option; separate options with `,`"),
                    ));
                }
            }
        }
        if let (Some(after), Some(before)) = (opts.valid_after, opts.valid_before)
            && before <= after
        {
            return Err(self.err(field_at, "`valid-before` is not after `valid-after`"));
        }
        Ok(opts)
    }

    fn time(&self, at: usize, option: &str, value: &str) -> Result<DateTime<Utc>, SigningError> {
        parse_time(value).ok_or_else(|| {
            self.err(
                at,
                format!(
                    "invalid time `{value}` for `{option}`; expected `YYYYMMDD[HHMM[SS]][Z]` (always read as UTC)"
                ),
            )
        })
    }

    /// Parses `keytype base64 [comment]` from the current position.
    pub(super) fn public_key(&mut self) -> Result<PublicKey, SigningError> {
        let (type_at, key_type) = self.word();
        if key_type.ends_with(CERT_SUFFIX) {
            return Err(self.err(
                type_at,
                format!(
                    "`{key_type}` is a certificate; hitl does not verify ssh certificates, list the plain public key instead"
                ),
            ));
        }
        if !is_key_type(key_type) {
            return Err(self.err(
                type_at,
                format!("unknown key type `{key_type}`; expected e.g. `ssh-ed25519 AAAA...`"),
            ));
        }
        self.skip_ws();
        let (data_at, data) = self.word();
        if data.is_empty() {
            return Err(self.err(
                data_at,
                format!("missing base64 key data after `{key_type}`"),
            ));
        }
        self.skip_ws();
        let comment = self.rest().trim_end();
        let mut key = PublicKey::from_openssh(&format!("{key_type} {data}")).map_err(|e| {
            self.err(
                data_at,
                format!("invalid `{key_type}` key data ({e}); copy the line from the `.pub` file"),
            )
        })?;
        key.set_comment(comment);
        Ok(key)
    }
}

/// True for the name of a plain (non-certificate) public key type.
fn is_key_type(word: &str) -> bool {
    word.ends_with(CERT_SUFFIX)
        || Algorithm::new(word).is_ok_and(|a| !matches!(a, Algorithm::Other(_)))
}

/// `YYYYMMDD`, `YYYYMMDDHHMM` or `YYYYMMDDHHMMSS`, optionally followed by `Z` or `UTC`;
/// always UTC.
fn parse_time(value: &str) -> Option<DateTime<Utc>> {
    let digits = if value.len() > 1 && value.get(value.len() - 1..)?.eq_ignore_ascii_case("z") {
        value.get(..value.len() - 1)?
    } else if value.len() > 3 && value.get(value.len() - 3..)?.eq_ignore_ascii_case("utc") {
        value.get(..value.len() - 3)?
    } else {
        value
    };
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let num = |range: std::ops::Range<usize>| digits.get(range)?.parse::<u32>().ok();
    let (hour, minute, second) = match digits.len() {
        8 => (0, 0, 0),
        12 => (num(8..10)?, num(10..12)?, 0),
        14 => (num(8..10)?, num(10..12)?, num(12..14)?),
        _ => return None,
    };
    let year = i32::try_from(num(0..4)?).ok()?;
    let date = NaiveDate::from_ymd_opt(year, num(4..6)?, num(6..8)?)?;
    Some(date.and_hms_opt(hour, minute, second)?.and_utc())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signing::test_support::*;
    use chrono::TimeZone;

    #[test]
    fn allowed_signers_lines_and_options() {
        let text = format!(
            "# comment\n\n   # indented comment\n\
             lea@example.com,max@example.com {ED1} lea's laptop\r\n\
             ops-* NameSpaces=\"hitl,git\",VALID-AFTER=\"20250101\",valid-before=\"20251231235959Z\" {ED1}\n\
             \"quoted principal\" namespaces=\"a\\\"b\" {ED1}\n\
             \tbob\tnamespaces=\"git\"\t{ED1}\n"
        );
        let signers = parse(&text).unwrap();
        assert_eq!(signers.entries.len(), 4);
        let e = &signers.entries[0];
        assert_eq!(e.principals, ["lea@example.com", "max@example.com"]);
        assert_eq!(e.namespaces, None);
        assert_eq!(e.line, 4);
        assert_eq!(e.key.comment(), "lea's laptop");
        assert_eq!(e.key.key_data(), key1().key_data());
        let e = &signers.entries[1];
        assert_eq!(e.principals, ["ops-*"]);
        assert_eq!(
            e.namespaces.as_deref(),
            Some(&["hitl".to_owned(), "git".to_owned()][..])
        );
        assert_eq!(
            e.valid_after,
            Some(Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap())
        );
        assert_eq!(
            e.valid_before,
            Some(Utc.with_ymd_and_hms(2025, 12, 31, 23, 59, 59).unwrap())
        );
        assert_eq!(signers.entries[2].principals, ["quoted principal"]);
        assert_eq!(
            signers.entries[2].namespaces.as_deref(),
            Some(&["a\"b".to_owned()][..])
        );
        assert_eq!(signers.entries[3].principals, ["bob"]);
        assert_eq!(signers.entries[3].line, 7);
    }

    #[test]
    fn allowed_signers_times() {
        assert_eq!(
            parse_time("20250102"),
            Some(Utc.with_ymd_and_hms(2025, 1, 2, 0, 0, 0).unwrap())
        );
        assert_eq!(
            parse_time("202501021304"),
            Some(Utc.with_ymd_and_hms(2025, 1, 2, 13, 4, 0).unwrap())
        );
        assert_eq!(
            parse_time("20250102130405Z"),
            Some(Utc.with_ymd_and_hms(2025, 1, 2, 13, 4, 5).unwrap())
        );
        assert_eq!(
            parse_time("20250102utc"),
            Some(Utc.with_ymd_and_hms(2025, 1, 2, 0, 0, 0).unwrap())
        );
        for bad in [
            "",
            "Z",
            "2025010",
            "20251301",
            "20250230",
            "202501021360",
            "2025-01-02",
            "+2025010",
        ] {
            assert_eq!(parse_time(bad), None, "{bad}");
        }
    }

    #[test]
    fn malformed_lines_name_file_line_and_column() {
        let cases: &[(&str, &str)] = &[
            (
                "lea\n",
                "`allowed_signers:1:4`: missing key after the principals",
            ),
            (
                "\n  lea bogus=\"x\" ssh-ed25519 AAAA\n",
                "`allowed_signers:2:7`: unknown option or key type `bogus`",
            ),
            (
                "lea namespaces=hitl KEY\n",
                "`allowed_signers:1:16`: the value of `namespaces` must be quoted",
            ),
            (
                "lea namespaces=\"hitl KEY\n",
                "`allowed_signers:1:16`: the value of `namespaces` has no closing",
            ),
            (
                "lea namespaces=\"hitl\"\n",
                "`allowed_signers:1:22`: missing key after the options",
            ),
            (
                "lea namespaces=\"hitl\";x KEY\n",
                "`allowed_signers:1:22`: unexpected `;` after an option",
            ),
            (
                "lea namespaces=\"hitl\", KEY\n",
                "`allowed_signers:1:23`: expected another option after `,`",
            ),
            (
                "lea namespaces=\"a\",namespaces=\"b\" K\n",
                "`allowed_signers:1:20`: option `namespaces` is given twice",
            ),
            (
                "lea namespaces=\"hitl, git\" K\n",
                "`allowed_signers:1:16`: bad namespace list `hitl, git`",
            ),
            (
                "lea valid-after=\"2025\" K\n",
                "`allowed_signers:1:17`: invalid time `2025` for `valid-after`",
            ),
            (
                "lea valid-after=\"20250102\",valid-before=\"20250101\" K\n",
                "`allowed_signers:1:5`: `valid-before` is not after `valid-after`",
            ),
            (
                "lea cert-authority ssh-ed25519 AAAA\n",
                "`allowed_signers:1:5`: `cert-authority` is not supported",
            ),
            (
                "lea Cert-Authority,namespaces=\"git\" ssh-ed25519 AAAA\n",
                "`allowed_signers:1:5`: `cert-authority` is not supported",
            ),
            (
                "lea ssh-ed25519-cert-v01@openssh.com AAAA\n",
                "`allowed_signers:1:5`: `ssh-ed25519-cert-v01@openssh.com` is a certificate",
            ),
            (
                "lea ssh-ed25519\n",
                "`allowed_signers:1:16`: missing base64 key data after `ssh-ed25519`",
            ),
            (
                "lea ssh-ed25519 AAAA!!\n",
                "`allowed_signers:1:17`: invalid `ssh-ed25519` key data",
            ),
            (
                "lea,,max ssh-ed25519 AAAA\n",
                "`allowed_signers:1:1`: empty principal in `lea,,max`",
            ),
            (
                "lea namespaces=\"git\" ssh-ed2559 AAAA\n",
                "`allowed_signers:1:22`: unknown key type `ssh-ed2559`",
            ),
        ];
        for (text, expected) in cases {
            let err = parse_err(text);
            assert!(
                err.starts_with(expected),
                "{text:?}\n  got:      {err}\n  expected: {expected}"
            );
        }
        // An RSA key under the ed25519 type name is refused too.
        let rsa_under_ed = format!("lea ssh-ed25519 {}", "AAAAB3NzaC1yc2EAAAADAQABAAABAQ");
        assert!(parse_err(&rsa_under_ed).contains("invalid `ssh-ed25519` key data"));
        // Columns count characters, not bytes.
        let err = parse_err("lée bogus=\"x\" K\n");
        assert!(err.starts_with("`allowed_signers:1:5`"), "{err}");
        assert!(matches!(
            parse("x"),
            Err(SigningError::Parse {
                line: 1,
                column: 2,
                ..
            })
        ));
    }
}
