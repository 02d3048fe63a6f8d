//! Parser for the `attributes` column of the clickstream.
//!
//! The exports hold a map literal in one of several dialects: JSON (`{"purchase_id": "…"}`),
//! Python dict (`{'campaign_id': 296, 'channel_id': 'Google Ads'}`), either of them wrapped in
//! doubled braces (`{{…}}`), or nothing at all. Only three keys matter to the jobs, so this is
//! a small single-pass scanner rather than a general JSON parse: it borrows values from the
//! input and allocates only when a value has escapes.

use std::borrow::Cow;

/// The attributes the jobs use. Values are rendered as text: `296` becomes `"296"`;
/// `None`/`null` and absent keys are `None`.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Attributes<'a> {
    pub campaign_id: Option<Cow<'a, str>>,
    pub channel_id: Option<Cow<'a, str>>,
    pub purchase_id: Option<Cow<'a, str>>,
}

/// Parses an attributes field. An empty (or blank) field has no attributes.
///
/// When a key appears twice, its first value counts.
pub fn parse_attributes(text: &str) -> Result<Attributes<'_>, String> {
    let mut p = Parser {
        s: text.as_bytes(),
        text,
        i: 0,
    };
    let mut out = Attributes::default();
    p.ws();
    if p.at_end() {
        return Ok(out);
    }
    let mut braces = 0;
    while braces < 2 && p.peek() == Some(b'{') {
        p.i += 1;
        braces += 1;
        p.ws();
    }
    if braces == 0 {
        return Err(p.error("attributes must be empty or a map literal starting with '{'"));
    }
    let (mut seen_campaign, mut seen_channel, mut seen_purchase) = (false, false, false);
    p.ws();
    if p.peek() != Some(b'}') {
        loop {
            p.ws();
            let key = p.string()?;
            p.ws();
            if p.peek() != Some(b':') {
                return Err(p.error("expected ':' after a key"));
            }
            p.i += 1;
            p.ws();
            let slot = match key.as_ref() {
                "campaign_id" if !seen_campaign => {
                    seen_campaign = true;
                    Some(&mut out.campaign_id)
                }
                "channel_id" if !seen_channel => {
                    seen_channel = true;
                    Some(&mut out.channel_id)
                }
                "purchase_id" if !seen_purchase => {
                    seen_purchase = true;
                    Some(&mut out.purchase_id)
                }
                _ => None,
            };
            if slot.is_some() && matches!(p.peek(), Some(b'{' | b'[')) {
                // Not an id: taking it for a null would drop its revenue without a word.
                return Err(format!(
                    "nested value: {key} is a map or list, not an id (at character {})",
                    p.i + 1
                ));
            }
            let value = p.value()?;
            if let Some(slot) = slot {
                *slot = value;
            }
            p.ws();
            match p.peek() {
                Some(b',') => p.i += 1,
                Some(b'}') => break,
                _ => return Err(p.error("expected ',' or '}' after a value")),
            }
        }
    }
    for _ in 0..braces {
        p.ws();
        if p.peek() != Some(b'}') {
            return Err(p.error("unbalanced braces"));
        }
        p.i += 1;
    }
    p.ws();
    if !p.at_end() {
        return Err(p.error("unexpected text after the map"));
    }
    Ok(out)
}

struct Parser<'a> {
    s: &'a [u8],
    text: &'a str,
    i: usize,
}

impl<'a> Parser<'a> {
    fn at_end(&self) -> bool {
        self.i >= self.s.len()
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }

    fn error(&self, what: &str) -> String {
        format!(
            "unparseable attributes ({what}, at character {})",
            self.i + 1
        )
    }

    /// A value rendered as text; `None` for None/null.
    fn value(&mut self) -> Result<Option<Cow<'a, str>>, String> {
        match self.peek() {
            Some(b'"' | b'\'') => self.string().map(Some),
            Some(b'{' | b'[') => {
                self.skip_nested()?;
                Ok(None)
            }
            Some(_) => {
                let start = self.i;
                while matches!(self.peek(), Some(c) if c.is_ascii_alphanumeric() || matches!(c, b'-' | b'+' | b'.' | b'_'))
                {
                    self.i += 1;
                }
                let word = &self.text[start..self.i];
                match word {
                    "" => Err(self.error("expected a value")),
                    "None" | "null" => Ok(None),
                    "True" | "False" | "true" | "false" => Ok(Some(Cow::Borrowed(word))),
                    w if w.bytes().all(|c| {
                        c.is_ascii_digit() || matches!(c, b'-' | b'+' | b'.' | b'e' | b'E')
                    }) && w.bytes().any(|c| c.is_ascii_digit()) =>
                    {
                        Ok(Some(Cow::Borrowed(word)))
                    }
                    _ => Err(self.error("a bare word that is not a number, True/False or None")),
                }
            }
            None => Err(self.error("expected a value")),
        }
    }

    /// A quoted string in either quote style, with backslash escapes undone.
    fn string(&mut self) -> Result<Cow<'a, str>, String> {
        let quote = match self.peek() {
            Some(q @ (b'"' | b'\'')) => q,
            _ => return Err(self.error("expected a quoted string")),
        };
        self.i += 1;
        let start = self.i;
        // Fast path: no escapes, borrow the slice.
        while let Some(c) = self.peek() {
            if c == quote {
                let v = &self.text[start..self.i];
                self.i += 1;
                return Ok(Cow::Borrowed(v));
            }
            if c == b'\\' {
                break;
            }
            self.i += 1;
        }
        if self.at_end() {
            return Err(self.error("unterminated string"));
        }
        let mut owned = String::from(&self.text[start..self.i]);
        loop {
            let Some(c) = self.peek() else {
                return Err(self.error("unterminated string"));
            };
            if c == quote {
                self.i += 1;
                return Ok(Cow::Owned(owned));
            }
            if c == b'\\' {
                self.i += 1;
                let Some(e) = self.peek() else {
                    return Err(self.error("unterminated escape"));
                };
                self.i += 1;
                match e {
                    b'n' => owned.push('\n'),
                    b't' => owned.push('\t'),
                    b'r' => owned.push('\r'),
                    b'u' => {
                        let ch = self.unicode_escape()?;
                        owned.push(ch);
                    }
                    b'\\' | b'"' | b'\'' | b'/' => owned.push(e as char),
                    _ => return Err(self.error("unknown escape")),
                }
            } else {
                // Copy one whole UTF-8 character.
                let len = utf8_len(c);
                owned.push_str(&self.text[self.i..self.i + len]);
                self.i += len;
            }
        }
    }

    fn hex4(&mut self) -> Result<u32, String> {
        let digits = self
            .text
            .get(self.i..self.i + 4)
            .ok_or_else(|| self.error("short \\u escape"))?;
        let v = u32::from_str_radix(digits, 16).map_err(|_| self.error("bad \\u escape"))?;
        self.i += 4;
        Ok(v)
    }

    fn unicode_escape(&mut self) -> Result<char, String> {
        let hi = self.hex4()?;
        let code = if (0xD800..0xDC00).contains(&hi) {
            if self.s.get(self.i..self.i + 2) != Some(b"\\u") {
                return Err(self.error("unpaired surrogate in \\u escape"));
            }
            self.i += 2;
            let lo = self.hex4()?;
            if !(0xDC00..0xE000).contains(&lo) {
                return Err(self.error("unpaired surrogate in \\u escape"));
            }
            0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
        } else {
            hi
        };
        char::from_u32(code).ok_or_else(|| self.error("bad \\u escape"))
    }

    /// Skips a nested map or list value of a key the jobs do not use.
    fn skip_nested(&mut self) -> Result<(), String> {
        let mut depth = 0usize;
        while let Some(c) = self.peek() {
            match c {
                b'{' | b'[' => {
                    depth += 1;
                    self.i += 1;
                }
                b'}' | b']' => {
                    depth -= 1;
                    self.i += 1;
                    if depth == 0 {
                        return Ok(());
                    }
                }
                b'"' | b'\'' => {
                    self.string()?;
                }
                _ => self.i += 1,
            }
        }
        Err(self.error("unbalanced nested value"))
    }
}

fn utf8_len(first: u8) -> usize {
    match first {
        0x00..=0x7F => 1,
        0xC0..=0xDF => 2,
        0xE0..=0xEF => 3,
        _ => 4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> (Option<String>, Option<String>, Option<String>) {
        let a = parse_attributes(s).unwrap_or_else(|e| panic!("{s:?}: {e}"));
        (
            a.campaign_id.map(Cow::into_owned),
            a.channel_id.map(Cow::into_owned),
            a.purchase_id.map(Cow::into_owned),
        )
    }

    fn some(s: &str) -> Option<String> {
        Some(s.to_string())
    }

    #[test]
    fn empty_attributes() {
        assert_eq!(parse(""), (None, None, None));
        assert_eq!(parse("  "), (None, None, None));
        assert_eq!(parse("{}"), (None, None, None));
        assert_eq!(parse("{{}}"), (None, None, None));
    }

    #[test]
    fn python_dict_with_number_and_string() {
        assert_eq!(
            parse("{'campaign_id': 296, 'channel_id': 'Google Ads'}"),
            (some("296"), some("Google Ads"), None)
        );
    }

    #[test]
    fn json_and_python_purchase_ids() {
        let id = "db607b25-6726-4192-8139-5fa677389a21";
        assert_eq!(parse(&format!("{{\"purchase_id\": \"{id}\"}}")).2, some(id));
        assert_eq!(parse(&format!("{{'purchase_id': '{id}'}}")).2, some(id));
    }

    #[test]
    fn doubled_braces() {
        assert_eq!(
            parse("{{'campaign_id': 12, 'channel_id': 'VK Ads'}}"),
            (some("12"), some("VK Ads"), None)
        );
        assert_eq!(parse("{{\"purchase_id\": \"p1\"}}").2, some("p1"));
    }

    #[test]
    fn null_values_and_literals() {
        assert_eq!(
            parse("{'campaign_id': None, 'channel_id': null}"),
            (None, None, None)
        );
        assert_eq!(parse("{\"campaign_id\": 1.50}").0, some("1.50"));
        assert_eq!(parse("{\"campaign_id\": true}").0, some("true"));
    }

    #[test]
    fn escapes_are_undone() {
        assert_eq!(parse(r#"{"channel_id": "a\"b\\c"}"#).1, some("a\"b\\c"));
        assert_eq!(parse(r"{'channel_id': 'O\'Neil'}").1, some("O'Neil"));
        assert_eq!(
            parse(r#"{"channel_id": "caf\u00e9 \ud83d\ude00"}"#).1,
            some("café 😀")
        );
        assert_eq!(parse("{'channel_id': 'Яндекс'}").1, some("Яндекс"));
    }

    #[test]
    fn unknown_keys_and_nested_values_are_skipped() {
        assert_eq!(
            parse("{'x': {'y': [1, '}']}, 'campaign_id': 7, 'z': [1,2]}").0,
            some("7")
        );
    }

    #[test]
    fn a_nested_value_of_a_used_key_is_an_error() {
        for bad in [
            "{'campaign_id': {'id': 7}}",
            "{'channel_id': ['A']}",
            r#"{"purchase_id": []}"#,
        ] {
            let err = parse_attributes(bad).unwrap_err();
            assert!(err.starts_with("nested value"), "{bad:?}: {err}");
        }
    }

    #[test]
    fn first_occurrence_of_a_key_wins() {
        assert_eq!(parse("{'campaign_id': 1, 'campaign_id': 2}").0, some("1"));
    }

    #[test]
    fn malformed_attributes_are_errors() {
        for bad in [
            "campaign_id=1",
            "{'campaign_id': 1",
            "{'campaign_id' 1}",
            "{'campaign_id': 'abc}",
            "{'campaign_id': abc}",
            "{'campaign_id': 1}}",
            "{{'campaign_id': 1}",
            "{'a': 1,}",
            "{'a': 1} x",
            r#"{"a": "\q"}"#,
        ] {
            assert!(parse_attributes(bad).is_err(), "{bad:?} must be refused");
        }
    }
}
