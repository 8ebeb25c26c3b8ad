//! A string that must not be printed: API tokens, passwords, keys.
//! `Debug` and `Display` print `***`; the value is read only through
//! [`Secret::expose`], so every place that reveals one is greppable.

use std::fmt;

#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

#[cfg(test)]
mod tests {
    use super::Secret;

    #[test]
    fn never_formats_its_value() {
        let s = Secret::new("canary-5f2c");
        assert!(!format!("{s:?} {s} {s:#?}").contains("canary"));
        assert_eq!(s.expose(), "canary-5f2c");
    }
}
