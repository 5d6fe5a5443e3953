//! Splitting a command line into words, with the quoting of a POSIX shell and nothing else.

/// The words of `line`: separated by whitespace; `'…'` keeps everything inside as it is; `"…"` keeps
/// everything but `\"` and `\\`, which stand for `"` and `\`; outside quotes `\` keeps the next character.
pub(crate) fn split(line: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word = String::new();
    // Whether a word is started (an empty pair of quotes is an empty word).
    let mut started = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if started {
                    words.push(std::mem::take(&mut word));
                    started = false;
                }
            }
            '\'' => {
                started = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => word.push(c),
                        None => return Err("an unclosed single quote".into()),
                    }
                }
            }
            '"' => {
                started = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\')) => word.push(c),
                            Some(c) => {
                                word.push('\\');
                                word.push(c);
                            }
                            None => return Err("an unclosed double quote".into()),
                        },
                        Some(c) => word.push(c),
                        None => return Err("an unclosed double quote".into()),
                    }
                }
            }
            '\\' => {
                started = true;
                match chars.next() {
                    Some(c) => word.push(c),
                    None => return Err("a backslash at the end".into()),
                }
            }
            c => {
                started = true;
                word.push(c);
            }
        }
    }
    if started {
        words.push(word);
    }
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_split_and_unquoted_as_a_shell_does() -> Result<(), String> {
        assert_eq!(split("  a  b\tc ")?, ["a", "b", "c"]);
        assert_eq!(
            split(r#"node "my server.js" --x='a b' '' c\ d"#)?,
            ["node", "my server.js", "--x=a b", "", "c d"]
        );
        assert_eq!(split(r#""say \"hi\" \n""#)?, [r#"say "hi" \n"#]);
        assert_eq!(split("")?, Vec::<String>::new());
        assert!(split("'open").is_err());
        assert!(split("\"open").is_err());
        assert!(split("end\\").is_err());
        Ok(())
    }
}
