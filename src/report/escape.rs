//! Escaping for everything a page shows that came from a target or a file: node names,
//! values, errors, log file names, keys. Two contexts exist in our pages: HTML text and
//! attribute values, escaped by maud wherever a page splices a value in
//! ([`super::layout`]), and JSON embedded in a `<script>` element ([`json_for_script`]).
//! Pages never build HTML in JavaScript from data; scripts set `textContent`, so these two
//! are the only doors; `serve`'s directory listing is a maud page too, and junit.xml is
//! quick-junit's.

use maud::{Markup, PreEscaped};
use serde::Serialize;

/// Serialize `value` as JSON that is safe inside `<script type="application/json">`:
/// `<`, `>` and `&` become `\u003c`… so neither `</script>` nor `<!--` can appear, and
/// U+2028/U+2029 are escaped for engines that still treat them as line ends. The result
/// is still valid JSON with the same meaning (`JSON.parse` restores every character).
/// Returned as markup for maud: the text of a `<script>` element is not HTML-escaped (an
/// `&quot;` there would stay five characters), so this escaping is the one it gets.
pub fn json_for_script<T: Serialize + ?Sized>(value: &T) -> serde_json::Result<Markup> {
    let raw = serde_json::to_string(value)?;
    Ok(PreEscaped(script_safe(&raw)))
}

/// The escaping of [`json_for_script`] for JSON text already serialized.
pub fn script_safe(json: &str) -> String {
    let mut out = String::with_capacity(json.len() + 16);
    for c in json.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    out
}

/// A compact one-line rendering of a JSON value for tables and tooltips: strings without
/// quotes when they are plain, everything else as JSON, cut at `max_chars`.
pub fn value_text(v: &serde_json::Value, max_chars: usize) -> String {
    let s = match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => "nil".to_string(),
        other => other.to_string(),
    };
    truncate(&s, max_chars)
}

/// Cut `s` to at most `max_chars` characters, marking the cut with `…`.
pub fn truncate(s: &str, max_chars: usize) -> String {
    if s.chars().count() <= max_chars {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max_chars.saturating_sub(1)).collect();
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn script_json_cannot_close_the_script_element() {
        let v = json!({"value": "</script><script>alert(1)</script><!--", "e": "a\u{2028}b&c"});
        let s = json_for_script(&v).unwrap().into_string();
        assert!(
            !s.contains('<') && !s.contains('>') && !s.contains('&'),
            "{s}"
        );
        assert!(!s.contains('\u{2028}'));
        let back: serde_json::Value = serde_json::from_str(&s).unwrap();
        assert_eq!(back, v);
    }

    #[test]
    fn value_text_is_compact_and_bounded() {
        assert_eq!(value_text(&json!("abc"), 10), "abc");
        assert_eq!(value_text(&json!(null), 10), "nil");
        assert_eq!(value_text(&json!([1, 2]), 10), "[1,2]");
        assert_eq!(value_text(&json!("abcdefghijkl"), 5), "abcd…");
    }
}
