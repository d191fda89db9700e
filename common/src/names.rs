//! The naming rule for titles, renditions and files — what may appear as
//! one segment of `/c/{title}/{rendition}/{file}` — and the types that
//! carry a name checked once, where it enters: parsed from JSON or TOML
//! (serde `try_from`), from a request, from a command line. Code that holds
//! a [`Name`] or a [`TitlePath`] need not check it again. Plain ASCII
//! names only, so no path trick (`..`, slashes, NUL, hidden temp files)
//! survives.

use std::borrow::Borrow;
use std::fmt;

use serde::{Deserialize, Serialize};

/// Longest name accepted.
pub const MAX_NAME: usize = 255;

/// 1 to 255 of `A-Z a-z 0-9 . _ -`, not starting with a dot. The
/// primitive behind [`Name`], for code that checks bytes without
/// allocating (the appliance's request path).
pub fn is_plain_name(name: &[u8]) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME
        && name[0] != b'.'
        && name
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
}

/// A name that breaks the rule, for the message that says why.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// Not a [`Name`].
    #[error("'{0}' is not a plain name (1 to {MAX_NAME} of A-Z a-z 0-9 . _ -, not starting with a dot)")]
    Name(String),
    /// Not a [`TitlePath`].
    #[error("'{0}' is not a file of a title (rendition/file or file, each a plain name)")]
    Path(String),
}

/// A title, rendition, file, release or box name that obeys the rule.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Name(Box<str>);

impl Name {
    /// `name`, if it obeys the rule.
    pub fn new(name: impl Into<String>) -> Result<Name, NameError> {
        let name = name.into();
        if is_plain_name(name.as_bytes()) {
            Ok(Name(name.into_boxed_str()))
        } else {
            Err(NameError::Name(name))
        }
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A file of a title: `rendition/file` or `file`, each part a [`Name`].
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TitlePath(Box<str>);

impl TitlePath {
    /// `path`, if it is one or two plain names joined by `/`.
    pub fn new(path: impl Into<String>) -> Result<TitlePath, NameError> {
        let path = path.into();
        let parts: Vec<&str> = path.split('/').collect();
        if parts.len() <= 2 && parts.iter().all(|p| is_plain_name(p.as_bytes())) {
            Ok(TitlePath(path.into_boxed_str()))
        } else {
            Err(NameError::Path(path))
        }
    }

    /// The path as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

macro_rules! string_like {
    ($t:ident) => {
        impl TryFrom<String> for $t {
            type Error = NameError;
            fn try_from(s: String) -> Result<$t, NameError> {
                $t::new(s)
            }
        }

        impl TryFrom<&str> for $t {
            type Error = NameError;
            fn try_from(s: &str) -> Result<$t, NameError> {
                $t::new(s)
            }
        }

        impl std::str::FromStr for $t {
            type Err = NameError;
            fn from_str(s: &str) -> Result<$t, NameError> {
                $t::new(s)
            }
        }

        impl From<$t> for String {
            fn from(n: $t) -> String {
                n.0.into_string()
            }
        }

        impl std::ops::Deref for $t {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl AsRef<str> for $t {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        /// A name or a title's file is a relative path too.
        impl AsRef<std::path::Path> for $t {
            fn as_ref(&self) -> &std::path::Path {
                std::path::Path::new(&*self.0)
            }
        }

        impl Borrow<str> for $t {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl PartialEq<str> for $t {
            fn eq(&self, other: &str) -> bool {
                &*self.0 == other
            }
        }

        impl PartialEq<String> for $t {
            fn eq(&self, other: &String) -> bool {
                &*self.0 == other.as_str()
            }
        }

        impl PartialEq<&str> for $t {
            fn eq(&self, other: &&str) -> bool {
                &*self.0 == *other
            }
        }

        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&*self.0, f)
            }
        }
    };
}

string_like!(Name);
string_like!(TitlePath);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_names() {
        for ok in ["movie", "seg-00001.m4s", "a_b.c", "720p"] {
            assert!(is_plain_name(ok.as_bytes()), "{ok}");
            assert_eq!(Name::new(ok).unwrap(), ok);
        }
        let long = "a".repeat(256);
        for bad in ["", ".", "..", ".tmp-x", "a/b", "a\\b", "a b", "a\0", "ü", long.as_str()] {
            assert!(!is_plain_name(bad.as_bytes()), "{bad:?}");
            assert!(Name::new(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn title_paths() {
        for ok in ["720p/seg-00001.m4s", "master.m3u8"] {
            assert_eq!(TitlePath::new(ok).unwrap().as_str(), ok);
        }
        for bad in [
            "../x",
            "a/../../b",
            "/etc/passwd",
            "a/b/c",
            ".nearcast/titles/x.json",
            "a//b",
            "",
        ] {
            assert!(TitlePath::new(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn checked_when_parsed() {
        let ok: Vec<Name> = serde_json::from_str(r#"["a","b-1"]"#).unwrap();
        assert_eq!(ok, ["a", "b-1"]);
        let err = serde_json::from_str::<Vec<Name>>(r#"["a","../etc"]"#).unwrap_err();
        assert!(err.to_string().contains("not a plain name"), "{err}");
        assert_eq!(serde_json::to_string(&ok).unwrap(), r#"["a","b-1"]"#);
    }
}
