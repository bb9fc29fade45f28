//! `?` placeholders, as JDBC and ODBC clients write them, numbered as the engine reads them
//! (`$1`, `$2`, ... in order). Only real placeholders change: a `?` inside a string, a quoted
//! name or a comment stays as it is (the SQL is tokenized to tell them apart).

use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};

/// `sql` with each `?` placeholder replaced by `$n`; unchanged when it has none or does not
/// tokenize (the engine then reports the error).
pub fn numbered(sql: &str) -> String {
    if !sql.contains('?') {
        return sql.to_string();
    }
    let dialect = GenericDialect {};
    let Ok(tokens) = Tokenizer::new(&dialect, sql).tokenize_with_location() else {
        return sql.to_string();
    };
    let line_starts: Vec<usize> = std::iter::once(0)
        .chain(sql.match_indices('\n').map(|(index, _)| index + 1))
        .collect();
    let offset = |line: u64, column: u64| -> Option<usize> {
        let start = *line_starts.get(usize::try_from(line).ok()?.checked_sub(1)?)?;
        let column = usize::try_from(column).ok()?.checked_sub(1)?;
        sql[start..]
            .char_indices()
            .nth(column)
            .map(|(index, _)| start + index)
    };
    let mut numbered = String::with_capacity(sql.len() + 8);
    let mut copied = 0;
    let mut count = 0;
    for token in tokens {
        if !matches!(&token.token, Token::Placeholder(text) if text == "?") {
            continue;
        }
        let Some(at) = offset(token.span.start.line, token.span.start.column) else {
            return sql.to_string();
        };
        count += 1;
        numbered.push_str(&sql[copied..at]);
        numbered.push_str(&format!("${count}"));
        copied = at + 1;
    }
    numbered.push_str(&sql[copied..]);
    numbered
}

#[cfg(test)]
mod tests {
    use super::numbered;

    #[test]
    fn question_marks_become_numbered_placeholders() {
        assert_eq!(
            numbered("SELECT a FROM t WHERE a < ? AND\n b = ?"),
            "SELECT a FROM t WHERE a < $1 AND\n b = $2"
        );
        assert_eq!(
            numbered("SELECT 'what?', \"odd?\", ? -- why?\n, 'é', ?"),
            "SELECT 'what?', \"odd?\", $1 -- why?\n, 'é', $2"
        );
        assert_eq!(numbered("SELECT 'it''s?', ?"), "SELECT 'it''s?', $1");
        assert_eq!(numbered("SELECT $1"), "SELECT $1");
        assert_eq!(numbered("SELECT 'unterminated ?"), "SELECT 'unterminated ?");
    }
}
