//! How answers are written: JSON, pretty for a person at a terminal, compact (one line each) for a pipe.

use std::io::{IsTerminal, Write};

use serde_json::value::RawValue;

/// The layout of the JSON written on stdout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Layout {
    /// Indented, over several lines.
    Pretty,
    /// One line, exactly as received.
    Compact,
}

impl Layout {
    /// `--pretty` or `--compact` when given, else pretty when stdout is a terminal.
    pub(crate) fn choose(pretty: bool, compact: bool) -> Self {
        if pretty {
            Layout::Pretty
        } else if compact || !std::io::stdout().is_terminal() {
            Layout::Compact
        } else {
            Layout::Pretty
        }
    }

    /// `json` laid out, without a final newline. Compact keeps the text as received (numbers included);
    /// pretty re-indents it.
    pub(crate) fn render(self, json: &RawValue) -> String {
        match self {
            Layout::Compact => json.get().to_owned(),
            Layout::Pretty => match serde_json::from_str::<serde_json::Value>(json.get()) {
                Ok(value) => serde_json::to_string_pretty(&value).unwrap_or_else(|_| json.get().to_owned()),
                Err(_) => json.get().to_owned(),
            },
        }
    }
}

/// Writes `json` as one answer on stdout, flushed (so that a reader of a pipe sees each as it comes).
pub(crate) fn print(layout: Layout, json: &RawValue) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}", layout.render(json))?;
    out.flush()
}

/// Writes `line` on stdout, flushed.
pub(crate) fn print_line(line: &str) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}")?;
    out.flush()
}

/// A value as raw JSON text (for values built here, which always encode).
pub(crate) fn raw(value: &impl serde::Serialize) -> Box<RawValue> {
    serde_json::value::to_raw_value(value).unwrap_or_else(|_| RawValue::NULL.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(text: &str) -> Box<RawValue> {
        RawValue::from_string(text.to_owned()).unwrap()
    }

    #[test]
    fn compact_keeps_the_text_exactly() {
        let text = r#"{"big":123456789012345678901234567890,"f":1.10}"#;
        assert_eq!(Layout::Compact.render(&json(text)), text);
    }

    #[test]
    fn pretty_indents() {
        assert_eq!(
            Layout::Pretty.render(&json(r#"{"a":[1,2]}"#)),
            "{\n  \"a\": [\n    1,\n    2\n  ]\n}"
        );
        assert_eq!(Layout::Pretty.render(&json("42")), "42");
    }

    #[test]
    fn flags_win_over_the_terminal() {
        assert_eq!(Layout::choose(true, false), Layout::Pretty);
        assert_eq!(Layout::choose(false, true), Layout::Compact);
    }
}
