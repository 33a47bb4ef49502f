//! Names of the things users create: validated once, printed the same in logs, CLI and keys.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Longest name accepted: a Kubernetes label value, so a name can also label objects.
const MAX_LEN: usize = 63;

/// A name that is not lowercase letters, digits and `-` (not at either end), up to 63 long.
#[derive(Debug, thiserror::Error)]
#[error(
    "invalid {what} name {name:?}: use lowercase letters, digits and '-', at most {MAX_LEN} characters, starting and ending with a letter or digit"
)]
pub struct InvalidName {
    what: &'static str,
    name: String,
}

fn validate(what: &'static str, name: &str) -> Result<(), InvalidName> {
    let ok = !name.is_empty()
        && name.len() <= MAX_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && !name.starts_with(['-', '.'])
        && !name.ends_with(['-', '.']);
    if ok {
        Ok(())
    } else {
        Err(InvalidName {
            what,
            name: name.to_owned(),
        })
    }
}

/// Longest Kubernetes object name (a DNS-1123 subdomain).
const OBJECT_NAME_MAX_LEN: usize = 253;

/// Whether `name` can name a Kubernetes object such as a node or a PersistentVolume: a DNS-1123
/// subdomain, dot-separated labels of lowercase letters, digits and `-`, each starting and ending
/// with a letter or digit, at most 253 characters in all, as the API server checks it. Such a
/// name is always one path component, never `.` or `..`.
pub fn is_object_name(name: &str) -> bool {
    let label = |l: &str| {
        !l.is_empty()
            && l.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    name.len() <= OBJECT_NAME_MAX_LEN && name.split('.').all(label)
}

macro_rules! name_type {
    ($(#[$doc:meta])* $ty:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $ty(String);

        impl $ty {
            /// Validates `name`.
            pub fn new(name: impl Into<String>) -> Result<Self, InvalidName> {
                let name = name.into();
                validate($what, &name)?;
                Ok(Self(name))
            }

            /// The name as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl TryFrom<String> for $ty {
            type Error = InvalidName;
            fn try_from(name: String) -> Result<Self, InvalidName> {
                Self::new(name)
            }
        }

        impl From<$ty> for String {
            fn from(name: $ty) -> String {
                name.0
            }
        }

        impl std::str::FromStr for $ty {
            type Err = InvalidName;
            fn from_str(name: &str) -> Result<Self, InvalidName> {
                Self::new(name)
            }
        }
    };
}

name_type!(
    /// A cluster's name, as its agent registers it.
    ClusterName,
    "cluster"
);
name_type!(
    /// A backup's name: unique in the hub, and its folder in the location.
    BackupName,
    "backup"
);

name_type!(
    /// A restore's name.
    RestoreName,
    "restore"
);

name_type!(
    /// A backup location's name.
    LocationName,
    "location"
);
name_type!(
    /// A workspace's name.
    WorkspaceName,
    "workspace"
);
name_type!(
    /// A schedule's name.
    ScheduleName,
    "schedule"
);

name_type!(
    /// A user's bearer token's name.
    TokenName,
    "token"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_dns_like_names_and_says_why_others_fail() {
        assert!(BackupName::new("nightly-2026.11.25").is_ok());
        let err = ClusterName::new("Prod_EU").expect_err("uppercase and underscore");
        assert!(
            err.to_string().starts_with("invalid cluster name \"Prod_EU\""),
            "{err}"
        );
        assert!(BackupName::new("").is_err());
        assert!(BackupName::new("-x").is_err());
        assert!(BackupName::new("x".repeat(64)).is_err());
    }

    #[test]
    fn object_names_are_dns_subdomains_and_never_leave_a_directory() {
        for good in ["pv-1", "pvc-0b3c.zone-a", "a", "a".repeat(253).as_str()] {
            assert!(is_object_name(good), "{good:?} refused");
        }
        for bad in [
            "",
            ".",
            "..",
            "../../x",
            "a/b",
            "/abs",
            "-a",
            "a-",
            ".a",
            "a.",
            "a..b",
            "a.-b",
            "A",
            "a_b",
            "a\0b",
            "a".repeat(254).as_str(),
        ] {
            assert!(!is_object_name(bad), "{bad:?} accepted");
        }
    }
}
