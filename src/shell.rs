//! Quoting for the POSIX shell: the one place faultline turns words into shell text —
//! scripts it runs on SSH hosts, and the command lines the report shows a person to copy.
//!
//! A thin layer over `shlex`'s quoter, which refuses a word with a NUL byte (no shell can
//! carry one, and silently truncating it would run something else than intended).

use anyhow::{anyhow, Result};
use std::borrow::Cow;

/// One word, quoted only when the shell would otherwise split or expand it.
pub fn quote(word: &str) -> Result<Cow<'_, str>> {
    shlex::try_quote(word).map_err(|e| anyhow!("{e}: {:?}", word))
}

/// A command line: each word quoted, separated by spaces.
pub fn join<S: AsRef<str>>(argv: &[S]) -> Result<String> {
    let words: Vec<String> = argv
        .iter()
        .map(|w| quote(w.as_ref()).map(Cow::into_owned))
        .collect::<Result<_>>()?;
    Ok(words.join(" "))
}

/// A word for a person to read and paste (the report's "reproduce" line): never fails; a
/// NUL, which no command line can hold, is shown as `\0`.
pub fn show(word: &str) -> String {
    let clean = word.replace('\0', "\\0");
    quote(&clean).map_or(clean.clone(), Cow::into_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the shell makes of `argv` joined: the words it passes to printf, one a line.
    fn through_sh(argv: &[&str]) -> String {
        let script = format!("printf '%s\\n' {}", join(argv).unwrap());
        let out = std::process::Command::new("sh")
            .args(["-c", &script])
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap()
    }

    #[test]
    fn words_come_out_of_the_shell_as_they_went_in() {
        let argv = [
            "plain-1.2/x",
            "",
            "a b",
            "it's",
            "$HOME",
            "x;y",
            "`id`",
            "K=V with space",
            "a\nb",
            "back\\slash",
            "{a,b}",
            "*",
            "ünïcode",
        ];
        let want: String = argv.iter().map(|a| format!("{a}\n")).collect();
        assert_eq!(through_sh(&argv), want);
    }

    #[test]
    fn plain_words_stay_unquoted() {
        assert_eq!(
            quote("targets/raftkv/target.yaml").unwrap(),
            "targets/raftkv/target.yaml"
        );
        assert_eq!(quote("").unwrap(), "''");
        assert_eq!(quote("a b").unwrap(), "'a b'");
    }

    #[test]
    fn a_nul_byte_is_refused_and_shown_escaped() {
        assert!(quote("a\0b").is_err());
        assert!(join(&["ok", "a\0b"]).is_err());
        assert_eq!(show("a\0b"), quote("a\\0b").unwrap());
        assert_eq!(show("it's"), quote("it's").unwrap());
    }
}
