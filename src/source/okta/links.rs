//! `Link` headers: reading every line, finding the one `rel="next"` target, and the same-origin
//! rule that keeps the client (and its credentials) on `okta.org_url`.

use reqwest::header::{HeaderMap, LINK};
use url::Url;

/// Every `link` header line as text; a line that is not UTF-8 is an error, never skipped
/// (it might hold the next link).
pub(super) fn link_values(headers: &HeaderMap) -> Result<Vec<String>, String> {
    headers
        .get_all(LINK)
        .iter()
        .map(|v| {
            std::str::from_utf8(v.as_bytes())
                .map(str::to_owned)
                .map_err(|_| "a link header is not valid UTF-8".to_owned())
        })
        .collect()
}

/// A `Link` header that cannot be read with certainty.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum LinkError {
    #[error("a link header entry has no <target>: {0:?}")]
    Syntax(String),
    #[error("the link headers hold more than one different rel=\"next\" target")]
    AmbiguousNext,
}

/// The `rel="next"` target among all `link` header values, or `None` on the last page.
///
/// Values may be separate header lines or comma-joined; commas inside `<…>` or quotes do not
/// split entries. `rel` is matched case-insensitively, quoted or not, and may list several
/// space-separated relation types.
pub(crate) fn next_link<'a>(
    values: impl IntoIterator<Item = &'a str>,
) -> Result<Option<&'a str>, LinkError> {
    let mut next: Option<&'a str> = None;
    for value in values {
        for entry in split_outside(value, ',') {
            let entry = entry.trim();
            if entry.is_empty() {
                continue;
            }
            let (target, params) = entry
                .strip_prefix('<')
                .and_then(|rest| rest.split_once('>'))
                .ok_or_else(|| LinkError::Syntax(entry.to_owned()))?;
            if !rel_is_next(params) {
                continue;
            }
            let target = target.trim();
            match next {
                Some(seen) if seen != target => return Err(LinkError::AmbiguousNext),
                _ => next = Some(target),
            }
        }
    }
    Ok(next)
}

/// True when the first `rel` parameter of a link entry lists `next`.
fn rel_is_next(params: &str) -> bool {
    for param in split_outside(params, ';') {
        let (name, value) = param.split_once('=').unwrap_or((param, ""));
        if name.trim().eq_ignore_ascii_case("rel") {
            // RFC 8288 §3: only the first rel parameter counts.
            return unquote(value.trim())
                .split_ascii_whitespace()
                .any(|rel| rel.eq_ignore_ascii_case("next"));
        }
    }
    false
}

/// Strips the double quotes around a parameter value (and backslash escapes inside them).
fn unquote(value: &str) -> String {
    match value.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
        Some(inner) => {
            let mut out = String::with_capacity(inner.len());
            let mut chars = inner.chars();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => out.extend(chars.next()),
                    c => out.push(c),
                }
            }
            out
        }
        None => value.to_owned(),
    }
}

/// Splits `s` on `sep`, except inside `<…>` and inside double-quoted strings.
fn split_outside(s: &str, sep: char) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut in_angle, mut in_quotes, mut escaped) = (false, false, false);
    let mut start = 0;
    for (i, c) in s.char_indices() {
        if in_quotes {
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_quotes = false,
                _ => {}
            }
            continue;
        }
        match c {
            '<' if !in_angle => in_angle = true,
            '>' if in_angle => in_angle = false,
            '"' if !in_angle => in_quotes = true,
            c if c == sep && !in_angle => {
                parts.push(&s[start..i]);
                start = i + c.len_utf8();
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    parts
}

/// True when both URLs have the same scheme, host and port.
pub(crate) fn same_origin(a: &Url, b: &Url) -> bool {
    a.origin() == b.origin()
}

#[cfg(test)]
pub(super) mod tests {
    #![allow(clippy::unwrap_used)]

    use reqwest::header::{HeaderName, HeaderValue};

    use super::*;

    /// A header map with `pairs` appended in order (names may repeat).
    pub(in crate::source::okta) fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

    // ----- Link headers -----

    #[test]
    fn next_link_from_separate_lines() {
        let lines = [
            r#"<https://acme.okta.com/api/v1/groups?limit=2>; rel="self""#,
            r#"<https://acme.okta.com/api/v1/groups?after=00g2&limit=2>; rel="next""#,
        ];
        assert_eq!(
            next_link(lines),
            Ok(Some(
                "https://acme.okta.com/api/v1/groups?after=00g2&limit=2"
            ))
        );
    }

    #[test]
    fn next_link_from_comma_joined_line_with_commas_in_urls() {
        let line = r#"<https://acme.okta.com/api/v1/groups?limit=2&filter=a,b>; rel="self", <https://acme.okta.com/api/v1/groups?after=x,y&limit=2>; rel="next""#;
        assert_eq!(
            next_link([line]),
            Ok(Some(
                "https://acme.okta.com/api/v1/groups?after=x,y&limit=2"
            ))
        );
        // The same with the next entry first, and a title holding a comma.
        let line =
            r#"<https://a.test/n?after=1>; title="a, b"; rel=next,<https://a.test/s>; rel=self"#;
        assert_eq!(next_link([line]), Ok(Some("https://a.test/n?after=1")));
    }

    #[test]
    fn next_link_rel_forms() {
        for line in [
            "<https://a.test/n>; rel=next",
            "<https://a.test/n>; REL=\"NEXT\"",
            "<https://a.test/n> ;rel = \"prefetch next\"",
            "<https://a.test/n>; type=\"x\"; rel=\"Next\"",
        ] {
            assert_eq!(next_link([line]), Ok(Some("https://a.test/n")), "{line}");
        }
        for line in [
            "<https://a.test/n>; rel=\"self\"",
            "<https://a.test/n>; rel=\"nextpage\"",
            "<https://a.test/n>; title=\"next\"",
            // Only the first rel parameter counts (RFC 8288 §3).
            "<https://a.test/n>; rel=self; rel=next",
        ] {
            assert_eq!(next_link([line]), Ok(None), "{line}");
        }
        assert_eq!(next_link([]), Ok(None));
        assert_eq!(next_link(["", " , "]), Ok(None));
    }

    #[test]
    fn next_link_refuses_what_it_cannot_read() {
        assert!(matches!(
            next_link(["https://a.test/n; rel=next"]),
            Err(LinkError::Syntax(_))
        ));
        assert!(matches!(
            next_link(["<https://a.test/n; rel=next"]),
            Err(LinkError::Syntax(_))
        ));
        assert_eq!(
            next_link([
                "<https://a.test/1>; rel=next",
                "<https://a.test/2>; rel=next"
            ]),
            Err(LinkError::AmbiguousNext)
        );
        // The same target twice (e.g. a proxy repeating the header) is fine.
        assert_eq!(
            next_link([
                "<https://a.test/1>; rel=next",
                "<https://a.test/1>; rel=\"next\""
            ]),
            Ok(Some("https://a.test/1"))
        );
    }

    #[test]
    fn link_values_reads_every_line() {
        let map = headers(&[
            ("link", "<https://a.test/s>; rel=self"),
            ("link", "<https://a.test/n>; rel=next"),
        ]);
        let values = link_values(&map).unwrap();
        assert_eq!(values.len(), 2);
        assert_eq!(
            next_link(values.iter().map(String::as_str)),
            Ok(Some("https://a.test/n"))
        );
    }

    // ----- origin -----

    #[test]
    fn origin_check() {
        let org = Url::parse("https://acme.okta.com/").unwrap();
        for same in [
            "https://acme.okta.com/api/v1/groups?after=x",
            "https://ACME.okta.com:443/x",
            "https://acme.okta.com",
        ] {
            assert!(same_origin(&Url::parse(same).unwrap(), &org), "{same}");
        }
        for other in [
            "http://acme.okta.com/api/v1/groups",
            "https://acme.okta.com:8443/api/v1/groups",
            "https://evil.example/api/v1/groups",
            "https://acme.okta.com.evil.example/",
            "https://evil.example/@acme.okta.com/",
        ] {
            assert!(!same_origin(&Url::parse(other).unwrap(), &org), "{other}");
        }
        let local = Url::parse("http://127.0.0.1:8080/").unwrap();
        assert!(same_origin(
            &Url::parse("http://127.0.0.1:8080/api/v1/groups").unwrap(),
            &local
        ));
        assert!(!same_origin(
            &Url::parse("http://127.0.0.1:8081/api/v1/groups").unwrap(),
            &local
        ));
        assert!(!same_origin(
            &Url::parse("http://localhost:8080/api/v1/groups").unwrap(),
            &local
        ));
    }
}
