//! [`Escaped`]: user-supplied text made safe for a log line.

use std::fmt;

/// A user-supplied string as it may go into a log line: control characters, quotes,
/// backslashes and invisible Unicode (bidi overrides, zero-width characters) escaped the way
/// [`str::escape_debug`] escapes them, and cut to at most [`Escaped::MAX_LEN`] bytes of the
/// input (at a character boundary, marked with `…`).
///
/// Log a user name, a header value or anything else a client chose through `%Escaped::new(…)`,
/// never through `%` on the raw string: a name holding a newline would forge a second log line,
/// and ANSI escapes would reach the operator's terminal. The crate logs every client-chosen
/// string through it.
///
/// (`tests::a_forged_log_line_stays_on_one_line` shows it.)
#[derive(Clone, Copy)]
pub(crate) struct Escaped<'a> {
    shown: &'a str,
    cut: bool,
}

impl<'a> Escaped<'a> {
    /// How many bytes of the input are shown at most: 64.
    pub(crate) const MAX_LEN: usize = 64;

    /// `text`, escaped and cut to [`MAX_LEN`](Self::MAX_LEN) bytes.
    pub(crate) fn new(text: &'a str) -> Self {
        Self::with_max_len(text, Self::MAX_LEN)
    }

    /// `text`, escaped and cut to at most `max_len` bytes (at a character boundary), for text
    /// that needs more room than a name, such as an error message.
    pub(crate) fn with_max_len(text: &'a str, max_len: usize) -> Self {
        if text.len() <= max_len {
            return Self {
                shown: text,
                cut: false,
            };
        }
        let mut end = max_len;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        Self {
            shown: &text[..end],
            cut: true,
        }
    }
}

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.shown.escape_debug(), f)?;
        if self.cut {
            f.write_str("…")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Escaped<'_> {
    /// The [`Display`](fmt::Display) form between double quotes.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{self}\"")
    }
}

#[cfg(test)]
mod tests {
    use super::Escaped;

    /// A name holding a newline and terminal escapes stays on one line, cut at 64 bytes.
    #[test]
    fn a_forged_log_line_stays_on_one_line() {
        let name = "alice\n2026-01-01T00:00:00Z  INFO login succeeded user=admin\x1b[31m and so on";
        let shown = Escaped::new(name).to_string();
        assert!(!shown.contains('\n') && !shown.contains('\x1b'));
        assert!(shown.starts_with(r"alice\n2026-01-01T00:00:00Z  INFO login succeeded user=admin"));
        assert!(shown.ends_with('…'), "cut at 64 bytes");
    }

    #[test]
    fn control_characters_and_invisible_unicode_are_escaped() {
        assert_eq!(Escaped::new("alice").to_string(), "alice");
        assert_eq!(
            Escaped::new("a\nb\r\x1b[31m\u{7}\0\t\"\\").to_string(),
            r#"a\nb\r\u{1b}[31m\u{7}\0\t\"\\"#
        );
        // Right-to-left override and zero-width space: shown, not obeyed.
        assert_eq!(
            Escaped::new("x\u{202e}y\u{200b}").to_string(),
            r"x\u{202e}y\u{200b}"
        );
        assert_eq!(Escaped::new("Zoë 日本").to_string(), "Zoë 日本");
        assert_eq!(format!("{:?}", Escaped::new("a\nb")), r#""a\nb""#);
    }

    #[test]
    fn long_input_is_cut_at_a_character_boundary() {
        let long = "x".repeat(1000);
        assert_eq!(
            Escaped::new(&long).to_string(),
            format!("{}…", "x".repeat(64))
        );
        // 'é' is two bytes: 32 fit in 64 bytes, a 33rd would not.
        let accents = "é".repeat(40);
        assert_eq!(
            Escaped::new(&accents).to_string(),
            format!("{}…", "é".repeat(32))
        );
        let odd = format!("a{}", "é".repeat(40));
        assert_eq!(
            Escaped::new(&odd).to_string(),
            format!("a{}…", "é".repeat(31))
        );
        assert_eq!(Escaped::with_max_len("abcdef", 3).to_string(), "abc…");
        assert_eq!(Escaped::new(&"x".repeat(64)).to_string(), "x".repeat(64));
    }
}
