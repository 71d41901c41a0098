//! Text sanitizing: every HTML tag and attribute stripped by `ammonia`, text kept and escaped.
//!
//! The output never contains `<` or `>`: what is left of markup is escaped (`&lt;`), so it is
//! inert whether the frontend inserts it as HTML or as text. `<script>` and `<style>` lose
//! their content too.

use std::sync::LazyLock;

static STRIP_ALL: LazyLock<ammonia::Builder<'static>> = LazyLock::new(ammonia::Builder::empty);

/// Returns `text` with all markup removed.
pub fn strip_markup(text: &str) -> String {
    if is_plain(text) {
        return text.to_owned();
    }
    STRIP_ALL.clean(text).to_string()
}

/// True when the HTML parser and serializer would give `text` back unchanged, so the
/// common case of a plain sentence skips the parse.
fn is_plain(text: &str) -> bool {
    !text
        .chars()
        .any(|c| matches!(c, '<' | '>' | '&' | '\0' | '\r' | '\u{a0}'))
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        #![proptest_config(proptest::test_runner::Config::with_cases(2000))]
        /// Whatever a sender writes, what is relayed carries no tag.
        #[test]
        fn no_input_keeps_an_angle_bracket(text in "(\\PC|<|>|/|=|\"|&){0,80}") {
            let out = strip_markup(&text);
            proptest::prop_assert!(!out.contains('<') && !out.contains('>'), "{text:?} -> {out:?}");
        }
    }

    #[test]
    fn strips_tags_and_attributes() {
        assert_eq!(strip_markup("<b onclick=\"x()\">hi</b> there"), "hi there");
        assert_eq!(strip_markup("<img src=x onerror=alert(1)>"), "");
        assert_eq!(strip_markup("<a href=\"javascript:x\">link</a>"), "link");
    }

    #[test]
    fn drops_script_and_style_content() {
        assert_eq!(strip_markup("a<script>alert(1)</script>b"), "ab");
        assert_eq!(strip_markup("a<style>body{}</style>b"), "ab");
    }

    #[test]
    fn output_never_contains_angle_brackets() {
        for input in [
            "5 < 6 > 4",
            "<<script>>",
            "</",
            "<!-- c -->x",
            "<svg/onload=alert(1)>",
        ] {
            let out = strip_markup(input);
            assert!(
                !out.contains('<') && !out.contains('>'),
                "{input:?} -> {out:?}"
            );
        }
    }

    #[test]
    fn plain_text_fast_path_matches_the_sanitizer() {
        for input in [
            "hello world",
            "¿Dónde está? 👋",
            "line\nbreak",
            "quotes \"' ok",
            "",
        ] {
            assert!(is_plain(input));
            assert_eq!(
                strip_markup(input),
                STRIP_ALL.clean(input).to_string(),
                "{input:?}"
            );
        }
    }
}
