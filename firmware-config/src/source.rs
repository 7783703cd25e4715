//! The text being read and its name: turns byte offsets into 1-based line
//! and column (in characters) and positioned problems into [`ConfigError`]s.

use crate::error::{ConfigError, Problem};

/// A configuration text and the file name used in messages.
pub(crate) struct Source<'a> {
    origin: &'a str,
    text: &'a str,
}

impl<'a> Source<'a> {
    pub(crate) fn new(origin: &'a str, text: &'a str) -> Self {
        Source { origin, text }
    }

    /// 1-based line and column of byte `offset`; an offset past the end or
    /// inside a character counts from the character boundary before it.
    pub(crate) fn position(&self, offset: usize) -> (usize, usize) {
        let mut end = offset.min(self.text.len());
        while !self.text.is_char_boundary(end) {
            end -= 1;
        }
        let before = self.text.get(..end).unwrap_or_default();
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = before.get(line_start..).unwrap_or_default().chars().count() + 1;
        (line, column)
    }

    /// A problem with no position in the text (e.g. an unreadable file).
    pub(crate) fn whole_file(&self, reason: impl Into<String>) -> ConfigError {
        self.error(Problem {
            key: String::new(),
            span: None,
            reason: reason.into(),
        })
    }

    pub(crate) fn error(&self, problem: Problem) -> ConfigError {
        let position = problem.span.map(|span| self.position(span.start));
        ConfigError {
            file: self.origin.to_string(),
            line: position.map(|(line, _)| line),
            column: position.map(|(_, column)| column),
            key: problem.key,
            reason: problem.reason,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_count_lines_and_characters() {
        let source = Source::new("a.toml", "ab\nc\u{e9}d\n\nx");
        assert_eq!(source.position(0), (1, 1));
        assert_eq!(source.position(1), (1, 2));
        assert_eq!(source.position(3), (2, 1));
        // 'd' comes after the two-byte 'é': byte 6, character 3.
        assert_eq!(source.position(6), (2, 3));
        // Inside 'é' counts from its start.
        assert_eq!(source.position(5), (2, 2));
        assert_eq!(source.position(8), (3, 1));
        assert_eq!(source.position(9), (4, 1));
        assert_eq!(source.position(1000), (4, 2));
    }
}
