//! Positions in a scenario file from the parser's spans: line and column of a byte offset,
//! and the dotted field path (`bots[2].count`) of the innermost value or key there.

use std::ops::Range;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

/// 1-based line and column (in characters) of byte `offset` of `source`.
pub(super) fn line_col(source: &str, offset: usize) -> (usize, usize) {
    let mut end = offset.min(source.len());
    while !source.is_char_boundary(end) {
        end -= 1;
    }
    let before = &source[..end];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// The field path of the innermost key or value whose span holds `at`, e.g. `bots[1].count`
/// or `thresholds.fanout.p99_ms`; `None` outside every key and value. A table's own span
/// covers only its header, so every table and array is searched, not just those whose span
/// holds `at`.
pub(super) fn field_at(root: &Spanned<DeTable<'_>>, at: usize) -> Option<String> {
    in_table(root.get_ref(), at, "")
}

fn holds(span: &Range<usize>, at: usize) -> bool {
    span.start <= at && at < span.end.max(span.start + 1)
}

fn in_table(table: &DeTable<'_>, at: usize, prefix: &str) -> Option<String> {
    for (key, value) in table {
        let path = if prefix.is_empty() {
            key.get_ref().to_string()
        } else {
            format!("{prefix}.{}", key.get_ref())
        };
        if let Some(inner) = in_value(value.get_ref(), at, &path) {
            return Some(inner);
        }
        if holds(&key.span(), at) || holds(&value.span(), at) {
            return Some(path);
        }
    }
    None
}

fn in_value(value: &DeValue<'_>, at: usize, path: &str) -> Option<String> {
    match value {
        DeValue::Table(t) => in_table(t, at, path),
        DeValue::Array(items) => items.into_iter().enumerate().find_map(|(i, item)| {
            let indexed = format!("{path}[{i}]");
            in_value(item.get_ref(), at, &indexed)
                .or_else(|| holds(&item.span(), at).then_some(indexed))
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_fields_in_tables_arrays_and_inline_tables() {
        let src = "[scenario]\nname = \"x\"\n\n[[bots]]\nrole = \"client\"\ncount = 1\n\n[[bots]]\nrole = \"operator\"\ncount = 0\n\n[thresholds]\nfanout.p99_ms = 5\n";
        let root = DeTable::parse(src).expect("toml");
        let at = |needle: &str| src.find(needle).expect("in source");
        assert_eq!(
            field_at(&root, at("count = 0") + 8).as_deref(),
            Some("bots[1].count")
        );
        assert_eq!(
            field_at(&root, at("count = 0")).as_deref(),
            Some("bots[1].count")
        );
        assert_eq!(
            field_at(&root, at("\"x\"")).as_deref(),
            Some("scenario.name")
        );
        assert_eq!(
            field_at(&root, at("5\n")).as_deref(),
            Some("thresholds.fanout.p99_ms")
        );
        let inline = "bots = [{ role = \"client\", count = 1 },\n  { role = \"x\", count = 2 }]\n";
        let root = DeTable::parse(inline).expect("toml");
        let at = inline.find("\"x\"").expect("in source");
        assert_eq!(field_at(&root, at).as_deref(), Some("bots[1].role"));
        assert_eq!(line_col(inline, at), (2, 12));
    }
}
