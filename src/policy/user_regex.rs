//! User regexes (header, URI, method and query matches), compiled with bounds: a pattern like
//! `(a{1000}){1000}` would otherwise take the regex crate's default 10 MiB and a long
//! compile on every evaluation.
use std::collections::HashMap;

use regex::{Regex, RegexBuilder};

/// The most memory one compiled pattern (and its lazy DFA) may take.
pub const SIZE_LIMIT: usize = 256 * 1024;
/// Patterns longer than this in total make evaluating a policy heavy enough to run it off
/// the async workers (see `web::pages::routes` and `web::api::routes`).
pub const HEAVY_SOURCE_LENGTH: usize = 4 * 1024;

/// Compiles `pattern` within [`SIZE_LIMIT`].
pub fn compile(pattern: &str) -> Result<Regex, regex::Error> {
    RegexBuilder::new(pattern).size_limit(SIZE_LIMIT).dfa_size_limit(SIZE_LIMIT).build()
}

/// Each distinct pattern compiled once (anchored: a match must cover the whole value), for
/// one evaluation; a pattern that does not compile matches nothing.
#[derive(Default)]
pub struct Regexes {
    compiled: HashMap<String, Option<Regex>>,
}

impl Regexes {
    pub fn is_full_match(&mut self, pattern: &str, value: &str) -> bool {
        self.compiled
            .entry(pattern.to_owned())
            .or_insert_with(|| compile(&format!("^(?:{pattern})$")).ok())
            .as_ref()
            .is_some_and(|re| re.is_match(value))
    }

    /// How many patterns were compiled.
    pub fn compiled(&self) -> usize {
        self.compiled.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pattern_over_the_size_limit_does_not_compile() {
        let error = compile("(?:[a-z]{100}){100}").expect_err("too big");
        assert!(matches!(error, regex::Error::CompiledTooBig(_)), "{error}");
        assert!(compile(".*Firefox.*").is_ok());
        let problem = crate::policy::regex_problem("(?:[a-z]{100}){100}").expect("refused by validation");
        assert!(problem.starts_with("the regex is too large"), "{problem}");
    }

    #[test]
    fn each_pattern_is_compiled_once() {
        let mut regexes = Regexes::default();
        for _ in 0..50 {
            assert!(regexes.is_full_match(".*Firefox.*", "a Firefox b"));
            assert!(!regexes.is_full_match("Firefox", "a Firefox b"));
        }
        assert_eq!(regexes.compiled(), 2);
    }
}
